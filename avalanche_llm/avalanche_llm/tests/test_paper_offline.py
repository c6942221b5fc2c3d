"""configs/pipeline.yaml, both roles: offline it fails fast naming the local config; rehearsing, the
hub ids load their replicas through the paper path (Qwen2 classes, bf16, streamed splits)."""

from __future__ import annotations

import time

import datasets
import pytest
import torch

from avalanche_llm import canon
from avalanche_llm.config import resolve_config
from avalanche_llm.model.loader import load_model
from avalanche_llm.slices import dataset_split
from labkit.errors import MissingInputError
from labkit.zoo import replicas

PAPER = canon.ROOT / "configs" / "pipeline.yaml"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv("LABKIT_REHEARSAL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    dataset_split.cache_clear()
    yield
    dataset_split.cache_clear()


@pytest.mark.parametrize("role", ["INSTRUCT", "BASE"])
def test_paper_pipeline_fails_fast_offline_naming_the_local_config(role, offline):
    cfg = resolve_config(PAPER, model_role=role).data
    hint = cfg["runtime"]["local_hint"]
    assert "pipeline_local.yaml" in hint
    started = time.perf_counter()
    with pytest.raises(MissingInputError, match=r"pipeline_local\.yaml"):
        load_model(cfg["models"][role]["hf_id"], "cpu", "bf16", hint)
    for ds in cfg["datasets"].values():
        with pytest.raises(MissingInputError, match=r"pipeline_local\.yaml"):
            dataset_split(ds["id"], ds["config"], ds["split"], hint)
    assert time.perf_counter() - started < 20


@pytest.mark.parametrize("role", ["INSTRUCT", "BASE"])
def test_paper_pipeline_loads_the_replicas_in_bf16_when_rehearsing(role, monkeypatch):
    monkeypatch.setenv("LABKIT_REHEARSAL", "1")
    monkeypatch.setattr(replicas, "REPLICA_SIZE", "test")
    dataset_split.cache_clear()
    cfg = resolve_config(PAPER, model_role=role).data
    hf_id = cfg["models"][role]["hf_id"]
    loaded = load_model(hf_id, "cpu", "bf16", cfg["runtime"]["local_hint"])
    assert type(loaded.model).__name__ == "Qwen2ForCausalLM" and loaded.n_layers == 28
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    for ds in cfg["datasets"].values():  # hub ids stream (C4 above all), their replicas included
        rows = dataset_split(ds["id"], ds["config"], ds["split"], cfg["runtime"]["local_hint"])
        assert isinstance(rows, datasets.IterableDataset)
        assert next(iter(rows))
    dataset_split.cache_clear()
