"""Data slices: stride-T windows, disjoint calibration and held-out draws, stable hashes, verification."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoTokenizer

from avalanche_llm import canon
from avalanche_llm.config import resolve_config
from avalanche_llm.errors import DeterminismError
from avalanche_llm.slices import (
    dataset_split,
    draw_slice,
    slice_size,
    token_windows,
    verify_slice,
)
from labkit.errors import MissingInputError

LOCAL = canon.ROOT / "configs" / "pipeline_local.yaml"
DATA = ["datasets.A.id=local:stories@test", "datasets.B.id=local:stories@test"]


@pytest.fixture(scope="module")
def tokenizer(zoo_test_model):
    return AutoTokenizer.from_pretrained(zoo_test_model("tiny-llama"))


@pytest.fixture(scope="module")
def cfg():
    return resolve_config(LOCAL, overrides=DATA).data


class FakeRun:
    """An upstream run that recorded one slice."""

    run_id = "RUN_S01_000000000000"

    def __init__(self, recorded: dict):
        self.recorded = recorded

    def read_json(self, rel: str) -> dict:
        assert rel == "results/slice.json"
        return self.recorded


def test_windows_are_the_token_stream_cut_every_T(zoo_test_dataset, tokenizer):
    rows = zoo_test_dataset("stories")["validation"]
    w = token_windows(rows, "text", tokenizer, 5, 16)
    first = tokenizer(rows[0]["text"], add_special_tokens=False)["input_ids"]
    stream = [*first, tokenizer.eos_token_id]
    assert w.shape == (5, 16) and w.dtype == np.int64
    assert w.ravel()[: min(80, len(stream))].tolist() == stream[:80]


def test_calibration_and_heldout_are_disjoint_and_stable(cfg, tokenizer):
    anchor = "RUN_S01_0123456789ab"
    cal = draw_slice(cfg, "A_cal", anchor, tokenizer, d_ff=172)
    held = draw_slice(cfg, "A_heldout", anchor, tokenizer, d_ff=172)
    assert cal.indices.size == held.indices.size == 16
    assert np.all(np.diff(cal.indices) > 0) and not set(cal.indices) & set(held.indices)
    assert cal.pool_size == 64 and held.pool_size == 64  # min(500, 16 * 4)
    again = draw_slice(cfg, "A_cal", anchor, tokenizer, d_ff=172)
    assert again.sha256 == cal.sha256 and np.array_equal(again.windows, cal.windows)
    other = draw_slice(cfg, "A_cal", "RUN_S01_ba9876543210", tokenizer, d_ff=172)
    assert other.sha256 != cal.sha256
    b = draw_slice(cfg, "B_eval", anchor, tokenizer, d_ff=172)
    assert b.dataset["split"] == "test" and b.windows.shape == (16, 64)
    verify_slice(cal, FakeRun({"A_cal": cal.describe()}))
    with pytest.raises(DeterminismError, match="A_cal"):  # exit 2: a determinism failure
        verify_slice(cal, FakeRun({"A_cal": other.describe()}))
    with pytest.raises(MissingInputError):
        verify_slice(held, FakeRun({"A_cal": cal.describe()}))


def test_calibration_slice_grows_to_the_minimum_sample_count(cfg):
    assert slice_size(cfg, "A_cal", d_ff=344) == 16
    assert slice_size(cfg, "A_cal", d_ff=4) == 79  # ceil(20000 / (64 * 4))
    assert slice_size(cfg, "A_heldout", d_ff=4) == 16


def test_dataset_b_streams_a_c4_shaped_jsonl_without_preparing_it(tmp_path, tokenizer, monkeypatch):
    # The paper's B is C4 (hub). The same code path, streaming, on a local replica of its schema;
    # any download_and_prepare (of a whole hub config) fails the test.
    import datasets

    def refuse(*args, **kwargs):
        raise AssertionError("download_and_prepare called")

    monkeypatch.setattr(datasets.DatasetBuilder, "download_and_prepare", refuse)
    docs = [
        {
            "text": f"Story {i}: " + " ".join(["the cat sat on the mat"] * 20),
            "url": f"https://x/{i}",
            "timestamp": "2019-04-25T12:57:54Z",
        }
        for i in range(200)
    ]
    path = tmp_path / "c4-validation.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    cfg = resolve_config(
        LOCAL, overrides=[*DATA, f"datasets.B.id={path}", "datasets.B.split=validation"]
    ).data
    rows = dataset_split(str(path), None, "validation", "hint")
    assert isinstance(rows, datasets.IterableDataset)
    assert rows.column_names == ["text", "url", "timestamp"]
    b = draw_slice(cfg, "B_eval", "RUN_S01_0123456789ab", tokenizer, d_ff=172)
    assert b.windows.shape == (16, 64)
    again = draw_slice(cfg, "B_eval", "RUN_S01_0123456789ab", tokenizer, d_ff=172)
    assert again.sha256 == b.sha256
    # the windows are the stream's: the first tokens are the first document's
    first = tokenizer(docs[0]["text"], add_special_tokens=False)["input_ids"]
    pool = token_windows(rows, "text", tokenizer, 4, 64)
    assert pool.ravel()[:32].tolist() == first[:32]


def test_paper_dataset_b_streams_a_slice_of_the_c4_replica(
    isolated_zoo_home, tokenizer, monkeypatch
):
    # The paper's B: allenai/c4 `en`, validation. Rehearsing, the hub id resolves to the C4 replica
    # (json.gz shards); the slice must stream from the first shard and never read the whole config:
    # every later shard is broken here, and a whole-config load of it fails (the control).
    import datasets

    from labkit.zoo import load_dataset, resolve_dataset

    monkeypatch.setenv("LABKIT_REHEARSAL", "1")
    paper = resolve_config(canon.ROOT / "configs" / "pipeline.yaml").data["datasets"]["B"]
    assert (paper["id"], paper["config"], paper["split"]) == ("allenai/c4", "en", "validation")
    shards = sorted((resolve_dataset("allenai/c4") / "en").glob("c4-validation.*.json.gz"))
    for late in shards[1:]:
        late.write_bytes(b"not gzip")
    dataset_split.cache_clear()
    rows = dataset_split(paper["id"], paper["config"], paper["split"], "hint")
    assert isinstance(rows, datasets.IterableDataset)
    windows = token_windows(rows, paper["text_field"], tokenizer, 8, 64)
    assert windows.shape == (8, 64)
    with pytest.raises(Exception):  # noqa: B017 - reading the whole config hits a broken shard
        load_dataset(paper["id"], config=paper["config"])
