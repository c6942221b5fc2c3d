"""Data: EOS-joined chunking keeps every story, windows shift by one, images batch deterministically."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from esper.config import load_esper_config
from esper.utils.data import load_task_data, n_windows
from esper.utils.tokens import encode_stories, load_token_splits, load_tokenizer
from labkit.errors import MissingInputError

from .conftest import CNN_CONFIG


@given(st.integers(0, 10_000), st.integers(1, 512))
def test_only_the_last_partial_window_is_lost(n_tokens, block):
    covered = n_windows(n_tokens, block) * block + 1 if n_tokens else 0
    assert covered <= max(n_tokens, 1)
    assert n_tokens - covered < block + (n_tokens == 0)


def test_each_story_ends_with_one_eos(lm_cfg):
    tok = load_tokenizer(lm_cfg["data"]["tokenizer"], "")
    stories = ["Max had a pen.", "The end.", "Nora ran."]
    ids = encode_stories(stories, tok)
    assert (ids == tok.eos_token_id).sum() == len(stories)
    expected = [
        t
        for s in stories
        for t in (*tok(s, add_special_tokens=False)["input_ids"], tok.eos_token_id)
    ]
    assert ids.tolist() == expected


def test_chunking_keeps_every_story(lm_cfg, zoo_test_dataset):
    cfg = lm_cfg["data"]
    splits = load_token_splits(cfg, "")
    stories = zoo_test_dataset("stories")
    for name, stream, split in (
        ("train", splits.train, "train"),
        ("test", splits.test, "validation"),
    ):
        assert (stream == splits.eos_id).sum() == len(stories[split]), name
        total = len(stream)
        kept = n_windows(total, cfg["block_size"]) * cfg["block_size"] + 1
        assert kept >= (1 - cfg["block_size"] / total) * total, name
    data = load_task_data("lm", cfg)
    x, y = next(data.eval_batches("val"))
    assert x.shape == (cfg["batch_size"], cfg["block_size"])
    torch.testing.assert_close(x[:, 1:], y[:, :-1])
    assert data.n_outputs == splits.vocab_size


def test_token_batches_follow_the_generator(lm_cfg):
    data = load_task_data("lm", lm_cfg["data"])
    a = [x for x, _ in data.train_batches(torch.Generator().manual_seed(3))]
    b = [x for x, _ in data.train_batches(torch.Generator().manual_seed(3))]
    c = [x for x, _ in data.train_batches(torch.Generator().manual_seed(4))]
    assert len(a) == data.steps_per_epoch() == 8
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(torch.equal(u, v) for u, v in zip(a, c, strict=True))


def test_images_load_resize_and_augment_deterministically(cnn_cfg):
    data = load_task_data("classification", cnn_cfg["data"])
    assert data.n_outputs == 10 and data.train_x.shape[1:] == (3, 16, 16)
    a = list(data.train_batches(torch.Generator().manual_seed(0)))
    b = list(data.train_batches(torch.Generator().manual_seed(0)))
    assert len(a) == data.steps_per_epoch() == 5  # 320 of 400 train images / 64
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    x, y = next(data.eval_batches("val"))
    assert x.shape == (64, 3, 16, 16) and y.dtype == torch.long
    assert abs(float(x.mean())) < 1.5


def test_a_hub_dataset_offline_fails_fast_naming_the_local_config(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = load_esper_config(CNN_CONFIG, ["data.dataset=cifar10", "data.size=null"])
    with pytest.raises(MissingInputError, match=r"cifar10_local\.yaml"):
        load_task_data("classification", cfg["data"])
