"""Replicas and the rehearsal switch: the originals' classes and schemas, streaming, records, no leaks."""

from __future__ import annotations

import gzip
import json

import datasets
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from labkit.cli import run_cli
from labkit.errors import MissingInputError, RunExistsError
from labkit.rehearsal import ENV
from labkit.rundir import RunDir
from labkit.zoo import load_dataset, resolve_dataset, resolve_model, stream_dataset
from labkit.zoo import replicas as replicas_module
from labkit.zoo.catalog import replica_for, replicas
from labkit.zoo.replica_data import build_replica_dataset

# What the hub's own config.json / tokenizer files of each original say (checked by hand against the
# model cards); the replicas must agree on every one of these.
ORIGINALS = {
    "gpt2": ("GPT2LMHeadModel", "gpt2", "GPT2Tokenizer", 12, 1024, torch.float32, True),
    "gpt2-medium": ("GPT2LMHeadModel", "gpt2", "GPT2Tokenizer", 24, 1024, torch.float32, True),
    "gpt2-large": ("GPT2LMHeadModel", "gpt2", "GPT2Tokenizer", 36, 1024, torch.float32, True),
    "Qwen/Qwen2.5-0.5B": (
        "Qwen2ForCausalLM", "qwen2", "Qwen2Tokenizer", 24, 32768, torch.bfloat16, True,
    ),
    "Qwen/Qwen2.5-7B": (
        "Qwen2ForCausalLM", "qwen2", "Qwen2Tokenizer", 28, 131072, torch.bfloat16, False,
    ),
    "Qwen/Qwen2.5-7B-Instruct": (
        "Qwen2ForCausalLM", "qwen2", "Qwen2Tokenizer", 28, 32768, torch.bfloat16, False,
    ),
}  # fmt: skip
# The hub model and data set ids the paper configs of the four systems name.
PAPER_MODELS = set(ORIGINALS)
PAPER_DATASETS = {
    "Salesforce/wikitext",
    "nyu-mll/glue",
    "allenai/ai2_arc",
    "allenai/c4",
    "roneneldan/TinyStories",
    "cifar10",
}


@pytest.fixture
def rehearsing(monkeypatch):
    monkeypatch.setenv(ENV, "1")


