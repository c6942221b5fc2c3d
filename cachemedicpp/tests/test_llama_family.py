"""The Llama family on the zoo and at paper scale: the local config trains, the paper one fails offline.

The identity gate on local:tiny-llama is in test_bench (bench/identity_gate.py); on random Llama,
Qwen2 and Mistral models in test_patch.
"""

import json
import time

import pytest
import torch

from cachemedicpp.config import PROJECT, load_run_config
from cachemedicpp.modeling import load_model, local_hint
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
