"""Every CacheMedic++ paper config: offline it fails fast naming its local config; rehearsing, its hub
model and data sets resolve to replicas of the same classes and schemas."""

from __future__ import annotations

import time

import datasets
import pytest
import yaml

from cachemedicpp.config import PROJECT, load_run_config
from cachemedicpp.data import split_texts
from cachemedicpp.modeling import load_model
from labkit.errors import MissingInputError
from labkit.zoo import replicas

CONFIGS = PROJECT / "configs"
# paper run config -> (model class of its hub model, local config its errors name)
PAPER = {
    "mve.yaml": ("GPT2LMHeadModel", "mve_local.yaml"),
    "second_model_smoke_gpt2_large.yaml": ("GPT2LMHeadModel", "mve_local.yaml"),
    "mve_qwen.yaml": ("Qwen2ForCausalLM", "mve_llama_local.yaml"),
}
PAPER_SWEEPS = ("full_gpt2_matrix.yaml", "ood_loto_all.yaml")
CPU = ["device=cpu", "dtype=fp32"]


def _texts(cfg: dict) -> list[list[str]]:
    """The text of every hub data set the config's training and evaluation read."""
    ppl, sst2 = cfg["eval"]["wikitext2_ppl"], cfg["eval"]["sst2_prompted"]
    data = cfg["data"]
    return [
        split_texts(
            data["dataset"], data["dataset_config"], data["train_split"], data["text_field"]
        ),
        split_texts(ppl["dataset"], ppl["dataset_config"], ppl["split"], ppl["text_field"]),
        split_texts(sst2["dataset"], sst2["dataset_config"], sst2["split"], "sentence"),
    ]


def test_the_paper_sweeps_run_on_a_paper_config():
    for sweep in PAPER_SWEEPS:
        base = yaml.safe_load((CONFIGS / sweep).read_text())["base_config"]
        assert base in PAPER, sweep


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_config_fails_fast_offline_naming_the_local_config(name, monkeypatch, tmp_path):
    monkeypatch.delenv("LABKIT_REHEARSAL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    cfg = load_run_config(CONFIGS / name, CPU)
    local = PAPER[name][1].replace(".", r"\.")
    started = time.perf_counter()
    with pytest.raises(MissingInputError, match=local):
        load_model(cfg)
    with pytest.raises(MissingInputError, match=r"mve_local\.yaml"):
        _texts(cfg)
    assert time.perf_counter() - started < 20


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_config_loads_replicas_when_rehearsing(name, monkeypatch):
    monkeypatch.setenv("LABKIT_REHEARSAL", "1")
    monkeypatch.setattr(replicas, "REPLICA_SIZE", "test")
    cfg = load_run_config(CONFIGS / name, CPU)
    model, tok = load_model(cfg)
    assert type(tok).__name__ == PAPER[name][0].replace("LMHeadModel", "Tokenizer").replace(
        "ForCausalLM", "Tokenizer"
    )
    assert type(model).__name__ == PAPER[name][0]
    assert model.config.max_position_embeddings >= 1024
    train, ppl, sst2 = _texts(cfg)
    assert train and all(isinstance(t, str) for t in train)
    assert "" in ppl and any(t.startswith(" = ") for t in ppl)  # wikitext's blank and heading rows
    assert len(sst2) == 872  # glue/sst2's validation rows
    assert cfg["eval"]["sst2_prompted"]["n"] == 2  # capped by configs/rehearsal_profile.yaml
