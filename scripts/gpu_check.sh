#!/usr/bin/env bash
# One prepared check for a lent GPU machine (issue 19): the rehearsal on cuda, then the GPU benches.
#
#   bash scripts/gpu_check.sh OUTDIR
#
# Made for a machine without network and without the project's virtualenv: python comes from $PY
# (default python3) with torch, transformers and the pinned pure-Python deps importable (e.g. wheels
# installed with `pip install --no-index --no-deps --target /tmp/site` and PYTHONPATH=/tmp/site); this
# script puts the five project folders on PYTHONPATH itself and uses a scratch LABKIT_HOME.
#
# Steps, each under `timeout` with its own limit (seconds, overridable as LIMIT_<STEP>=N), so a hang
# costs only its own step; a failed step is recorded and the next one runs:
#   env            nvidia-smi, python, torch and CUDA versions                       (LIMIT_ENV=30)
#   build          python -m labkit.zoo build-replicas                               (LIMIT_BUILD=180)
#   <system>       its rehearsal on DEVICE via scripts/rehearse.sh, one per system    (LIMIT_CACHEMEDICPP=150,
#                  LIMIT_AVALANCHE_LLM=150, LIMIT_ESPER=90)
#   bench_raster   avalanche_llm/bench/bench_raster.py, Qwen2.5-0.5B shape            (LIMIT_BENCH_RASTER=45)
#   bench_decode   cachemedicpp/bench/decode_overhead.py, gpt2-medium shape           (LIMIT_BENCH_DECODE=45)
# The defaults sum to under 8 minutes on a 16-core H200 machine.
#
# OUTDIR gets at most 7 flat files: gpu_check.log (every step's output, in order), gpu_check_summary.json
# (per step: exit code, wall time, limit), env.txt, rehearse_summary.json, bench_raster.txt,
# bench_decode.txt and runs.tar.gz (the rehearsal run trees).
#
# Other settings: DEVICE (default cuda; cpu runs everything here without a GPU), SYSTEMS (default
# cachemedicpp avalanche_llm esper), STEPS (default: all, in the order above; e.g. STEPS="env bench_raster"),
# BENCH_RASTER_ARGS and BENCH_DECODE_ARGS (the benches' model and size flags; defaults below).
# DEVICE=cuda without a CUDA device stops at once with one line (exit 3), before any step.
set -uo pipefail
if [ $# -ne 1 ]; then
  echo "usage: bash scripts/gpu_check.sh OUTDIR" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1" || exit 2
outdir=$(cd "$1" && pwd)

PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
SYSTEMS=${SYSTEMS:-cachemedicpp avalanche_llm esper}
STEPS=${STEPS:-env build $SYSTEMS bench_raster bench_decode}
# Bench sizes: paper shapes with random weights (no zoo model to build), small enough for seconds on a GPU.
BENCH_RASTER_ARGS=${BENCH_RASTER_ARGS:---models qwen05 --windows 8 --seq_len 256 --batch 8 --repeats 5}
BENCH_DECODE_ARGS=${BENCH_DECODE_ARGS:---shape gpt2-medium --prompt_tokens 128 --new_tokens 32 --repeats 3}
export PY DEVICE
export PYTHONPATH="$root/labkit:$root/cachemedicpp:$root/avalanche_llm:$root/esper:$root/dream${PYTHONPATH:+:$PYTHONPATH}"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
export LABKIT_HOME=${LABKIT_HOME:-$scratch/labkit_home}
# No network there: never let a library wait on the hub (rehearsals resolve hub ids to replicas).
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
runs=$scratch/runs
log=$outdir/gpu_check.log
: >"$log"

case "$DEVICE" in
  cpu | cuda) ;;
  *) echo "gpu_check: DEVICE=$DEVICE: expected cuda or cpu" | tee -a "$log" >&2; exit 2 ;;
esac
if ! command -v "$PY" >/dev/null; then
  echo "gpu_check: PY=$PY is not an executable python" | tee -a "$log" >&2
  exit 2
