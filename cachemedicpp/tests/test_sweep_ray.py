"""A CacheMedic++ micro-sweep on a local Ray cluster has the local executor's summary."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import ray
import yaml

from cachemedicpp.sweep import ENTRY, load_plan
from labkit.executors import LocalExecutor, RayExecutor
from labkit.sweep import run_sweep

HERE = Path(__file__).resolve().parent
TIMING = ("updated_utc", "wall_s", "started_utc", "finished_utc")


def stripped(doc: dict) -> str:
    """The summary without its timing and host fields, serialised canonically."""
    doc = {k: v for k, v in doc.items() if k not in TIMING}
    doc["runs"] = [{k: v for k, v in r.items() if k not in (*TIMING, "node")} for r in doc["runs"]]
    return json.dumps(doc, sort_keys=True)


def test_micro_sweep_on_ray_equals_the_local_one(tmp_path, model_dir, monkeypatch):
    # The tiny run config of the sibling sweep test (test modules import by path in importlib mode).
    monkeypatch.syspath_prepend(str(HERE))
    tiny_base = importlib.import_module("test_sweep_tools").tiny_base
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_base(model_dir)))
    # Two independent runs (no contr/no_contr pairing: runs in flight together must not depend).
    runs = [{"name": f"s{s}", "overrides": [f"seed={s}", "loss.lambda_contr=0.0"]} for s in (5, 6)]
    sweep = {"sweep_name": "micro", "base_config": "base.yaml", "entry": ENTRY, "runs": runs}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
    plan = load_plan(tmp_path / "s.yaml")
    local = run_sweep(plan, tmp_path / "local", run_fn=ENTRY, executor=LocalExecutor(1))
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        on_ray = run_sweep(plan, tmp_path / "ray", run_fn=ENTRY, executor=RayExecutor())
    finally:
        ray.shutdown()
    assert on_ray["status"] == "complete" and on_ray["counts"]["complete"] == 2
    assert stripped(on_ray) == stripped(local)
    assert all(r["node"]["node_id"] for r in on_ray["runs"])
