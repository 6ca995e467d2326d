"""Every fenced code block in README.md and docs/*.md runs, so the docs cannot fall behind the code.

- ```python blocks run as written, each in a fresh interpreter; a ``print(...)  # VALUE`` line states what it
  prints: VALUE (up to an " — " that starts an explanation) must appear in the block's output.
- ```bash, ```sh and ```console blocks run as written, or as their STAND_INS entry when running them
  would take long; a block that names a long-running command and has no stand-in fails.
- docs/results.md and docs/dropin.md record runs of hours: each of their commands is parsed by exaug's
  own CLI parser (every flag, type and choice), or checked against its benchmark script (a lane script:
  that it exists and parses), and not run.
- ```text blocks are output samples and are skipped; any other tag fails.

The blocks of one document run in order in one temporary folder, so a walk-through can build on its
earlier steps; nothing is written into the repository.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import click
import pytest

from exaug.cli.main import main as cli

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RECORDS = {REPO / "docs" / "results.md", REPO / "docs" / "dropin.md"}  # commands of runs of hours
SHELL_TAGS = {"bash", "sh", "console"}
TIMEOUT_S = 120
# A shell block naming one of these takes minutes to hours, or changes the environment: it needs a stand-in.
LONG_RUNNING = ("pip install", "scripts/main", "scripts/test", "exaug fit-generator", "exaug fit-classifier",
                "exaug lambda-sweep", "exaug evaluate", "benchmarks/")

STAND_INS = {
    # Installing would replace packages under the interpreter that runs this test; check pip is there.
    "pip install torch==2.14.1 --index-url https://download.pytorch.org/whl/cpu\npip install -e .":
        "python -m pip --version",
    # scripts/main trains for many minutes and scripts/test runs this very suite (CI runs it anyway):
    # check that both parse as bash.
    "scripts/main\nscripts/test":
        f"bash -n {REPO}/scripts/main && bash -n {REPO}/scripts/test",
    # docs/cli.md's walk-through: the same commands on the same data, with 2 epochs and small IWAE bounds.
    "exaug fit-generator --dataset mnist-500 --channels 1 --out runs/gen-500":
        "exaug fit-generator --dataset mnist-500 --channels 1 --epochs 2 --warmup-epochs 1 --no-progress "
        "--out runs/gen-500",
    "exaug evaluate --generator runs/gen-500 --dataset mnist --out runs/gen-500-evaluation.json":
        "exaug evaluate --generator runs/gen-500 --dataset mnist --subset 20 --samples 20 --no-progress "
        "--out runs/gen-500-evaluation.json",
    "exaug fit-classifier --dataset mnist-500 --generator runs/gen-500 --seeds 3 --out runs/clf-500":
        "exaug fit-classifier --dataset mnist-500 --generator runs/gen-500 --seeds 1 --epochs 2 --workers 0 "
        "--no-progress --out runs/clf-500",
    "exaug lambda-sweep --dataset mnist-500 --generator runs/gen-500 --lams 0.4 1.0 --out runs/sweep-500":
        "exaug lambda-sweep --dataset mnist-500 --generator runs/gen-500 --lams 0.4 1.0 --epochs 2 --workers 0 "
        "--no-progress --out runs/sweep-500",
}


class Block(NamedTuple):
    document: Path
    line: int
    tag: str
    text: str

    def __str__(self) -> str:
        return f"{self.document.relative_to(REPO)}:{self.line}"


def fenced_blocks(document: Path) -> list[Block]:
    source = document.read_text(encoding="utf-8")
    return [Block(document, source.count("\n", 0, match.start()) + 1, match["tag"], match["text"].rstrip("\n"))
            for match in re.finditer(r"^```(?P<tag>\S*)\n(?P<text>.*?)^```$", source, re.S | re.M)]


BLOCKS = [block for document in DOCUMENTS for block in fenced_blocks(document) if block.tag != "text"]


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    return {document: tmp_path_factory.mktemp(document.stem) for document in DOCUMENTS}


def run(command: list[str], cwd: Path) -> str:
    """Run ``command`` in ``cwd``; fail unless it succeeds; return what it printed on stdout."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               OMP_NUM_THREADS="1")  # the blocks are small: more threads only contend on a 2-core machine
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"exit code {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def stated_values(code: str) -> list[str]:
    """What the ``print(...)  # VALUE`` lines of a Python block say they print (VALUE up to an " — ")."""
    return [match.group(1).split(" — ")[0].strip()
            for match in re.finditer(r"^\s*print\(.*\)\s+#\s*(.+)$", code, re.M)]