fi
if [ "$DEVICE" = cuda ] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>>"$log"; then
  echo "gpu_check: DEVICE=cuda but torch.cuda.is_available() is false here; nothing was run" | tee -a "$log" >&2
  exit 3
fi

declare -A default_limit=(
  [env]=30 [build]=180 [cachemedicpp]=150 [avalanche_llm]=150 [esper]=90 [bench_raster]=45
  [bench_decode]=45
)
limit_of() {
  local var="LIMIT_${1^^}"
  echo "${!var:-${default_limit[$1]:-120}}"
}

env_report() {
  command -v nvidia-smi >/dev/null && nvidia-smi || echo "nvidia-smi: not found"
  "$PY" - <<'EOF'
import platform, sys
import torch, transformers
print("python", sys.version.split()[0], platform.platform())
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
print("transformers", transformers.__version__)
EOF
}

command_of() {
  # The command of one step, as words (run from the repository root).
  case "$1" in
    env) echo env_report ;;
    build) echo "$PY" -m labkit.zoo build-replicas ;;
    bench_raster) echo "$PY" avalanche_llm/bench/bench_raster.py --device "$DEVICE" "$BENCH_RASTER_ARGS" ;;
    bench_decode) echo "$PY" cachemedicpp/bench/decode_overhead.py --device "$DEVICE" "$BENCH_DECODE_ARGS" ;;
    *) echo env SYSTEMS="$1" SKIP_BUILD=1 OUT_ROOT="$runs/$1" bash scripts/rehearse.sh ;;
  esac
}

cd "$root"
echo "gpu_check: DEVICE=$DEVICE PY=$PY LABKIT_HOME=$LABKIT_HOME steps: $STEPS" | tee -a "$log"
json="["
sep=""
for step in $STEPS; do
  limit=$(limit_of "$step")
  read -r -a cmd <<<"$(command_of "$step")"
  echo "=== gpu_check: $step (limit $limit s): ${cmd[*]}" | tee -a "$log"
  t0=$SECONDS
  if [ "$step" = env ]; then
    export -f env_report
    timeout -k 10 "$limit" bash -c env_report 2>&1 | tee "$outdir/env.txt" >>"$log"
  elif [[ "$step" == bench_* ]]; then
    timeout -k 10 "$limit" "${cmd[@]}" 2>&1 | tee "$outdir/$step.txt" >>"$log"
  else
    timeout -k 20 "$limit" "${cmd[@]}" >>"$log" 2>&1
  fi
  rc=${PIPESTATUS[0]}
  seconds=$((SECONDS - t0))
  echo "=== gpu_check: $step exit $rc in $seconds s" | tee -a "$log"
  json+="$sep{\"step\": \"$step\", \"exit\": $rc, \"seconds\": $seconds, \"limit\": $limit}"
  sep=", "
done
json+="]"

if [ -d "$runs" ]; then
  tar -C "$scratch" -czf "$outdir/runs.tar.gz" runs
fi
"$PY" - "$json" "$outdir" "$DEVICE" "$runs" <<'EOF'
import json, pathlib, sys
steps, outdir = json.loads(sys.argv[1]), pathlib.Path(sys.argv[2])
# Each system's rehearse.sh wrote its own summary; one list of them comes back.
rehearsals = [json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[4]).glob("*/rehearse_summary.json"))]
if rehearsals:
    (outdir / "rehearse_summary.json").write_text(json.dumps(rehearsals, indent=1) + "\n")
summary = {"device": sys.argv[3], "passed": all(s["exit"] == 0 for s in steps), "steps": steps}
(outdir / "gpu_check_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
for s in steps:
    verdict = "pass" if s["exit"] == 0 else ("FAIL (time limit)" if s["exit"] in (124, 137) else "FAIL")
    print(f"  {s['step']:<16} {verdict:<18} {s['seconds']:>4} s of {s['limit']:>4} (exit {s['exit']})")
sys.exit(0 if summary["passed"] else 1)
EOF
status=$?
rm -rf "$scratch"
echo "gpu_check: outputs in $outdir"
exit $status
