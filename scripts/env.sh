#!/usr/bin/env bash
# Creates .venv (once) and installs exaug with its test extra into it. Sourced by the other scripts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
# This machine's pins (the builds its kind serves from local disk), not the package's: pyproject.toml states
# the lowest releases exaug needs and no cap.
constraints="scripts/constraints.txt"
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    .venv/bin/pip install --quiet -c "$constraints" torch torchvision
fi
.venv/bin/pip install --quiet -c "$constraints" -e ".[test]"
export PATH="$PWD/.venv/bin:$PATH"
