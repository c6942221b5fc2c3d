"""The Llama family on the zoo and at paper scale: the local config trains, the paper one fails offline.

The identity gate on local:tiny-llama is in test_bench (bench/identity_gate.py); on random Llama,
Qwen2 and Mistral models in test_patch.
"""

import json
import time

import pytest
import torch
from transformers import Qwen2Config

from cachemedicpp.config import PROJECT, load_run_config
from cachemedicpp.families import CacheShape, cache_shape
from cachemedicpp.modeling import check_shape, load_model, local_hint
from cachemedicpp.train import train_run
from labkit.checkpoint import load_checkpoint
from labkit.errors import ConfigError, MissingInputError

CONFIGS = PROJECT / "configs"
ON_TEST_SIZE = (
    "data.dataset=local:stories@test",
    "repair.protect_layers=[0, 1]",  # the test size has 2 layers
)


def llama_config(zoo_test_model, *overrides: str) -> dict:
    return load_run_config(
        CONFIGS / "mve_llama_local.yaml",
        [f"model.name={zoo_test_model('tiny-llama')}", *ON_TEST_SIZE, *overrides],
    )


def test_mve_llama_local_calibrates_and_trains_on_the_zoo_test_model(zoo_test_model, tmp_path):
    cfg = llama_config(zoo_test_model, "corruption.calibrate.n_windows=2", "train.steps=4")
    run = tmp_path / "run"
    assert train_run(cfg, run)["steps"] == 4
    calibration = json.loads((run / "metrics" / "calibration.json").read_text())["metrics"]
    assert set(calibration["types"]) == set(cfg["corruption"]["mix"])
    record = json.loads((run / "run_record.json").read_text())
    assert record["model"]["path"] == str(zoo_test_model("tiny-llama"))
    init = load_checkpoint(run / "checkpoints" / "repair_step_4.pt")["init"]
    assert (init["n_heads"], init["head_dim"]) == (2, 32), "R_phi is shaped by the cached heads"


def test_local_hint_names_the_config_of_the_family():
    assert "mve_llama_local.yaml" in local_hint("Qwen/Qwen2.5-0.5B")
    assert "mve_llama_local.yaml" in local_hint("meta-llama/Llama-3.2-1B")
    assert "configs/mve_local.yaml" in local_hint("gpt2-medium")


def test_paper_qwen_config_fails_fast_offline_naming_the_local_config(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to load offline
    cfg = load_run_config(CONFIGS / "mve_qwen.yaml", ["device=cpu", "dtype=fp32"])
    assert cfg["model"]["name"] == "Qwen/Qwen2.5-0.5B"
    started = time.perf_counter()
    with pytest.raises(MissingInputError, match=r"mve_llama_local\.yaml"):
        load_model(cfg)
    assert time.perf_counter() - started < 10
    if not torch.cuda.is_available():  # the config's own device: refused before anything loads
        with pytest.raises(ConfigError, match=r"cuda.*mve_llama_local\.yaml"):
            load_model(load_run_config(CONFIGS / "mve_qwen.yaml"))


def test_head_settings_index_the_cached_heads(zoo_test_model):
    gqa = Qwen2Config(
        hidden_size=64, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2
    )
    assert cache_shape(gqa) == CacheShape(
        layers=2, heads=4, kv_heads=2, head_dim=16, positions=gqa.max_position_embeddings
    )
    cfg = llama_config(zoo_test_model, "corruption.axes.heads=[1]")
    check_shape(cfg, gqa)
    with pytest.raises(ConfigError, match=r"heads \[3\] do not exist: the model caches 2 heads"):
        check_shape(llama_config(zoo_test_model, "corruption.axes.heads=[3]"), gqa)
