#!/usr/bin/env bash
# Refresh the result files of the runs still training (their curves so far), regenerate the docs' tables,
# and save what the runs need to resume into benchmarks/in-progress. Run it before each commit of results.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
logged() { [[ -f "$1/train_log.jsonl" ]]; }  # a run that has trained an epoch
if logged carry/mnist-converge; then
    runs=(--run "MNIST, MLP VAE (default recipe)=carry/mnist-converge")
    logged carry/fashion-converge && runs+=(--run "Fashion-MNIST, MLP VAE (default recipe)=carry/fashion-converge")
    python benchmarks/run_curves.py "${runs[@]}" --out benchmarks/results/convergence/curves.json \
        --plot docs/figures/convergence-latent-scale.png
fi
if logged carry/mnist-hvae; then
    python benchmarks/run_curves.py --run hvae=carry/mnist-hvae --out benchmarks/results/hvae_50k/curve.json
fi
if logged carry/ablations/prior-convhvae/exemplar/seed0; then
    python benchmarks/run_curves.py --run convhvae=carry/ablations/prior-convhvae/exemplar/seed0 \
        --out benchmarks/results/ablations/prior-convhvae-curves.json
fi
python benchmarks/tables.py
python benchmarks/carry.py save | tail -n 1
