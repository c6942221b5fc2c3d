"""Data slices: stride-T token windows from a data set, a seeded draw of n, sorted and hashed.

The pool is the first max(n + excluded, min(WINDOW_POOL_MAX, n * WINDOW_POOL_FACTOR)) windows of the
split's token stream (rows tokenised in order, EOS between rows). The draw uses a generator seeded by
sha256("1337|<anchor run id>|<slice name>"), where the anchor is the S01 run, so every later phase
re-derives the identical slice and compares its hash with the one recorded upstream.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from avalanche_llm import canon
from avalanche_llm.errors import DeterminismError
from avalanche_llm.io.artifacts import RunArtifacts
from avalanche_llm.io.hashing import sha256_array, sha256_json
from labkit.errors import ConfigError, MissingInputError
from labkit.zoo import load_dataset, stream_dataset
from labkit.zoo.catalog import is_zoo_name

STREAMED_FILES = (".json", ".jsonl")
# name -> (dataset role, config key of n, slices whose windows it must not reuse)
SLICES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "A_cal": ("A", "n_windows_a_calibration", ()),
    "A_heldout": ("A", "n_windows_a_rasters", ("A_cal",)),
    "B_eval": ("B", "n_windows_b_eval", ()),
}
TOKENIZE_BATCH = 256


@dataclass(frozen=True)
class Slice:
    """Sorted windows drawn from a pool of stride-T windows of one data set split."""

    name: str
    dataset_role: str
    dataset: dict[str, Any]
    pool_size: int
    indices: np.ndarray  # [n] sorted pool indices
    windows: np.ndarray  # [n, T] int64 token ids
    sha256: str

    def describe(self) -> dict[str, Any]:
        """What the run record and slice.json keep of the slice (no tokens)."""
        return {
            "name": self.name,
            "role": self.dataset_role,
            **self.dataset,
            "pool_size": self.pool_size,
            "n_windows": int(self.indices.size),
            "seq_len": int(self.windows.shape[1]),
            "indices": self.indices.tolist(),
            "sha256": self.sha256,
        }


@cache
def dataset_split(ds_id: str, config: str | None, split: str, hint: str) -> Any:
    """One split of a data set: zoo and saved data sets in full, hub ids and JSON-lines files as
    a stream (only the documents a slice reads are fetched; nothing prepares a whole config)."""
    if not is_zoo_name(ds_id) and not Path(ds_id).is_dir():
        return streamed_split(ds_id, config, split, hint)
    data = load_dataset(ds_id, config=config, local_hint=hint)
    if split not in data:
        raise ConfigError(f"data set {ds_id} has no split {split!r}; splits: {', '.join(data)}")
    return data[split]


def streamed_split(ds_id: str, config: str | None, split: str, hint: str) -> Any:
    """`datasets.IterableDataset` of a hub id (+ config; its replica when rehearsing) or a local
    JSON-lines file, read in order."""
    if Path(ds_id).suffix in STREAMED_FILES and not Path(ds_id).is_file():
        raise MissingInputError(f"no such file: {ds_id}")
    return stream_dataset(ds_id, config=config, split=split, local_hint=hint)


def token_windows(
    rows: Any, text_field: str, tokenizer: PreTrainedTokenizerBase, n_windows: int, seq_len: int
) -> np.ndarray:
    """The first `n_windows` stride-`seq_len` windows [n, T] of the rows' token stream."""
    if text_field not in rows.column_names:
        raise ConfigError(
            f"data set has no text field {text_field!r}; columns: {rows.column_names}"
        )
    need = n_windows * seq_len
    stream: list[int] = []
    sep = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    for batch in rows.iter(batch_size=TOKENIZE_BATCH):
        texts = [t for t in batch[text_field] if t and t.strip()]
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            stream.extend(ids + sep)
        if len(stream) >= need:
            break
    if len(stream) < need:
        raise ConfigError(
            f"{n_windows} windows of {seq_len} tokens need {need} tokens; the split has {len(stream)}"
        )
    return np.asarray(stream[:need], dtype=np.int64).reshape(n_windows, seq_len)


def slice_size(cfg: dict[str, Any], name: str, d_ff: int) -> int:
    """n of a slice; the calibration slice grows to hold RATE_MATCH_MIN_CAL_SAMPLES per layer."""
    p = cfg["pipeline"]
    n = p[SLICES[name][1]]
    if name == "A_cal":
        n = max(n, math.ceil(p["rate_match_min_cal_samples"] / (p["seq_len_tokens"] * d_ff)))
    return n


def _draw(cfg: dict[str, Any], name: str, anchor: str, d_ff: int) -> tuple[np.ndarray, int]:
    p = cfg["pipeline"]
    n = slice_size(cfg, name, d_ff)
    excluded = np.concatenate(
        [_draw(cfg, other, anchor, d_ff)[0] for other in SLICES[name][2]] or [np.zeros(0, int)]
    )
    pool = max(n + excluded.size, min(p["window_pool_max"], n * p["window_pool_factor"]))
    candidates = np.setdiff1d(np.arange(pool), excluded)
    digest = hashlib.sha256(f"{p['bootstrap_seed']}|{anchor}|{name}".encode()).hexdigest()
    rng = np.random.default_rng(int(digest[:16], 16))
    return np.sort(rng.choice(candidates, size=n, replace=False)), pool


def draw_slice(
    cfg: dict[str, Any], name: str, anchor: str, tokenizer: PreTrainedTokenizerBase, d_ff: int
) -> Slice:
    """Slice `name` of this config, drawn with `anchor` (the S01 run id)."""
    if name not in SLICES:
        raise ConfigError(f"unknown slice {name!r}; known: {', '.join(SLICES)}")
    role = SLICES[name][0]
    ds = cfg["datasets"][role]
    indices, pool = _draw(cfg, name, anchor, d_ff)
    rows = dataset_split(ds["id"], ds["config"], ds["split"], cfg["runtime"]["local_hint"])
    seq_len = cfg["pipeline"]["seq_len_tokens"]
    windows = token_windows(rows, ds["text_field"], tokenizer, pool, seq_len)[indices]
    info = {k: ds[k] for k in ("id", "config", "split", "text_field")}
    digest = sha256_json(
        {
            "name": name,
            "dataset": info,
            "pool": pool,
            "indices": indices.tolist(),
            "windows": sha256_array(windows),
        }
    )
    return Slice(name, role, info, pool, indices, windows, digest)


def verify_slice(sl: Slice, upstream: RunArtifacts) -> None:
    """Exit 3 when `upstream` recorded no slice `sl.name`, exit 2 when it recorded another hash
    (a determinism failure: the same names re-derived different windows)."""
    recorded = upstream.read_json(canon.output("SLICE_JSON")).get(sl.name)
    if recorded is None:
        raise MissingInputError(f"{upstream.run_id} recorded no slice {sl.name}")
    if recorded["sha256"] != sl.sha256:
        raise DeterminismError(
            f"slice {sl.name} re-derived as {sl.sha256[:12]} but {upstream.run_id} recorded "
            f"{recorded['sha256'][:12]}"
        )
