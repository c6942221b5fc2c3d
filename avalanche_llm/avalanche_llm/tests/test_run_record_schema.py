"""Run ids, the run record and its schema, artifact integrity, immutability and resume rules."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avalanche_llm import canon
from avalanche_llm.config import resolve_config
from avalanche_llm.io.artifacts import RunArtifacts, StageRun, parquet_bytes
from avalanche_llm.io.npz import load_npz, npz_bytes
from avalanche_llm.io.schema_validate import validate_run_record
from avalanche_llm.run_id import content_hash_run_id, make_run_id, next_counter_run_id
from labkit.errors import ConfigError, MissingInputError, RunExistsError, SchemaError

LOCAL = canon.ROOT / "configs" / "pipeline_local.yaml"


@pytest.fixture
def config():
    return resolve_config(LOCAL)


def new_run(root: Path, config, run_id: str = "RUN_S01_0123456789ab", **kw) -> StageRun:
    return StageRun.create(
        root,
        run_id,
        config=config,
        phase_id="phase1_calibrate",
        stage_tag="S01",
        dependencies=[],
        determinism={"seed": 1337, "torch_deterministic_algorithms": True},
        allow_resume=kw.get("allow_resume", False),
    )


def test_content_hash_run_id_is_sha_of_config_and_tag(config):
    digest = hashlib.sha256(config.bytes + b"S02B").hexdigest()
    assert content_hash_run_id(config.bytes, "S02B") == f"RUN_S02B_{digest[:12]}"
    assert make_run_id("content_hash", config.bytes, "S01", Path("/nonexistent")) != make_run_id(
        "content_hash", config.bytes, "S02", Path("/nonexistent")
    )
    with pytest.raises(ConfigError):
        make_run_id("uuid", config.bytes, "S01", Path("."))


def test_counter_run_ids_take_the_next_free_number(tmp_path: Path):
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert next_counter_run_id(tmp_path, now) == "RUN_20260102_0001"
    for name in ("RUN_20260102_0001", "RUN_20260102_0007", "RUN_20260101_0099", "RUN_S01_abc"):
        (tmp_path / name).mkdir()
    assert next_counter_run_id(tmp_path, now) == "RUN_20260102_0008"


def test_record_validates_and_indexes_every_artifact(tmp_path: Path, config):
    run = new_run(tmp_path, config)
    run.write_json("results/a.json", {"x": 1}, name="A_JSON")
    run.write_npz("results/b.npz", {"X": np.eye(3, dtype=np.uint8)})
    run.set_status("complete")
    record = json.loads((run.path / "run_record.json").read_text())
    validate_run_record(record)
    index = {e["relative_path"]: e for e in record["artifact_index"]}
    assert set(index) == {"config_resolved.yaml", "results/a.json", "results/b.npz"}
    for rel, entry in index.items():
        data = (run.path / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    assert (run.path / "config_resolved.yaml").read_bytes() == config.bytes
    assert record["hashes"]["config_sha256"] == config.sha256
    assert record["artifacts"] == {"A_JSON": "results/a.json"}
    assert record["budget"]["within_budget"] is True


@pytest.mark.parametrize("key", ["config_sha256", "code_version", "dataset_slice_sha256"])
def test_dropping_a_hash_fails_the_schema(tmp_path: Path, config, key):
    record = json.loads((new_run(tmp_path, config).path / "run_record.json").read_text())
    broken = copy.deepcopy(record)
    del broken["hashes"][key]
    with pytest.raises(SchemaError, match=f"'{key}' is a required property"):
        validate_run_record(broken)
    broken = copy.deepcopy(record)
    broken["hashes"]["config_sha256"] = "abc"
    with pytest.raises(SchemaError, match=r"hashes\.config_sha256"):
        validate_run_record(broken)


def test_existing_runs_are_never_overwritten(tmp_path: Path, config):
    run = new_run(tmp_path, config)
    with pytest.raises(RunExistsError, match="exists"):
        new_run(tmp_path, config)
    # An incomplete stage may be resumed in place ...
    resumed = new_run(tmp_path, config, allow_resume=True)
    assert resumed.record["created_utc"] == run.record["created_utc"]
    resumed.set_status("complete")
    # ... a complete one never.
    with pytest.raises(RunExistsError, match="complete"):
        new_run(tmp_path, config, allow_resume=True)
    (tmp_path / "RUN_S01_ffffffffffff").mkdir()
    (tmp_path / "RUN_S01_ffffffffffff" / "stray").write_text("x")
    with pytest.raises(RunExistsError, match="not a run directory"):
        new_run(tmp_path, config, run_id="RUN_S01_ffffffffffff")


def test_reading_an_artifact_checks_its_hash(tmp_path: Path, config):
    run = new_run(tmp_path, config)
    run.write_parquet("results/m.parquet", pd.DataFrame({"a": [1, 2]}))
    run.set_status("complete")
    done = RunArtifacts(run.path)
    assert done.read_parquet("results/m.parquet")["a"].tolist() == [1, 2]
    with pytest.raises(MissingInputError):
        done.artifact("results/missing.parquet")
    (run.path / "results" / "m.parquet").write_bytes(parquet_bytes(pd.DataFrame({"a": [3]})))
    with pytest.raises(ConfigError, match="sha256 mismatch"):
        done.read_parquet("results/m.parquet")


def test_npz_and_parquet_bytes_are_deterministic():
    arrays = {"A": np.arange(24, dtype=np.uint16).reshape(2, 3, 4), "cond_id": np.arange(2)}
    data = npz_bytes(arrays)
    assert data == npz_bytes(arrays)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    frame = pd.DataFrame({"g": [0.7, 1.0], "name": ["a", "b"]})
    assert parquet_bytes(frame) == parquet_bytes(frame.copy())
    with pytest.raises(ConfigError):
        npz_bytes({"bad": np.array([object()])})


def test_npz_round_trip(tmp_path: Path):
    arrays = {"X": np.ones((2, 2), np.uint8), "seq_id": np.array([5, 9])}
    (tmp_path / "a.npz").write_bytes(npz_bytes(arrays))
    back = load_npz(tmp_path / "a.npz")
    assert list(back) == ["X", "seq_id"] and all(
        np.array_equal(back[k], v) for k, v in arrays.items()
    )
