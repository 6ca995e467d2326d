#!/usr/bin/env bash
# Restore what benchmarks/in-progress carries (on a new machine), then start each lane that is not running,
# in the background, its output in carry/NAME.log. Rerun it at the start of every session.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh >/dev/null
exaug data fetch --package-sources
python benchmarks/carry.py restore
mkdir -p carry
for lane in benchmarks/lanes/lane-*.sh; do
    name=$(basename "$lane" .sh)
    if pgrep -f "bash $lane" >/dev/null; then
        echo "$name: already running"
    else
        nohup bash "$lane" >>"carry/$name.log" 2>&1 &
        echo "$name: started (pid $!)"
    fi
done
