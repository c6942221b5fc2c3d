#!/usr/bin/env bash
# Esper rehearsal (issue 19): the CIFAR-10 and TinyStories paper configs on the replicas of their hub
# data sets (and GPT-2 tokenizer), at the sizes of configs/rehearsal_profile.yaml (printed at start):
# train-host (heuristic), train-tamiyo (2 PPO updates), evaluate (PPO vs heuristic and random).
#
#   LABKIT_REHEARSAL=1 bash esper/scripts/rehearse.sh OUT_ROOT DEVICE    # DEVICE: cpu or cuda
#
# Called by the repository's scripts/rehearse.sh (`make rehearse`); takes its python from $PY; TASKS
# (default: cifar10 tinystories) picks some. Exits with the first failing command's code, after
# checking that each run wrote its locked files.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: LABKIT_REHEARSAL=1 bash esper/scripts/rehearse.sh OUT_ROOT cpu|cuda" >&2
  exit 2
fi
out=$1
device=$2
here=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$here/../.venv/bin/python}
TASKS=${TASKS:-cifar10 tinystories}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$here"

locked() {
  # locked RUN FILE...: each FILE exists in RUN.
  local run=$1 f
  shift
  for f in "$@"; do
    [ -f "$run/$f" ] || { echo "esper rehearsal: $run lacks $f" >&2; exit 1; }
  done
}

for task in $TASKS; do
  t0=$SECONDS
  echo "esper rehearsal: $task"
  "$PY" -m esper train-host --config "configs/$task.yaml" --policy heuristic \
    --run_dir "$out/${task}_host" "device=$device"
  locked "$out/${task}_host" run_record.json steps.jsonl figures/learning_curves.png
  "$PY" -m esper train-tamiyo --config "configs/ppo_$task.yaml" --run_dir "$out/${task}_tamiyo" \
    "device=$device"
  locked "$out/${task}_tamiyo" run_record.json figures/ppo_returns.png figures/ppo_diagnostics.png
  "$PY" -m esper evaluate --config "configs/eval_$task.yaml" \
    --policies "ppo:$out/${task}_tamiyo,heuristic,random" --run_dir "$out/${task}_eval" "device=$device"
  locked "$out/${task}_eval" run_record.json summary.json results.md results.tex figures/return_ci.png
  echo "esper rehearsal: $task done in $((SECONDS - t0)) s"
done
