"""benchmarks/latent_tsne.py (Figure 4): panels of real generators' test latents, and clear refusals."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn", reason="the figures extra (scikit-learn) is part of the test extra")
SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "latent_tsne.py"


def run(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=300)


def test_each_generator_gets_a_panel_with_its_latent_knn_error(tmp_path):
    done = run("--generator", "bundled=mnist", "--generator", "again=mnist", "--images", "120",
               "--out", str(tmp_path / "tsne.json"), "--plot", str(tmp_path / "tsne.png"))
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "tsne.json").read_text())
    assert [panel["name"] for panel in results["panels"]] == ["bundled", "again"]
    first, second = results["panels"]
    assert len(first["coordinates"]) == 120 and len(first["coordinates"][0]) == 2
    assert first["coordinates"] == second["coordinates"]  # same latents, same seed: the same picture
    assert 0 <= first["knn_error"] < 10  # the bundled generator's latents separate MNIST digits
    assert (tmp_path / "tsne.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("arguments, message", [
    (("--generator", "fashion=fashion-mnist"), "trained on fashion-mnist, not mnist"),
    (("--generator", "mnist"), "is not NAME=BUNDLE"),
    (("--generator", "bundled=mnist", "--images", "50"), "raise --images"),
])
def test_a_bad_call_is_refused_naming_the_fix(arguments, message, tmp_path):
    done = run(*arguments, "--out", str(tmp_path / "tsne.json"), "--plot", str(tmp_path / "tsne.png"))
    assert done.returncode != 0 and message in done.stderr
    assert not (tmp_path / "tsne.json").exists()
