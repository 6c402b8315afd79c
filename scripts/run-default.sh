#!/usr/bin/env bash
# The main job on its built-in default (`make run`): the tutorial's programs, in turn.
set -euo pipefail
oasis=${1:-.build/release/oasis}
for program in hello sleep heads-or-tails echo; do
    echo "== oasis $program"
    start=$(date +%s.%N)
    "$oasis" "$program"
    awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "   (%.2f s)\n", e - s }'
done
