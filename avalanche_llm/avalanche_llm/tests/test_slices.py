"""Data slices: stride-T windows, disjoint calibration and held-out draws, stable hashes, verification."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from avalanche_llm import canon
from avalanche_llm.config import resolve_config
from avalanche_llm.errors import DeterminismError
from avalanche_llm.slices import draw_slice, slice_size, token_windows, verify_slice
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
