"""``python -m exaug.cli``: the ``exaug`` command, for ``torchrun --nproc_per_node N -m exaug.cli fit-generator ...``."""

from .main import main

if __name__ == "__main__":
    main(prog_name="exaug")
