#!/usr/bin/env bash
# Background lane (issue 25): the MLP VAE convergence runs of the default recipe, each scored on the whole
# test set when it stops. Every step resumes from its checkpoint, so rerunning the lane continues it.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
for dataset in mnist fashion-mnist; do
    name=${dataset/fashion-mnist/fashion}
    exaug fit-generator --dataset "$dataset" --threads 1 --no-progress --out "carry/$name-converge"
    scores="benchmarks/results/convergence/$dataset-evaluation.json"
    [[ -f "$scores" ]] || exaug evaluate --generator "carry/$name-converge" --samples 5000 --subset 10000 \
        --threads 1 --no-progress --out "$scores"
done
