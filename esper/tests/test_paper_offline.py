"""Every Esper paper config: offline it fails fast naming its local config; rehearsing it loads replicas."""

from __future__ import annotations

import time

import datasets
import pytest

from esper.config import load_esper_config
from esper.evaluate.command import eval_schema
from esper.utils.data import load_task_data
from labkit.config import load_config
from labkit.errors import MissingInputError
from labkit.zoo import replicas

from .conftest import CNN_CONFIG

CONFIGS = CNN_CONFIG.parent
# paper config -> (task type, local config its error names)
PAPER = {
    "cifar10.yaml": ("classification", "cifar10_local.yaml"),
    "ppo_cifar10.yaml": ("classification", "cifar10_local.yaml"),
    "eval_cifar10.yaml": ("classification", "cifar10_local.yaml"),
    "tinystories.yaml": ("lm", "tinystories_local.yaml"),
    "ppo_tinystories.yaml": ("lm", "tinystories_local.yaml"),
    "eval_tinystories.yaml": ("lm", "tinystories_local.yaml"),
}


def _data(name: str) -> dict:
    if name.startswith("eval_"):  # its policies name trained runs; only the data block is read here
        return load_config(CONFIGS / name, schema=eval_schema())["data"]
    return load_esper_config(CONFIGS / name)["data"]


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_config_fails_fast_offline_naming_the_local_config(name, monkeypatch, tmp_path):
    monkeypatch.delenv("LABKIT_REHEARSAL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    task, local = PAPER[name]
    started = time.perf_counter()
    with pytest.raises(MissingInputError, match=local.replace(".", r"\.")):
        load_task_data(task, _data(name))
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("name", ["cifar10.yaml", "tinystories.yaml"])
def test_paper_config_loads_the_replicas_when_rehearsing(name, monkeypatch):
    monkeypatch.setenv("LABKIT_REHEARSAL", "1")
    monkeypatch.setattr(
        replicas, "REPLICA_SIZE", "test"
    )  # the gpt2 replica's tokenizer is the same
    data = load_task_data(PAPER[name][0], _data(name))
    if name == "cifar10.yaml":
        assert data.n_outputs == 10 and tuple(data.test_x.shape[1:]) == (3, 32, 32)
        assert data.test_x.shape[0] == 500  # the replica's test split, not local:shapes10's
    else:  # the replica GPT-2 tokenizer: its EOS is its last id, as GPT-2's 50256 is
        assert data.eos_id == data.n_outputs - 1 and data.test.size > 0
