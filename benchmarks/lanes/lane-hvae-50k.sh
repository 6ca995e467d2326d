#!/usr/bin/env bash
# Background lane (issue 24): the HVAE on all 50,000 MNIST images. Its 311-epoch state is exported for the
# §5.4 test runs, then it trains on to 500 epochs and is scored on the whole test set, then the test runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
train=(exaug fit-generator --arch hvae --dataset mnist --prior exemplar --search knn --neighbour-gradient
       --gradient-neighbours all --warmup-epochs 40 --threads 1 --no-progress --out carry/mnist-hvae)
snapshot=carry/hvae-clf/generator-e311
if [[ ! -f "$snapshot/config.json" ]]; then
    "${train[@]}" --epochs 311
    exaug export --generator carry/mnist-hvae --no-images --version "mnist-hvae (rerun), 311 epochs (not converged)" \
        --out "$snapshot"
fi
"${train[@]}" --epochs 500
scores=benchmarks/results/hvae_50k/evaluation.json
[[ -f "$scores" ]] || exaug evaluate --generator carry/mnist-hvae --samples 5000 --subset 10000 --threads 1 \
    --no-progress --out "$scores"
exaug fit-classifier --dataset mnist --generator "$snapshot" --hidden 1024 1024 --lam 0.4 --lr 0.1 \
    --first-seed 0 --seeds 10 --workers 0 --threads 1 --no-progress --out carry/clf-hvae-test
