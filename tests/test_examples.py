"""What users copy runs: the example scripts and scripts/main, end to end on real MNIST.

The fast suite runs each at a tiny budget through the options the scripts offer for it (a subset, one
epoch); the full one-epoch runs on all of MNIST are ``slow``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from exaug.cli.main import main as exaug

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def reported_error(stdout: str) -> float:
    return float(stdout.strip().splitlines()[-1].split("test error ")[1].rstrip("%"))


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory) -> Path:
    """200 class-balanced MNIST training images as an image folder."""
    folder = tmp_path_factory.mktemp("data") / "mnist-200"
    exaug(["data", "subset", "mnist", "--size", "200", "--out", str(folder)], standalone_mode=False)
    return folder


def run_example(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("script", ["mnist_transform.py", "mnist_mixed_loader.py"])
def test_example_learns_from_a_subset_well_below_chance(script):
    # 20 steps on 1,000 images; chance is 90 % error. Seeds 0-2 gave 33-43 % for both scripts.
    assert reported_error(run_example(script, "--epochs", "2", "--subset", "1000", "--seed", "0")) < 60.0


@pytest.mark.parametrize("script", ["mnist_transform.py", "mnist_mixed_loader.py"])
def test_example_run_twice_with_one_seed_prints_the_same_errors(script):
    first, second = (run_example(script, "--epochs", "1", "--subset", "300", "--seed", "3") for _ in range(2))
    assert first == second


def test_reproduce_tables_prints_both_rows_of_a_dataset(mnist_folder, tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "reproduce_tables.py"), "--datasets", "mnist",
                             "--data", f"mnist={mnist_folder}", "--epochs", "1", "--seeds", "1",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| mnist |")]
    assert len(rows) == 2 and "LS + ExVAE aug" in rows[1] and "0.77 ± 0.01" in rows[1]


def test_scripts_main_runs_its_job_on_a_subset(mnist_folder, tmp_path):
    env = dict(os.environ, EXAUG_MAIN_EPOCHS="1", EXAUG_MAIN_DATASET=str(mnist_folder),
               EXAUG_MAIN_OUT=str(tmp_path / "quickstart"))
    result = subprocess.run(["bash", str(REPO / "scripts" / "main")], env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "quickstart" / "summary.json").is_file()
    assert (tmp_path / "quickstart" / "exemplar-plates.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("script", ["mnist_transform.py", "mnist_mixed_loader.py"])
def test_example_trains_one_epoch_and_reports_a_test_error(script):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--epochs", "1"],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr
    assert reported_error(result.stdout) < 5.0
