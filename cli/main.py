"""The ``exaug`` console script; ``python -m exaug.cli`` runs it too (as torchrun's ``-m exaug.cli``).

Started by torchrun with more than one process, the training commands run in the process group torchrun describes
(:func:`exaug.distributed.torchrun_process_group`): they train as one DDP run, and rank 0 alone prints and writes
their reports. The other commands run in one process and refuse to start under such a torchrun.
"""

from __future__ import annotations

import os

import click

from .classifier_commands import fit_classifier_command, lambda_plot_command, lambda_sweep_command
from .data_commands import data_group
from exaug.distributed import torchrun_process_group

from .errors import UserErrorsGroup
from .generator_commands import evaluate_command, export_command, fit_generator_command, sample_command


# The commands that train as one DDP run under torchrun.
DISTRIBUTED_COMMANDS = ("fit-generator", "fit-classifier")


@click.group(cls=UserErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="exaug")
@click.option("--debug", is_flag=True, help="Show the traceback of an error instead of its one-line message.")
@click.pass_context
def main(context: click.Context, debug: bool) -> None:
    """exaug: Exemplar VAE generative data augmentation."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and context.invoked_subcommand not in DISTRIBUTED_COMMANDS:
        raise click.UsageError(f"exaug {context.invoked_subcommand} runs in one process; of the commands only "
                               f"{' and '.join(DISTRIBUTED_COMMANDS)} train under torchrun: run it without torchrun")
    context.with_resource(torchrun_process_group())


main.add_command(data_group)
main.add_command(fit_generator_command)
main.add_command(evaluate_command)
main.add_command(sample_command)
main.add_command(export_command)
main.add_command(fit_classifier_command)
main.add_command(lambda_sweep_command)
main.add_command(lambda_plot_command)

if __name__ == "__main__":
    main(prog_name="exaug")
