"""How far this machine's small runs are from a golden file recorded elsewhere (tests/test_same_numbers.py).

For each training history the golden file pins, the largest relative difference of any float in it, and
whether the digests (weights, twins, batches) are the same. It tells float rounding on another processor
(tiny differences, other digests) from a change of the code (large differences).

    git show 51aeeb9:tests/golden/same_numbers.json > /tmp/old-golden.json
    python benchmarks/golden_drift.py --golden /tmp/old-golden.json --out benchmarks/results/golden_drift.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import test_same_numbers  # noqa: E402  (the runs and digests the golden file pins)


def drift(golden: dict, now: dict) -> dict:
    """Per part of the golden numbers: the largest relative difference of its history's floats, or whether its
    digest is the same."""
    parts = {}
    for part, expected in golden.items():
        if isinstance(expected, dict) and "history" in expected:
            history = test_same_numbers.pinned(now[part], expected)["history"]
            worst = max((abs(record[key] - value) / max(abs(value), 1e-12)
                         for record, recorded in zip(history, expected["history"])
                         for key, value in recorded.items() if isinstance(value, float)), default=0.0)
            parts[part] = {"largest_relative_difference": worst, "weights_digest_same": now[part]["weights"] == expected["weights"]}
        else:
            parts[part] = {"digest_same": now[part] == expected}
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--golden", type=Path, required=True, help="a same_numbers.json recorded elsewhere")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    recorded = json.loads(args.golden.read_text())
    with tempfile.TemporaryDirectory() as folder:
        now = test_same_numbers.numbers_now(Path(folder))
    report = {"benchmark": "golden_drift", "golden_platform": recorded["platform"],
              "platform": test_same_numbers.platform_key(), "parts": drift(recorded["numbers"], now)}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
