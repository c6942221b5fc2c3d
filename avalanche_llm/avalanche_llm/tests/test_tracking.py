"""MLflow tracking (labkit.tracking) of an AvalancheLLM stage run: phase 1 lands in a local store, and its
run record, with the optional `tracking` entry, still validates against the schema."""

from __future__ import annotations

import json
from pathlib import Path

from avalanche_llm.io.schema_validate import validate_run_record
from avalanche_llm.tests.local_cli import local_args, run


def test_a_phase_run_lands_with_params_tags_metrics_and_its_record(
    tmp_path: Path, zoo_test_model, tracked
):
    models = {"INSTRUCT": zoo_test_model("tiny-llama"), "BASE": zoo_test_model("tiny-gpt2")}
    assert run("phase1_calibrate", *local_args(models), "--out_root", str(tmp_path)) == 0
    (stage,) = tmp_path.glob("RUN_S01_*")
    record = json.loads((stage / "run_record.json").read_text(encoding="utf-8"))
    validate_run_record(record)
    client, mirrored = tracked(stage / "run_record.json")
    tags, params = mirrored.data.tags, mirrored.data.params
    assert tags["system"] == "avalanche_llm" and tags["phase"] == "phase1_calibrate"
    assert tags["stage"] == "S01" and tags["config_hash"] == record["hashes"]["config_sha256"]
    assert tags["weights_sha256"] == record["model"]["weights_sha256"]
    assert params["pipeline.gain_grid"] == "[0.8, 1.0, 1.2]"
    assert mirrored.data.metrics  # results/*.json and the phase's heartbeat
    files = {a.path for a in client.list_artifacts(mirrored.info.run_id)}
    assert {"run_record.json", "config_resolved.yaml"} <= files
