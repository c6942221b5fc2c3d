#!/usr/bin/env bash
# AvalancheLLM rehearsal (issue 19): the paper config, configs/pipeline.yaml, phases 0-8 and `controls`,
# both model roles (INSTRUCT and BASE), bf16, on the replicas of Qwen2.5-7B(-Instruct), wikitext-103,
# C4 en (streamed) and ARC-Challenge, at the sizes of configs/rehearsal_profile.yaml.
#
#   LABKIT_REHEARSAL=1 bash avalanche_llm/scripts/rehearse.sh OUT_ROOT DEVICE    # DEVICE: cpu or cuda
#
# Called by the repository's scripts/rehearse.sh (`make rehearse`); takes its python from $PY.
# Exits with the first failing phase's code; every run lands under OUT_ROOT.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: LABKIT_REHEARSAL=1 bash avalanche_llm/scripts/rehearse.sh OUT_ROOT cpu|cuda" >&2
  exit 2
fi
if [ "${LABKIT_REHEARSAL:-}" != 1 ]; then
  echo "avalanche rehearsal: set LABKIT_REHEARSAL=1 (without it configs/pipeline.yaml goes to the hub)" >&2
  exit 2
fi
out=$1
device=$2
here=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$here/../.venv/bin/python}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$here"

# Sizes are capped by configs/rehearsal_profile.yaml (applied because LABKIT_REHEARSAL=1).
common=(--config configs/pipeline.yaml --device "$device" --dtype bf16 --out_root "$out")
if [ "$device" = cpu ]; then
  # The replicas are 64 wide: on a busy 2-core machine a second torch thread made one forward pass of
  # 8 x 256 tokens 9x slower (26 s vs 3 s at load ~30), as the local profile found for its models.
  common+=(--set runtime.torch_threads=1)
fi

phase() {
  local t0=$SECONDS
  echo "avalanche rehearsal: $*"
  "$PY" -m avalanche_llm "$@" "${common[@]}"
  echo "avalanche rehearsal: $1 ${3:-} done in $((SECONDS - t0)) s"
}

role_chain() {
  # Phases 1-6 of one role; each finds its inputs by that role's config hash, so the roles never meet.
  local p
  for p in phase1_calibrate phase2_gain_grid phase2_select_gstar phase3_extract_rasters \
    phase4_run_nulls phase5_analyze_and_export phase6_generalize_b_metrics phase6_arc_mcq_eval; do
    phase "$p" --model_role "$1"
  done
}

phase phase0_validate_env
# The two roles are independent until phase 7 and each uses one torch thread on CPU: side by side they
# fill the two cores of a small machine, halving this system's wall time. Output lines carry the role.
pids=()
for role in INSTRUCT BASE; do
  (role_chain "$role" 2>&1 | sed -u "s/^/[$role] /") &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do
  wait "$pid" || rc=$?
done
[ "$rc" -eq 0 ] || { echo "avalanche rehearsal: a role failed (exit $rc)" >&2; exit "$rc"; }
phase phase7_paper_export
phase phase8_release
phase controls
