#!/usr/bin/env bash
# Creates .venv (once) and installs exaug with its test extra into it. Sourced by the other scripts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    # pinned to the builds that this machine kind serves from local disk
    .venv/bin/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/pip install --quiet -e ".[test]"
export PATH="$PWD/.venv/bin:$PATH"
