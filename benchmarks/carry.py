"""Carry unfinished background runs to a later session on another machine, through git.

The long generator, classifier and scoring runs of the docs train in the background for many sessions,
each resuming from its checkpoint. Their folders (``carry/``) are git-ignored, and a session that starts on a
new machine finds only what was committed (docs/results.md, "Runs lost with their machine"). This script
copies what a run needs to resume into ``benchmarks/in-progress/``, which is committed:

    python benchmarks/carry.py save       # then commit benchmarks/in-progress
    python benchmarks/carry.py restore    # on a new machine, before restarting the runs

What is copied: every file under ``carry/`` and every scoring progress file (``*.iwae-checkpoint.pt``)
under ``benchmarks/results/``, except run locks and, in a folder with a ``checkpoint.pt``, the bundle files
that resuming rewrites from it (``model.safetensors``, ``exemplars.safetensors``). A bundle exported from a
run (no checkpoint) is copied whole: it may be a snapshot of an epoch the run has trained past. ``save``
adds and updates, and never deletes: a run that has finished is removed from the snapshot by hand (``git rm``). ``restore`` copies a
file back only where none is, so it never overwrites a live run's newer state.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = Path("benchmarks") / "in-progress"
RUNS = Path("carry")
SCORING_PROGRESS = (Path("benchmarks") / "results", "*.iwae-checkpoint.pt")
RUN_LOCK = ".exaug-run.lock"
CHECKPOINT = "checkpoint.pt"
REWRITTEN_ON_RESUME = {"model.safetensors", "exemplars.safetensors"}


def resumable_files(root: Path) -> Iterator[Path]:
    """The files, relative to ``root``, that a later session needs to resume the runs under it."""
    runs = root / RUNS
    if runs.is_dir():
        for path in sorted(runs.rglob("*")):
            if path.is_file() and path.name != RUN_LOCK and not _rewritten_on_resume(path):
                yield path.relative_to(root)
    folder, pattern = SCORING_PROGRESS
    if (root / folder).is_dir():
        for path in sorted((root / folder).rglob(pattern)):
            yield path.relative_to(root)


def _rewritten_on_resume(path: Path) -> bool:
    return path.name in REWRITTEN_ON_RESUME and (path.parent / CHECKPOINT).exists()


def save(root: Path) -> list[Path]:
    """Copy each resumable file into the snapshot where it is new or changed; the copied paths."""
    copied = []
    for relative in resumable_files(root):
        source, target = root / relative, root / SNAPSHOT / relative
        if target.exists() and filecmp.cmp(source, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".partial")
        shutil.copy2(source, temporary)  # a copy cut short never replaces the last good one
        temporary.replace(target)
        copied.append(relative)
    return copied


def restore(root: Path) -> list[Path]:
    """Copy each snapshot file back to its place where no file is; the restored paths."""
    snapshot = root / SNAPSHOT
    restored = []
    if not snapshot.is_dir():
        return restored
    for path in sorted(snapshot.rglob("*")):
        if not path.is_file() or path.name == "README.md":
            continue
        relative = path.relative_to(snapshot)
        target = root / relative
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        restored.append(relative)
    return restored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["save", "restore"])
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: this one)")
    args = parser.parse_args()
    paths = save(args.root) if args.action == "save" else restore(args.root)
    verb = "saved" if args.action == "save" else "restored"
    for path in paths:
        print(f"{verb} {path}")
    print(f"{len(paths)} file(s) {verb}")


if __name__ == "__main__":
    main()
