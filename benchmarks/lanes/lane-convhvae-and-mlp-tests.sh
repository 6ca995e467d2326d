#!/usr/bin/env bash
# Background lane (issue 24): the ConvHVAE's exemplar-prior cell of Table 3 at the prior ablation's budget,
# then the bundled MLP generator's §5.4 test runs that the HVAE's are paired with. Each step resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
python benchmarks/ablations.py --study prior --arch convhvae --variants exemplar --train 10000 --epochs 30 \
    --warmup 10 --seeds 0 --test-images 500 --samples 1000 --threads 1 --runs carry/ablations
[[ -f carry/mnist-v1/config.json ]] || exaug export --generator mnist --no-images --out carry/mnist-v1
exaug fit-classifier --dataset mnist --generator carry/mnist-v1 --hidden 1024 1024 --lam 0.4 --lr 0.05 \
    --first-seed 0 --seeds 10 --workers 0 --threads 1 --no-progress --out carry/clf-mlp-test