@pytest.fixture
def not_rehearsing(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


def test_every_paper_hub_id_has_one_replica():
    for hub_id in PAPER_MODELS:
        assert replica_for(hub_id, "model") is not None, hub_id
    for hub_id in PAPER_DATASETS:
        assert replica_for(hub_id, "dataset") is not None, hub_id
    hub_ids = [h for item in replicas() for h in item.replica_of]
    assert len(hub_ids) == len(set(hub_ids))
    assert all("REPLICA" in item.description for item in replicas())


@pytest.mark.parametrize("hub_id", sorted(ORIGINALS))
def test_replica_model_has_the_originals_classes_and_shape(hub_id):
    cls, model_type, tok_cls, layers, positions, dtype, tied = ORIGINALS[hub_id]
    item = replica_for(hub_id, "model")
    path = resolve_model(item.zoo_name, size="test")
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == model_type and config.architectures == [cls]
    assert config.num_hidden_layers == layers and config.max_position_embeddings == positions
    assert config.tie_word_embeddings is tied
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert type(model).__name__ == cls and type(tok).__name__ == tok_cls
    assert model.dtype == dtype
    assert config.vocab_size >= len(tok) and tok.convert_ids_to_tokens(len(tok) - 1).startswith(
        "<|"
    )
    names = dict(model.named_modules())
    if model_type == "gpt2":
        assert {
            "transformer.h.0.attn.c_attn",
            "transformer.h.0.mlp.c_fc",
            "transformer.wpe",
        } <= set(names)
        assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == len(tok) - 1
        assert tok.convert_ids_to_tokens(tok(" the")["input_ids"]) == ["Ġthe"]  # byte-level BPE
    else:
        attn = names["model.layers.0.self_attn"]
        assert attn.k_proj.out_features < attn.q_proj.out_features  # grouped-query attention
        assert attn.q_proj.bias is not None  # Qwen2's biased q/k/v
        assert {"model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"} <= set(names)
        instruct = hub_id.endswith("Instruct")
        assert tok.eos_token == ("<|im_end|>" if instruct else "<|endoftext|>")
        assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert "REPLICA" in (path / "README.md").read_text()


def test_replica_data_sets_have_the_originals_configs_columns_and_labels(rehearsing):
    wiki = load_dataset("Salesforce/wikitext", config="wikitext-2-raw-v1")
    assert sorted(wiki) == ["test", "train", "validation"] and wiki["test"].column_names == ["text"]
    rows = wiki["validation"]["text"]
    assert "" in rows and any(r.startswith(" = ") and r.endswith(" = \n") for r in rows)
    assert any(
        "<unk>" in r for r in load_dataset("wikitext", config="wikitext-103-v1")["train"]["text"]
    )
    with pytest.raises(ValueError):
        load_dataset("Salesforce/wikitext")  # several configs and none named: as on the hub
    sst2 = load_dataset("nyu-mll/glue", config="sst2")
    assert sst2["validation"].num_rows == 872
    assert sst2["train"].features["label"].names == ["negative", "positive"]
    assert set(sst2["test"]["label"]) == {-1} and set(sst2["validation"]["label"]) == {0, 1}
    assert sst2["train"].features["idx"].dtype == "int32"
    arc = load_dataset("allenai/ai2_arc", config="ARC-Challenge")
    assert sorted(arc) == ["test", "train", "validation"]
    test = arc["test"]
    assert test.column_names == ["id", "question", "choices", "answerKey"]
    labels = {lab for ch in test["choices"] for lab in ch["label"]}
    assert {"A", "1"} <= labels and {len(ch["text"]) for ch in test["choices"]} == {3, 4}
    assert all(row["answerKey"] in row["choices"]["label"] for row in test)
    stories = load_dataset("roneneldan/TinyStories")
    assert sorted(stories) == ["train", "validation"] and stories["train"].column_names == ["text"]
    cifar = load_dataset("cifar10", config="plain_text")
    assert sorted(cifar) == ["test", "train"]
    assert cifar["train"].features["label"].names[:2] == ["airplane", "automobile"]
    assert cifar["test"][0]["img"].size == (32, 32)
    readme = (resolve_dataset("allenai/c4") / "README.md").read_text()
    assert "REPLICA" in readme


def test_c4_replica_streams_only_the_shards_a_slice_reads(isolated_zoo_home, rehearsing):
    path = resolve_dataset("allenai/c4")
    shards = sorted((path / "en").glob("c4-validation.*.json.gz"))
    assert len(shards) == 4 and shards[0].name == "c4-validation.00000-of-00004.json.gz"
    for late in shards[1:]:  # a whole-config read would now fail; a slice of the first shard not
        late.write_bytes(b"not gzip")
    rows = stream_dataset("allenai/c4", config="en", split="validation")
    assert isinstance(rows, datasets.IterableDataset)
    assert rows.column_names == ["text", "timestamp", "url"]
    first = [row["text"] for _, row in zip(range(20), rows, strict=False)]
    with gzip.open(shards[0], "rt") as fh:
        assert first == [json.loads(line)["text"] for _, line in zip(range(20), fh, strict=False)]
    with pytest.raises(Exception):  # noqa: B017 - the control: reading it all hits a broken shard
        load_dataset("allenai/c4", config="en")


def test_replica_data_sets_build_to_the_same_bytes(tmp_path):
    def files(out):
        return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    for name in ("replica-c4", "replica-glue"):
        a, b = tmp_path / f"{name}-a", tmp_path / f"{name}-b"
        for out in (a, b):
            out.mkdir()
            build_replica_dataset(name, "default", 0, out, lambda *_: None)
        assert files(a) == files(b)


def test_rehearsal_maps_hub_ids_and_refuses_unknown_ones(rehearsing, monkeypatch):
    monkeypatch.setattr(replicas_module, "REPLICA_SIZE", "test")
    path = resolve_model("gpt2-medium")
    assert path == resolve_model("local:replica-gpt2-medium", size="test")
    with pytest.raises(
        MissingInputError, match=r"no replica of hub model 'meta-llama/x'.*gpt2-large"
    ):
        resolve_model("meta-llama/x")
    with pytest.raises(MissingInputError, match="no replica of hub dataset 'org/unknown'"):
        load_dataset("org/unknown")


def test_run_records_say_whether_they_rehearsed(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    real = RunDir.create(tmp_path / "real", {"a": 1}, phase="p")
    assert real.record["rehearsal"] is False
    monkeypatch.setenv(ENV, "1")
    rehearsed = RunDir.create(tmp_path / "rehearsed", {"a": 1}, phase="p")
    assert rehearsed.record["rehearsal"] is True
    # a later phase never mixes the two
    with pytest.raises(RunExistsError, match="without rehearsal"):
        RunDir.create(tmp_path / "real", {"a": 1}, phase="q")
    monkeypatch.delenv(ENV)
    with pytest.raises(RunExistsError, match="in a rehearsal"):
        RunDir.create(tmp_path / "rehearsed", {"a": 1}, phase="q")


def test_rehearse_flag_turns_the_switch_on_and_prints_the_profile(monkeypatch, capsys, tmp_path):
    import argparse
    import os

    monkeypatch.delenv(ENV, raising=False)
    seen = {}

    def main(args):
        seen["record"] = RunDir.create(tmp_path / "r", {"a": 1}).record

    with pytest.raises(SystemExit) as done:
        run_cli(argparse.ArgumentParser(prog="x"), main, ["--rehearse"])
    assert done.value.code == 0 and seen["record"]["rehearsal"] is True
    assert os.environ[ENV] == "1"
    err = capsys.readouterr().err
    assert "REHEARSAL" in err and "gpt2-medium" in err and "local:replica-c4" in err
    monkeypatch.setenv(ENV, "maybe")
    with pytest.raises(SystemExit) as done:
        run_cli(argparse.ArgumentParser(prog="x"), main, [])
    assert done.value.code == 2


def test_without_the_switch_hub_ids_still_go_to_the_hub(not_rehearsing, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    with pytest.raises(MissingInputError, match="HF_HUB_OFFLINE"):
        stream_dataset("allenai/c4", config="en", split="validation", local_hint="x")
    with pytest.raises(MissingInputError, match=r"use configs/y_local\.yaml"):
        load_dataset(
            "allenai/ai2_arc", config="ARC-Challenge", local_hint="use configs/y_local.yaml"
        )


def test_a_replica_zoo_name_loads_like_its_hub_id(not_rehearsing):
    data = load_dataset("local:replica-glue", config="sst2")
    assert data["validation"].num_rows == 872


def test_check_rehearsal_fails_on_any_record_made_without_it(tmp_path, monkeypatch):
    from labkit.errors import LabkitError
    from labkit.rehearsal import check_rehearsed

    with pytest.raises(MissingInputError):
        check_rehearsed(tmp_path)
    monkeypatch.setenv(ENV, "1")
    RunDir.create(tmp_path / "a", {"a": 1})
    assert check_rehearsed(tmp_path) == [tmp_path / "a" / "run_record.json"]
    monkeypatch.delenv(ENV)
    RunDir.create(tmp_path / "b", {"a": 1})
    with pytest.raises(LabkitError, match=r"1 of 2 run records .*b/run_record\.json"):
        check_rehearsed(tmp_path)
