"""MLflow tracking (labkit.tracking) of a D-REAM run: one local evaluate lands in a local store, its trial's
KPIs as metrics and its pack as an artifact; `report` adds its tables and figures to that run."""

from __future__ import annotations

import json

import pytest

from dream.cli import cli


def test_an_evaluate_run_lands_with_settings_trial_kpis_and_its_pack(tmp_path, tracked):
    out = tmp_path / "run"
    argv = ["--profile", "local", "--out_root", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        cli(
            [
                "evaluate",
                "--domain",
                "cpu",
                "--genome",
                '{"thread_count": 1}',
                "--cand-id",
                "c1",
                *argv,
            ]
        )
    assert exit_info.value.code == 0
    (manifest,) = (out / "artifacts" / "manifests").glob("*.json")
    client, run = tracked(manifest)
    assert run.info.run_name == json.loads(manifest.read_text())["run_id"]
    assert run.data.tags["system"] == "dream" and run.data.tags["phase"] == "evaluate"
    assert run.data.params["domain"] == "cpu" and run.data.params["genome"] == '{"thread_count": 1}'
    pack = json.loads((out / "artifacts" / "candidates" / "cpu" / "c1.json").read_text())
    assert run.data.metrics["trials/cpu.score_v2"] == pytest.approx(pack["aggregate"]["score_v2"])
    assert run.data.metrics["trials/cpu.means.perf.overall"] > 0
    packs = {a.path for a in client.list_artifacts(run.info.run_id, "candidates/cpu")}
    assert packs == {"candidates/cpu/c1.json"}
    with pytest.raises(SystemExit) as exit_info:
        cli(["report", "--out_root", str(out)])
    assert exit_info.value.code == 0
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert any(p.endswith(".png") for p in reports) and any(p.endswith(".txt") for p in reports)
