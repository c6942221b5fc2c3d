"""Shared test settings: the local configs shrunk to test size (16x16 images, width 4; a d-32 LM)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from esper.config import load_esper_config, task_config
from esper.leyline import TaskConfig
from esper.tolaria import Episode
from esper.utils.data import load_task_data

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CNN_CONFIG = CONFIGS / "cifar10_local.yaml"
LM_CONFIG = CONFIGS / "tinystories_local.yaml"
CNN_TEST = [
    "data.size=test",
    "data.image_size=16",
    "data.batch_size=64",
    "host.widths=[4,4,4]",
]
LM_TEST = [
    "data.size=test",
    "data.block_size=16",
    "data.batch_size=8",
    "data.max_train_batches=8",
    "data.max_val_batches=4",
    "host.n_embd=32",
    "host.n_head=2",
    "host.n_layer=2",
    "optimizer.lr=3e-3",  # a tiny LM moves little in 96 steps at 1e-3
]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # Tiny models on a shared 2-core machine run far faster on one thread.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def lm_overrides(zoo_test_model: Callable[[str], Path]) -> list[str]:
    """LM_TEST plus the test-size tiny-gpt2 tokenizer."""
    return [*LM_TEST, f"data.tokenizer={zoo_test_model('tiny-gpt2')}"]


def make_episode(cfg: dict[str, Any], seed: int = 0) -> tuple[Episode, TaskConfig]:
    """A reset Episode of `cfg`."""
    data = load_task_data(cfg["task"]["task_type"], cfg["data"])
    task = task_config(cfg, data)
    ep = Episode(cfg, data, task, seed)
    ep.reset()
    return ep, task


@pytest.fixture
def cnn_cfg() -> dict[str, Any]:
    """The local CNN config at test size."""
    return load_esper_config(CNN_CONFIG, CNN_TEST)


@pytest.fixture
def lm_cfg(lm_overrides: list[str]) -> dict[str, Any]:
    """The local LM config at test size."""
    return load_esper_config(LM_CONFIG, lm_overrides)


def small_task(topology: str = "cnn", **kw: Any) -> TaskConfig:
    """A TaskConfig for unit tests that need no data."""
    base = {
        "name": "unit",
        "task_type": "classification" if topology == "cnn" else "lm",
        "topology": topology,
        "n_outputs": 10 if topology == "cnn" else 50,
        "target_loss": 0.3,
        "loss_delta_std": 0.05,
        "max_epochs": 12,
        "steps_per_epoch": 4,
        "embargo_epochs": 2,
    }
    return TaskConfig(**(base | kw))
