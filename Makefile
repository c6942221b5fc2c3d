# Two commands: `make test` and `make demo`. Both set up everything from nothing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.setup-done
FOLDERS := labkit cachemedicpp avalanche_llm esper dream
DEB_PACKAGES := stress-ng fio chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# MLflow tracking (labkit/README.md, "Track runs in MLflow"): every demo below runs in its system's folder,
# so a relative SQLite store (MLFLOW_TRACKING_URI=sqlite:///X.db) is made absolute here, at the root.
ifeq ($(patsubst sqlite:///%,,$(MLFLOW_TRACKING_URI))$(filter sqlite:////%,$(MLFLOW_TRACKING_URI)),)
ifneq ($(MLFLOW_TRACKING_URI),)
export MLFLOW_TRACKING_URI := sqlite:///$(CURDIR)/$(patsubst sqlite:///%,%,$(MLFLOW_TRACKING_URI))
endif
endif

.PHONY: setup pg test test-rehearsal lint demo demo-labkit demo-cachemedicpp demo-avalanche demo-esper demo-dream rehearse mlflow-ui clean-venv

setup: $(STAMP) pg

# Re-run set-up only when the pins or a pyproject change; otherwise this is a no-op.
$(STAMP): constraints.txt $(foreach f,$(FOLDERS),$(f)/pyproject.toml)
	@missing=""; for p in $(DEB_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q pip==26.3
	@# torch first and by exact version: the CPU build from this machine's disk, never a CUDA build.
	$(PIP) install -q torch==2.13.0 -c constraints.txt
	@# compat mode puts each folder on sys.path, so `import labkit` from the repo root finds the package,
	@# not the same-named folder as a namespace package.
	@echo "installing the five folders (editable, pinned); log in $(VENV)/install.log"
	@$(PIP) install -c constraints.txt --config-settings editable_mode=compat \
	  $(foreach f,$(FOLDERS),-e ./$(f)[dev]) >$(VENV)/install.log 2>&1 || { tail -40 $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

# The dream fleet tests' PostgreSQL: this machine's own at 127.0.0.1:5432, else Debian's postgresql
# (installed if missing) in a throwaway cluster on a free port; its URL goes to $(PG_URL) for the tests.
PG_URL := $(VENV)/pg_url
pg: $(STAMP)
	@bash dream/tests/postgres.sh $(PG_URL) $(PY)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

test: $(STAMP) lint pg
	DREAM_TEST_PG_URL=$$(cat $(PG_URL)) $(PY) -m pytest -m "not rehearsal"

# The paper configs rehearsed end to end on test-size replicas (pytest marker `rehearsal`, about a
# minute each): a CI step of its own, so `make test` keeps its time budget.
test-rehearsal: $(STAMP)
	$(PY) -m pytest -m rehearsal

# CacheMedic++, AvalancheLLM and Esper each train on one thread, so on two cores AvalancheLLM then Esper run
# beside CacheMedic++ (which keeps the terminal and its live progress; theirs goes to runs/demo-side.log,
# printed when both lanes end). D-REAM runs last and alone: it measures the host. From a fresh clone on
# 2 cores: 13 min 06 s (README.md, Two commands).
SIDE_LOG := runs/demo-side.log
demo: $(STAMP)
	@$(MAKE) --no-print-directory demo-labkit
	@mkdir -p runs && echo "AvalancheLLM, then Esper, run beside CacheMedic++: their output goes to $(SIDE_LOG)"
	@( LABKIT_PROGRESS=lines $(MAKE) --no-print-directory demo-avalanche demo-esper >$(SIDE_LOG) 2>&1; \
	   echo $$? >$(SIDE_LOG).rc ) & \
	  $(MAKE) --no-print-directory demo-cachemedicpp; front=$$?; wait; \
	  echo "---- AvalancheLLM and Esper ($(SIDE_LOG)) ----"; cat $(SIDE_LOG); \
	  side=$$(cat $(SIDE_LOG).rc); [ $$front = 0 ] && [ $$side = 0 ] || { echo "demo: a lane failed"; exit 1; }
	@$(MAKE) --no-print-directory demo-dream

demo-labkit: $(STAMP)
	cd labkit && ../$(PY) -m labkit.selfcheck --run_dir runs/selfcheck-$$(date -u +%Y%m%dT%H%M%SZ)

# CacheMedic++: mve_local train -> eval -> stability -> plots with a reduced eval budget (32 PPL windows,
# 40 SST-2 prompts, 20 needles) and the four defenses that hold every task's best heuristic: 5 min 56 s
# (342 s CPU) with AvalancheLLM and Esper beside it on 2 otherwise idle cores (cachemedicpp/README.md, Demo).
CMPP_DEMO := eval.wikitext2_ppl.max_windows=32 eval.sst2_prompted.n=40 eval.needle_long_context.n=20 stability.prompts=10 \
  'eval.defenses=[no_defense,masking_dropout,clipping_renorm,cachemedic]'
demo-cachemedicpp: $(STAMP)
	cd cachemedicpp && out=runs/demo-$$(date -u +%Y%m%dT%H%M%SZ) && \
	  for phase in train eval stability; do \
	    ../$(PY) -m cachemedicpp.$$phase --config configs/mve_local.yaml --run_dir $$out $(CMPP_DEMO) || exit $$?; done && \
	  ../$(PY) -m cachemedicpp.plots --run_dir $$out && echo "figures: cachemedicpp/$$out/paper/figures"

# AvalancheLLM: the local pipeline, phases 0-8, for the INSTRUCT role (2 min 49 s beside CacheMedic++).
AV_PHASES := phase0_validate_env phase1_calibrate phase2_gain_grid phase2_select_gstar phase3_extract_rasters \
  phase4_run_nulls phase5_analyze_and_export phase6_generalize_b_metrics phase6_arc_mcq_eval phase7_paper_export \
  phase8_release
demo-avalanche: $(STAMP)
	cd avalanche_llm && out=runs/demo-$$(date -u +%Y%m%dT%H%M%SZ) && \
	  for p in $(AV_PHASES) controls; do ../$(PY) -m avalanche_llm $$p --config configs/pipeline_local.yaml --out_root $$out || exit $$?; done && \
	  echo "AvalancheLLM controls:" && find $$out -name controls.json && \
	  echo "AvalancheLLM tables:" && find $$out -path '*/tables/*.csv' | sort && \
	  echo "AvalancheLLM figures:" && find $$out -path '*/figs/*.png' | sort

# Esper: one local heuristic episode on each task (the LM task first builds local:tiny-gpt2 for its
# tokenizer), then a short LM Tamiyo (2 PPO updates) evaluated against heuristic and random (2 min beside
# CacheMedic++; with AvalancheLLM, 4 min 52 s and 295 s CPU).
demo-esper: $(STAMP)
	cd esper && out=runs/demo-$$(date -u +%Y%m%dT%H%M%SZ) && \
	  ../$(PY) -m esper train-host --config configs/cifar10_local.yaml --policy heuristic --run_dir $$out/host_cnn && \
	  ../$(PY) -m esper train-host --config configs/tinystories_local.yaml --policy heuristic --run_dir $$out/host_lm && \
	  ../$(PY) -m esper train-tamiyo --config configs/ppo_tinystories_local.yaml --run_dir $$out/tamiyo \
	    ppo.episodes=8 ppo.baseline_episodes=2 && \
	  ../$(PY) -m esper evaluate --config configs/eval_tinystories_local.yaml --episodes 4 \
	    --policies ppo:$$out/tamiyo,heuristic,random --run_dir $$out/eval && \
	  echo "Esper demo runs and figures: esper/$$out"

# D-REAM: the local shadow-mode service on cpu and storage for 2 generations of 3, ABBA-paired trials at the
# local profile's block counts (the demo's size is set here, not in the profile): 4 min 54 s run alone at
# load 0.2-1.0 (dream/README.md, Measured).
DREAM_DEMO := --domains cpu,storage --generations 2 --population 3
demo-dream: $(STAMP)
	cd dream && out=runs/demo-$$(date -u +%Y%m%dT%H%M%SZ) && \
	  ../$(PY) -m dream service --profile local $(DREAM_DEMO) --out_root $$out && \
	  ../$(PY) -m dream report --out_root $$out

# Rehearsal (issue 19): every paper config on tiny offline replicas of its hub models and data sets
# (LABKIT_REHEARSAL=1, see "Before your first GPU run" in README.md), at the rehearsal profile's sizes:
# scripts/rehearse.sh builds the replicas, runs each system's <system>/scripts/rehearse.sh, requires every
# run record to say rehearsal: true, and prints a pass/fail and wall-time line per system.
# DEVICE=cuda runs the same list on a CUDA device, and stops at once if torch sees none.
DEVICE ?= cpu
rehearse: $(STAMP)
	DEVICE=$(DEVICE) PY=$(abspath $(PY)) bash scripts/rehearse.sh

# The MLflow web UI on a tracking store (labkit/README.md, "Track runs in MLflow"). The full mlflow package of
# this version wants pyarrow<26 and the project pins 26, so it gets its own environment, made on first use; it is
# the version of the pinned mlflow-skinny client, so it reads the store's schema.
MLFLOW_VERSION := $(shell sed -n 's/^mlflow-skinny==//p' constraints.txt)
MLFLOW_UI_VENV := .venv-mlflow
MLFLOW_STORE ?= sqlite:///mlruns.db
mlflow-ui:
	@[ -x $(MLFLOW_UI_VENV)/bin/mlflow ] || { $(PYTHON) -m venv $(MLFLOW_UI_VENV) && \
	  $(MLFLOW_UI_VENV)/bin/pip install -q mlflow==$(MLFLOW_VERSION); }
	$(MLFLOW_UI_VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_STORE)

clean-venv:
	rm -rf $(VENV)