@functools.cache
def benchmark_help(script: str, subcommand: str | None) -> str:
    """What ``--help`` prints for a benchmark script, or for one of its subcommands (click or argparse)."""
    shown = subprocess.run([sys.executable, str(REPO / script), *([subcommand] if subcommand else []), "--help"],
                           capture_output=True, text=True, timeout=TIMEOUT_S, cwd=REPO)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def benchmark_options(script: str, leading: tuple[str, ...]) -> set[str]:
    """Every option that ``--help`` lists for a benchmark script (argparse or click, ``--x/--no-x`` pairs
    included); when the script has subcommands and ``leading`` (the words before the first option) names one,
    that subcommand's own. The other leading words are arguments, which change no option: leaving them out lets
    one ``--help`` serve every command of a script."""
    top = benchmark_help(script, None)
    has_subcommands = "Commands:" in top or re.search(r"^\s*\{[\w,-]+\}", top, re.M) is not None
    shown = benchmark_help(script, leading[0]) if has_subcommands and leading else top
    return set(re.findall(r"--[a-z][\w-]*", shown))


def check_recorded_command(line: str) -> None:
    """Check a recorded command without running it."""
    words = shlex.split(line, comments=True)
    while words and re.fullmatch(r"[A-Za-z_]\w*=\S*", words[0]):  # environment assignments before the command
        words.pop(0)
    if words[0] == "exaug":
        command, context, args = cli, click.Context(cli, info_name="exaug"), words[1:]
        while isinstance(command, click.Group):
            name, *args = args
            command = command.get_command(context, name)
            assert command is not None, f"no command {name!r} in {line!r}"
            context = click.Context(command, info_name=name, parent=context)
        try:
            command.make_context(context.info_name, args, parent=context.parent)  # raises click.UsageError
        except click.BadParameter as error:
            # A recorded command may read what earlier recorded runs wrote, which a fresh clone lacks: its
            # options are checked, not the files the steps before it made.
            if "does not exist" not in error.format_message():
                raise
    elif words[0] == "python" and words[1].startswith("benchmarks/"):
        leading = tuple(itertools.takewhile(lambda word: not word.startswith("-"), words[2:]))  # a subcommand, args
        options = benchmark_options(words[1], leading)
        for flag in (word for word in words[2:] if word.startswith("--")):
            assert flag in options, f"{words[1]} has no option {flag}"
    elif words[0] == "bash" and words[1].startswith("benchmarks/"):  # a script of the background lanes
        script = REPO / words[1]
        assert script.is_file(), f"no script {words[1]}"
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0, f"{words[1]} is not bash"
    else:
        assert words[0] in ("cp", "mkdir"), f"not an exaug, benchmark or file command: {line!r}"


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_code_block_runs_as_written_or_by_its_stand_in(block: Block, workspaces: dict[Path, Path]) -> None:
    if block.tag == "python":
        printed = run([sys.executable, "-c", block.text], workspaces[block.document])
        for value in stated_values(block.text):
            assert value in printed, f"{block} says it prints {value!r}; it printed:\n{printed[-2000:]}"
    elif block.tag in SHELL_TAGS and block.document in RECORDS:
        for line in block.text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                check_recorded_command(line)
    elif block.tag in SHELL_TAGS:
        command = STAND_INS.get(block.text)
        if command is None:
            slow = [name for name in LONG_RUNNING if name in block.text]
            assert not slow, f"{block} runs {slow}: give it a short stand-in in STAND_INS"
            command = block.text
        run(["bash", "-euo", "pipefail", "-c", command], workspaces[block.document])
    else:
        pytest.fail(f"{block} is tagged {block.tag!r}; tag code python or bash, and output text")


def test_a_stated_value_is_read_up_to_its_explanation() -> None:
    code = 'x = 1\nprint(x + 1)  # 2 — one more than x\nprint("no comment")\n    print(len("ab"))  # 2'
    assert stated_values(code) == ["2", "2"]


def test_every_stand_in_replaces_a_block() -> None:
    texts = {block.text for block in BLOCKS}
    assert [text for text in STAND_INS if text not in texts] == []


def test_readme_has_no_relative_image_links_which_a_package_index_cannot_show() -> None:
    assert not re.findall(r"!\[[^\]]*\]\((?!https?://)", (REPO / "README.md").read_text(encoding="utf-8"))


def test_every_image_in_the_docs_exists() -> None:
    for document in DOCUMENTS:
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", document.read_text(encoding="utf-8")):
            assert (document.parent / target).is_file(), f"{document.name} shows a missing image {target}"


def test_a_recorded_benchmark_command_is_checked_against_its_subcommands_options_whatever_its_arguments() -> None:
    check_recorded_command("python benchmarks/dropin.py grid plan-a.json --jobs 2")
    check_recorded_command("python benchmarks/dropin.py grid plan-b.json --only mlp- --jobs 1")
    with pytest.raises(AssertionError, match="has no option --sizes"):
        check_recorded_command("python benchmarks/dropin.py grid plan-a.json --sizes 1000")  # plan's option, not grid's
    with pytest.raises(AssertionError, match="has no option --no-such-flag"):
        check_recorded_command("python benchmarks/tables.py --no-such-flag")


def test_a_recorded_lane_script_must_exist() -> None:
    check_recorded_command("bash benchmarks/lanes/start.sh")
    with pytest.raises(AssertionError, match="no script benchmarks/lanes/gone.sh"):
        check_recorded_command("bash benchmarks/lanes/gone.sh")
