#!/usr/bin/env bash
# CacheMedic++ rehearsal (issue 19): every paper config on the replicas of its hub models and data
# sets, at the sizes of configs/rehearsal_profile.yaml (printed at start):
#   mve.yaml, second_model_smoke_gpt2_large.yaml, mve_qwen.yaml: train -> eval -> stability -> plots;
#   full_gpt2_matrix.yaml and ood_loto_all.yaml: one run each through the sweep (all four phases).
#
#   LABKIT_REHEARSAL=1 bash cachemedicpp/scripts/rehearse.sh OUT_ROOT DEVICE    # DEVICE: cpu or cuda
#
# Called by the repository's scripts/rehearse.sh (`make rehearse`); takes its python from $PY; CONFIGS
# (file names, default: all five) picks some. Exits with the first failing command's code, after
# checking that each run wrote every locked figure and table.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: LABKIT_REHEARSAL=1 bash cachemedicpp/scripts/rehearse.sh OUT_ROOT cpu|cuda" >&2
  exit 2
fi
out=$1
device=$2
here=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$here/../.venv/bin/python}
CONFIGS=${CONFIGS:-mve.yaml second_model_smoke_gpt2_large.yaml mve_qwen.yaml full_gpt2_matrix.yaml ood_loto_all.yaml}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$here"

locked() {
  # Every figure and table cachemedicpp.plots locks, in one run directory.
  "$PY" - "$1" <<'PY'
import sys
from pathlib import Path

from cachemedicpp.plots import FIGURES, TABLES

run = Path(sys.argv[1]) / "paper"
missing = [n for n in FIGURES if not (run / "figures" / n).is_file()]
missing += [n for n in TABLES if not (run / "tables" / n).is_file()]
if missing:
    sys.exit(f"cachemedicpp rehearsal: {run} lacks {', '.join(missing)}")
PY
}

run_config() {
  # train -> eval -> stability -> plots (or the sweep) of one config, into its own run directory.
  local config=$1 t0=$SECONDS name=${1%.yaml} phase record
  echo "cachemedicpp rehearsal: $config"
  if grep -q '^sweep_name:' "configs/$config"; then
    "$PY" -m cachemedicpp.sweep --sweep_config "configs/$config" --out_root "$out/$name" "device=$device"
    for record in "$out/$name"/*/*/run_record.json; do locked "$(dirname "$record")"; done
  else
    for phase in train eval stability; do
      "$PY" -m cachemedicpp.$phase --config "configs/$config" --run_dir "$out/$name" "device=$device"
    done
    "$PY" -m cachemedicpp.plots --run_dir "$out/$name"
    locked "$out/$name"
  fi
  echo "cachemedicpp rehearsal: $config done in $((SECONDS - t0)) s"
}

lane() {
  # lane K: every other config, starting at the K-th (0 or 1), one after another.
  local i=0 config
  for config in $CONFIGS; do
    # An if, not &&: set -e does not reach inside a function called on the left of &&.
    if [ $((i % 2)) -eq "$1" ]; then run_config "$config"; fi
    i=$((i + 1))
  done
}

# The configs write separate run directories and each run is mostly one thread: two lanes side by side
# fill the two cores of a small machine. Output lines carry the config's lane.
pids=()
for k in 0 1; do
  (lane "$k" 2>&1 | sed -u "s/^/[lane $k] /") &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do
  wait "$pid" || rc=$?
done
[ "$rc" -eq 0 ] || { echo "cachemedicpp rehearsal: a config failed (exit $rc)" >&2; exit "$rc"; }
