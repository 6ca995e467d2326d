"""benchmarks/carry.py: a background run saved into the committed snapshot resumes on a machine that lost it."""

import json

import pytest
from click.testing import CliRunner

from conftest import load_benchmark, write_folder
from exaug.cli.main import main

carry = load_benchmark("carry")


@pytest.fixture
def repository(tmp_path):
    """A repository root whose carry/ holds one generator run, one epoch into a budget of two."""
    folder = write_folder(tmp_path / "images", count=64)
    root = tmp_path / "repo"
    command = ["fit-generator", "--dataset", str(folder), "--channels", "1", "--warmup-epochs", "1",
               "--hidden-dim", "16", "--latent-dim", "4", "--no-progress", "--out", str(root / "carry" / "gen")]
    first = CliRunner().invoke(main, command + ["--epochs", "1"])
    assert first.exit_code == 0, first.output
    scoring = root / "benchmarks" / "results" / "evaluation.iwae-checkpoint.pt"
    scoring.parent.mkdir(parents=True)
    scoring.write_bytes(b"scores so far")
    return root, command


def test_save_copies_the_checkpoint_log_and_scoring_progress_but_not_the_bundle_files(repository):
    root, _ = repository
    saved = {str(path) for path in carry.save(root)}
    assert {"carry/gen/checkpoint.pt", "carry/gen/train_log.jsonl",
            "benchmarks/results/evaluation.iwae-checkpoint.pt"} <= saved
    assert not {name for name in saved if name.endswith((".safetensors", ".lock"))}
    assert carry.save(root) == []  # nothing changed since: nothing copied


def test_a_saved_run_restored_on_a_fresh_machine_resumes_where_it_stopped(repository, tmp_path):
    root, command = repository
    carry.save(root)
    fresh = tmp_path / "fresh"  # a new machine: the committed snapshot, and no carry/
    (fresh / carry.SNAPSHOT).parent.mkdir(parents=True)
    (root / carry.SNAPSHOT).rename(fresh / carry.SNAPSHOT)

    restored = {str(path) for path in carry.restore(fresh)}
    assert "carry/gen/checkpoint.pt" in restored

    command = [fresh / "carry" / "gen" if part == str(root / "carry" / "gen") else part for part in command]
    resumed = CliRunner().invoke(main, [str(part) for part in command] + ["--epochs", "2"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.stderr and "at epoch 1 of 2" in resumed.stderr
    log = (fresh / "carry" / "gen" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1, 2]
    assert (fresh / "carry" / "gen" / "model.safetensors").exists()  # the bundle, rewritten from the checkpoint


def test_restore_never_overwrites_a_live_file(repository):
    root, _ = repository
    carry.save(root)
    live = root / "carry" / "gen" / "train_log.jsonl"
    live.write_text("newer than the snapshot\n")
    assert "carry/gen/train_log.jsonl" not in {str(path) for path in carry.restore(root)}
    assert live.read_text() == "newer than the snapshot\n"


def test_a_bundle_exported_from_a_run_is_saved_whole(repository):
    root, _ = repository
    export = CliRunner().invoke(main, ["export", "--generator", str(root / "carry" / "gen"),
                                       "--out", str(root / "carry" / "snapshot")])
    assert export.exit_code == 0, export.output
    saved = {str(path) for path in carry.save(root)}
    assert {"carry/snapshot/model.safetensors", "carry/snapshot/exemplars.safetensors"} <= saved
