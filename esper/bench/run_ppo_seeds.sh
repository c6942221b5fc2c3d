#!/usr/bin/env bash
# Train Tamiyo seeds for one local task, one after another, listing each finished policy in
# $READY (default /tmp/esper_ppo_ready.txt). Run two of these side by side for the two tasks:
#   bash bench/run_ppo_seeds.sh cifar10 0 1 2 3 4 &  bash bench/run_ppo_seeds.sh tinystories 0 1 2 3 4 &
set -euo pipefail
task=$1; shift
ready=${READY:-/tmp/esper_ppo_ready.txt}
for k in "$@"; do
  run=runs/ppo_${task}_s$k
  ../.venv/bin/python -m esper train-tamiyo --config configs/ppo_${task}_local.yaml --run_dir "$run" seed=$k
  echo "$(pwd)/$run/policy.pt" >> "$ready"
done
