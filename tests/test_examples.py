"""The example scripts run end to end on real MNIST (slow: kept out of the default suite)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("script", ["mnist_transform.py", "mnist_mixed_loader.py"])
def test_example_trains_one_epoch_and_reports_a_test_error(script):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--epochs", "1"],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr
    error = float(result.stdout.strip().splitlines()[-1].split("test error ")[1].rstrip("%"))
    assert error < 5.0
