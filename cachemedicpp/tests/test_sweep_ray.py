"""`python -m cachemedicpp.sweep --executor ray` on a local Ray cluster has the local executor's summary."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import ray

HERE = Path(__file__).resolve().parent
TIMING = ("updated_utc", "wall_s", "started_utc", "finished_utc")


def stripped(out_root: Path) -> str:
    """The sweep summary without its timing and host fields, serialised canonically."""
    doc = json.loads((out_root / "sw_summary.json").read_text(encoding="utf-8"))
    doc = {k: v for k, v in doc.items() if k not in TIMING}
    doc["budget"].pop("wall_hours_used")
    doc["runs"] = [{k: v for k, v in r.items() if k not in (*TIMING, "node")} for r in doc["runs"]]
    return json.dumps(doc, sort_keys=True)


def test_paired_micro_sweep_on_ray_equals_the_local_one(tmp_path, model_dir, monkeypatch, capsys):
    # The sibling sweep test's tiny run config and CLI helper (test modules import by path).
    monkeypatch.syspath_prepend(str(HERE))
    tools = importlib.import_module("test_sweep_tools")
    # The contr run scores the no_contr run's R_phi, so it must run after it although it is
    # listed first and the cluster has room for both at once.
    runs = [
        {"name": "contr", "overrides": ["eval.no_contr_run_dir=no_contr"]},
        {"name": "no_contr", "overrides": ["loss.lambda_contr=0.0"]},
    ]
    path = tools.write_sweep(tmp_path, model_dir, runs)
    assert tools.sweep_exit(path, tmp_path / "local", "--executor", "local") == 0
    capsys.readouterr()
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        assert tools.sweep_exit(path, tmp_path / "ray", "--executor", "ray") == 0
    finally:
        ray.shutdown()
    assert stripped(tmp_path / "ray") == stripped(tmp_path / "local")
    on_ray = json.loads((tmp_path / "ray" / "sw_summary.json").read_text(encoding="utf-8"))
    by = {r["name"]: r for r in on_ray["runs"]}
    assert by["contr"]["started_utc"] >= by["no_contr"]["finished_utc"]
    assert "cachemedic_no_contr" in json.dumps(by["contr"]["result"]["task_auc"])
    assert all(r["node"]["node_id"] for r in on_ray["runs"])
    # The CLI's run lines: one per run, complete, naming the node.
    out = capsys.readouterr().out
    for run in on_ray["runs"]:
        line = next(row for row in out.splitlines() if row.lstrip().startswith(run["name"]))
        assert "complete" in line and run["node"]["node_ip"] in line
    ablation = "sw/ablation_summary.json"
    assert (tmp_path / "ray" / ablation).read_bytes() == (
        tmp_path / "local" / ablation
    ).read_bytes()
