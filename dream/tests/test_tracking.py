"""MLflow tracking (labkit.tracking) of a D-REAM run: a one-generation local service lands in a local store,
each candidate pack as a trial and its packs as artifacts; `report` adds its tables and figures to that run."""

from __future__ import annotations

import json

import pytest

from dream.cli import cli


def dream(*argv: str) -> int:
    """Exit code of `python -m dream *argv`."""
    with pytest.raises(SystemExit) as exit_info:
        cli(list(argv))
    return exit_info.value.code


def test_a_service_run_lands_with_settings_trial_kpis_packs_and_report(tmp_path, tracked):
    out = str(tmp_path / "run")
    service = ["service", "--profile", "local", "--domains", "cpu", "--generations", "1"]
    assert dream(*service, "--population", "2", "--out_root", out) == 0
    (manifest,) = (tmp_path / "run" / "artifacts" / "manifests").glob("*.json")
    client, run = tracked(manifest)
    assert run.info.run_name == json.loads(manifest.read_text())["run_id"]
    assert run.data.tags["system"] == "dream" and run.data.tags["phase"] == "service"
    assert run.data.params["domains"] == '["cpu"]' and run.data.params["population"] == "2"
    # one trial per candidate pack the run wrote, in (generation, cand_id) order
    packs = sorted((tmp_path / "run" / "artifacts" / "candidates" / "cpu").glob("*.json"))
    scores = [json.loads(p.read_text())["aggregate"]["score_v2"] for p in packs]
    history = client.get_metric_history(run.info.run_id, "trials/cpu.score_v2")
    assert [(m.step, m.value) for m in history] == [
        (i, pytest.approx(s)) for i, s in enumerate(scores) if s is not None
    ]
    assert "generations/cpu.best_fitness" in run.data.metrics
    sent = {a.path for a in client.list_artifacts(run.info.run_id, "candidates/cpu")}
    assert sent == {f"candidates/cpu/{p.name}" for p in packs}
    assert dream("report", "--out_root", out) == 0
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert any(p.endswith(".png") for p in reports) and any(p.endswith(".txt") for p in reports)
