"""Token streams for the LM task: every story followed by EOS, joined, cached as uint16 files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import ConfigError
from labkit.zoo import load_dataset, resolve_dataset, resolve_model
from labkit.zoo.store import build_atomically, options_hash, zoo_home

CACHE_VERSION = "1"
ENCODE_BATCH = 1000  # stories per tokenizer call


@dataclass(frozen=True)
class TokenSplits:
    """The train and test token streams (read-only memory maps) and the tokenizer's facts."""

    train: np.ndarray
    test: np.ndarray
    vocab_size: int
    eos_id: int
    cache_dir: Path


def zoo_args(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`size` applies to `local:` zoo names only; hub ids and paths take none."""
    return {"size": cfg["size"]} if cfg["dataset"].startswith("local:") else {}


def load_tokenizer(name: str, hint: str) -> Any:
    """The tokenizer saved with model `name` (zoo name, directory or hub id)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        str(resolve_model(name, local_hint=hint, tokenizer_only=True))
    )


def encode_stories(texts: list[str], tokenizer: Any) -> np.ndarray:
    """Token ids of `texts`, each story followed by one EOS, as one uint16 array."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return np.fromiter(
        (t for story in ids for t in (*story, eos)),
        dtype=np.uint16,
        count=sum(map(len, ids)) + len(ids),
    )


def _write_split(split: Any, tokenizer: Any, path: Path) -> int:
    n = 0
    with path.open("wb") as fh:
        for batch in split.iter(batch_size=ENCODE_BATCH):
            tokens = encode_stories(batch["text"], tokenizer)
            tokens.tofile(fh)
            n += len(tokens)
    return n


def load_token_splits(cfg: Mapping[str, Any], hint: str) -> TokenSplits:
    """Tokenise the train and test splits once (cached under the zoo home), then map them."""
    tokenizer = load_tokenizer(cfg["tokenizer"], hint)
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"tokenizer {cfg['tokenizer']} has no EOS token to end stories with")
    vocab = len(tokenizer)
    if vocab > np.iinfo(np.uint16).max + 1:
        raise ConfigError(f"vocabulary of {vocab} does not fit the uint16 token cache")
    ds = load_dataset(cfg["dataset"], **zoo_args(cfg), local_hint=hint)
    splits = {"train": cfg["train_split"], "test": cfg["test_split"]}
    for name in splits.values():
        if name not in ds:
            raise ConfigError(
                f"data set {cfg['dataset']} has no split {name!r}; splits: {', '.join(ds)}"
            )
        if "text" not in ds[name].column_names:
            raise ConfigError(f"data set {cfg['dataset']} split {name!r} has no `text` column")
    key = {
        "dataset": cfg["dataset"],
        "size": zoo_args(cfg).get("size"),
        "source": str(resolve_dataset(cfg["dataset"], **zoo_args(cfg), local_hint=hint)),
        "splits": splits,
        "tokenizer": tokenizer.name_or_path,
        "vocab": vocab,
        "eos": tokenizer.eos_token_id,
        "version": CACHE_VERSION,
    }
    target = zoo_home() / "esper" / "tokens" / options_hash(key)

    def build(tmp: Path) -> dict[str, Any]:
        counts = {k: _write_split(ds[v], tokenizer, tmp / f"{k}.bin") for k, v in splits.items()}
        return key | {"tokens": counts, "stories": {k: len(ds[v]) for k, v in splits.items()}}

    build_atomically(target, build)
    card = json.loads((target / "zoo_card.json").read_text(encoding="utf-8"))
    empty = [k for k, n in card["tokens"].items() if n == 0]
    if empty:
        raise ConfigError(f"data set {cfg['dataset']} gives no tokens for split(s) {empty}")
    return TokenSplits(
        train=np.memmap(target / "train.bin", dtype=np.uint16, mode="r"),
        test=np.memmap(target / "test.bin", dtype=np.uint16, mode="r"),
        vocab_size=card["vocab"],
        eos_id=card["eos"],
        cache_dir=target,
    )
