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
#   env            nvidia-smi, python, torch and CUDA versions                    (LIMIT_ENV=30)
#   build          every replica built side by side, then build-replicas            (LIMIT_BUILD=120)
#   <system>       its rehearsal on DEVICE via scripts/rehearse.sh; the systems run  (LIMIT_CACHEMEDICPP=210,
#                  side by side, each under its own limit                          LIMIT_AVALANCHE_LLM=210,
#                                                                                  LIMIT_ESPER=210)
#   bench_raster   avalanche_llm/bench/bench_raster.py, Qwen2.5-0.5B shape         (LIMIT_BENCH_RASTER=45)
#   bench_decode   cachemedicpp/bench/decode_overhead.py, gpt2-medium shape        (LIMIT_BENCH_DECODE=45)
# At their limits the steps take 30 + 120 + 210 + 45 + 45 s = 7 min 30 s (the budget: ~8 min).
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
  [env]=30 [build]=120 [cachemedicpp]=210 [avalanche_llm]=210 [esper]=210 [bench_raster]=45
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

build_replicas() {
  # Each replica trains on one CPU thread: build them side by side, then let build-replicas
  # confirm (it only reads the cache now) and print where each is.
  local names pids=() rc=0 pid
  names=$("$PY" -c 'from labkit.zoo.catalog import replicas; print(" ".join(i.zoo_name for i in replicas()))') || return 1
  for name in $names; do
    "$PY" -m labkit.zoo build "$name" >"$scratch/build_${name#local:}.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  cat "$scratch"/build_*.log
  [ "$rc" -eq 0 ] && "$PY" -m labkit.zoo build-replicas
}
export -f env_report build_replicas
export scratch

command_of() {
  # The command of one step, as words (run from the repository root).
  case "$1" in
    env) echo bash -c env_report ;;
    build) echo bash -c build_replicas ;;
    bench_raster) echo "$PY" avalanche_llm/bench/bench_raster.py --device "$DEVICE" "$BENCH_RASTER_ARGS" ;;
    bench_decode) echo "$PY" cachemedicpp/bench/decode_overhead.py --device "$DEVICE" "$BENCH_DECODE_ARGS" ;;
    *) echo env SYSTEMS="$1" SKIP_BUILD=1 OUT_ROOT="$runs/$1" bash scripts/rehearse.sh ;;
  esac
}

start_step() {
  # start_step STEP: runs it in the background under its limit; its output goes to logs/STEP.log and
  # "exit seconds limit" to status/STEP when it ends.
  local step=$1 limit cmd
  limit=$(limit_of "$step")
  read -r -a cmd <<<"$(command_of "$step")"
  echo "=== gpu_check: $step started (limit $limit s): ${cmd[*]}" | tee -a "$log"
  (
    t0=$SECONDS
    timeout -k 20 "$limit" "${cmd[@]}" >"$scratch/logs/$step.log" 2>&1
    echo "$? $((SECONDS - t0)) $limit" >"$scratch/status/$step"
  ) &
}

finish_step() {
  # finish_step STEP: appends its log, keeps env's and the benches' output as files, records it.
  local step=$1 rc seconds limit
  read -r rc seconds limit <"$scratch/status/$step"
  { echo "=== gpu_check: $step output"; cat "$scratch/logs/$step.log"; } >>"$log"
  case "$step" in env | bench_*) cp "$scratch/logs/$step.log" "$outdir/$step.txt" ;; esac
  echo "=== gpu_check: $step exit $rc in $seconds s" | tee -a "$log"
  json+="$sep{\"step\": \"$step\", \"exit\": $rc, \"seconds\": $seconds, \"limit\": $limit}"
  sep=", "
}

cd "$root"
mkdir -p "$scratch/logs" "$scratch/status"
echo "gpu_check: DEVICE=$DEVICE PY=$PY LABKIT_HOME=$LABKIT_HOME steps: $STEPS" | tee -a "$log"
json="["
sep=""
# The system rehearsals run side by side (tiny models: one GPU and 16 cores are plenty); every other
# step runs alone, so the benches time an otherwise idle device.
group=()
for step in $STEPS; do
  case " $SYSTEMS " in
    *" $step "*)
      start_step "$step"
      group+=("$step")
      continue
      ;;
  esac
  wait
  for g in "${group[@]}"; do finish_step "$g"; done
  group=()
  start_step "$step"
  wait
  finish_step "$step"
done
wait
for g in "${group[@]}"; do finish_step "$g"; done
json+="]"

if [ -d "$runs" ]; then
  tar -C "$scratch" -czf "$outdir/runs.tar.gz" runs
  # What comes back is capped at 16 MB a file: past 15 MB, keep the records, tables, figures and
  # logs and drop the weights and arrays.
  if [ "$(stat -c %s "$outdir/runs.tar.gz")" -gt 15000000 ]; then
    echo "gpu_check: runs.tar.gz over 15 MB; leaving out *.pt *.safetensors *.npz *.bin" | tee -a "$log"
    tar -C "$scratch" -czf "$outdir/runs.tar.gz" --exclude='*.pt' --exclude='*.safetensors' \
      --exclude='*.npz' --exclude='*.bin' runs
  fi
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
