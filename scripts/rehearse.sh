#!/usr/bin/env bash
# Rehearsal driver (issue 19): every paper config on the tiny offline replicas of its hub models and
# data sets, one system after another, then a check that every run record says rehearsal: true.
#
#   make rehearse [DEVICE=cpu|cuda]          # or: bash scripts/rehearse.sh
#
# Environment (all optional):
#   DEVICE          cpu (default) or cuda; cuda stops at once, one line, if torch sees no CUDA device
#   PY              the python to run (default: the repository's .venv/bin/python)
#   OUT_ROOT        where the runs go (default: runs/rehearse-<UTC time> at the repository root)
#   SYSTEMS         which systems, in order (default: cachemedicpp avalanche_llm esper)
#   LIMITS          per-system wall-clock limits in seconds, e.g. "avalanche_llm=300 esper=120"
#                   (a system past its limit is killed with its children and counts as failed)
#   SKIP_BUILD=1    do not run build-replicas first (they are built on first use anyway)
#
# Contract of a system's script, called from the repository root:
#   LABKIT_REHEARSAL=1 PY=... bash <system>/scripts/rehearse.sh OUT_ROOT DEVICE
# It writes every run under OUT_ROOT (an absolute path, created by the driver), takes its python from
# $PY, runs on DEVICE (cpu or cuda), and exits 0 only if every run completed with its artifacts.
# The driver then requires every run record under OUT_ROOT to say rehearsal: true.
#
# Prints one pass/fail line per system with its wall time, writes OUT_ROOT/rehearse_summary.json, and
# exits 0 only if every system passed (1 if one failed, 2 for a bad DEVICE, 3 for cuda without CUDA).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

DEVICE=${DEVICE:-cpu}
PY=${PY:-$root/.venv/bin/python}
SYSTEMS=${SYSTEMS:-cachemedicpp avalanche_llm esper}
LIMITS=${LIMITS:-}
OUT_ROOT=${OUT_ROOT:-$root/runs/rehearse-$(date -u +%Y%m%dT%H%M%SZ)}

case "$DEVICE" in
  cpu | cuda) ;;
  *) echo "rehearse: DEVICE=$DEVICE: expected cpu or cuda" >&2; exit 2 ;;
esac
if ! command -v "$PY" >/dev/null; then
  echo "rehearse: PY=$PY is not an executable python (run make setup, or set PY)" >&2
  exit 2
fi
if [ "$DEVICE" = cuda ]; then
  # Before anything is built or written: a cuda rehearsal without CUDA would only fail later, per run.
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "rehearse: DEVICE=cuda but torch.cuda.is_available() is false here ($("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1)); use DEVICE=cpu" >&2
    exit 3
  fi
fi
for system in $SYSTEMS; do
  if [ ! -f "$root/$system/scripts/rehearse.sh" ]; then
    echo "rehearse: $system/scripts/rehearse.sh does not exist (SYSTEMS=$SYSTEMS)" >&2
    exit 2
  fi
done

limit_of() {
  local pair
  for pair in $LIMITS; do
    [ "${pair%%=*}" = "$1" ] && { echo "${pair#*=}"; return; }
  done
}

mkdir -p "$OUT_ROOT" || exit 2
OUT_ROOT=$(cd "$OUT_ROOT" && pwd)
export PY DEVICE LABKIT_REHEARSAL=1
echo "rehearse: DEVICE=$DEVICE, runs under $OUT_ROOT, systems: $SYSTEMS"

start_all=$SECONDS
failed=0
summary=()
run_step() {
  # run_step NAME LOG COMMAND...: runs COMMAND with its output shown and kept in LOG; sets step_rc, step_s.
  local name=$1 log=$2
  shift 2
  local t0=$SECONDS
  "$@" 2>&1 | tee "$log"
  step_rc=${PIPESTATUS[0]}
  step_s=$((SECONDS - t0))
  echo "rehearse: $name exit $step_rc in ${step_s} s"
}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  run_step build-replicas "$OUT_ROOT/build_replicas.log" "$PY" -m labkit.zoo build-replicas
  summary+=("build-replicas $step_rc $step_s")
  if [ "$step_rc" -ne 0 ]; then
    # Without replicas every system would fail the same way; the log says why once.
    echo "rehearse: build-replicas failed; see $OUT_ROOT/build_replicas.log" >&2
    failed=1
    SYSTEMS=""
  fi
fi

for system in $SYSTEMS; do
  out="$OUT_ROOT/$system"
  mkdir -p "$out"
  limit=$(limit_of "$system")
  cmd=(bash "$root/$system/scripts/rehearse.sh" "$out" "$DEVICE")
  [ -n "$limit" ] && cmd=(timeout -k 20 "$limit" "${cmd[@]}")
  echo "rehearse: === $system ${limit:+(limit $limit s) }==="
  run_step "$system" "$OUT_ROOT/$system.log" "${cmd[@]}"
  rc=$step_rc
  seconds=$step_s
  if [ "$rc" -eq 0 ]; then
    # A system passes only if every record it wrote says rehearsal: true.
    "$PY" -m labkit.zoo check-rehearsal "$out" 2>&1 | tee -a "$OUT_ROOT/$system.log"
    rc=${PIPESTATUS[0]}
  fi
  [ "$rc" -ne 0 ] && failed=1
  summary+=("$system $rc $seconds")
done

echo
echo "rehearse summary (DEVICE=$DEVICE, $OUT_ROOT):"
json="{\"device\": \"$DEVICE\", \"out_root\": \"$OUT_ROOT\", \"steps\": ["
sep=""
for row in "${summary[@]}"; do
  read -r name rc seconds <<<"$row"
  verdict=$([ "$rc" -eq 0 ] && echo pass || echo FAIL)
  [ "$rc" -eq 124 ] && verdict="FAIL (time limit)"
  printf '  %-16s %-18s %5d s  (exit %d)\n' "$name" "$verdict" "$seconds" "$rc"
  json+="$sep{\"step\": \"$name\", \"exit\": $rc, \"seconds\": $seconds}"
  sep=", "
done
total=$((SECONDS - start_all))
echo "  total            $([ "$failed" -eq 0 ] && echo pass || echo FAIL)               $total s"
json+="], \"seconds\": $total, \"passed\": $([ "$failed" -eq 0 ] && echo true || echo false)}"
echo "$json" >"$OUT_ROOT/rehearse_summary.json"
exit "$failed"
