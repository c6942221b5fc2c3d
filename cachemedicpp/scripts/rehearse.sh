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

for config in $CONFIGS; do
  t0=$SECONDS
  name=${config%.yaml}
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
done
