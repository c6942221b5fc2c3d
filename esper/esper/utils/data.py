"""Task data: CIFAR-10-shaped images and EOS-joined token windows, as seeded in-memory batch streams.

Three splits: train; validation, carved from the train split (`data.val_fraction`), which drives every
decision (reward, observations, lifecycle); test, the data set's held-out split, scored only at the
end of an episode.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from esper.utils.tokens import load_token_splits, zoo_args
from labkit.determinism import generator
from labkit.errors import ConfigError
from labkit.zoo import load_dataset

Batch = tuple[Tensor, Tensor]
EVAL_SPLITS = ("val", "test")
# Named in the error when a hub data set or tokenizer cannot be reached.
OFFLINE_HINTS = {
    "classification": "without hub access use configs/cifar10_local.yaml (local:shapes10)",
    "lm": "without hub access use configs/tinystories_local.yaml (local:stories)",
}


def _split(ds: Any, name: str, dataset: str) -> Any:
    if name not in ds:
        raise ConfigError(f"data set {dataset} has no split {name!r}; splits: {', '.join(ds)}")
    return ds[name]


@dataclass
class ImageData:
    """Images kept as uint8 (N, 3, H, W); batches are normalised and, in training, crop+flip augmented."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    n_outputs: int
    batch_size: int
    mean: Tensor
    std: Tensor
    augment: bool
    max_train_batches: int | None
    max_val_batches: int | None
    task_type: str = "classification"
    block_size: int | None = None

    def steps_per_epoch(self) -> int:
        """Optimiser steps in one training epoch."""
        n = math.ceil(len(self.train_x) / self.batch_size)
        return n if self.max_train_batches is None else min(n, self.max_train_batches)

    def _prepare(self, x: Tensor) -> Tensor:
        return (x.float() / 255.0 - self.mean) / self.std

    def train_batches(self, g: torch.Generator) -> Iterator[Batch]:
        """One epoch of shuffled, augmented batches; all randomness comes from `g`."""
        order = torch.randperm(len(self.train_x), generator=g)
        for b in range(self.steps_per_epoch()):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = self._prepare(self.train_x[idx])
            if self.augment:
                x = _crop_flip(x, g)
            yield x, self.train_y[idx]

    def eval_batches(self, split: str = "val") -> Iterator[Batch]:
        """The `val` or `test` images in order (each pass capped at `max_val_batches`)."""
        xs, ys = {"val": (self.val_x, self.val_y), "test": (self.test_x, self.test_y)}[split]
        for b in range(_eval_batch_count(len(xs), self.batch_size, self.max_val_batches)):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            yield self._prepare(xs[sl]), ys[sl]


def _eval_batch_count(n: int, batch_size: int, cap: int | None) -> int:
    batches = math.ceil(n / batch_size)
    return batches if cap is None else min(batches, cap)


def _check_fraction(fraction: float, dataset: str) -> None:
    if not 0 < fraction < 1:
        raise ConfigError(f"{dataset}: data.val_fraction must lie in (0, 1), got {fraction}")


def carve_indices(n: int, fraction: float) -> tuple[Tensor, Tensor]:
    """(train, validation) row indices of a split of `n` rows: a fixed shuffle, the last part held out.

    The shuffle comes from its own named stream, so every episode and policy sees the same carve.
    """
    n_val = max(1, round(n * fraction))
    if n_val >= n:
        raise ConfigError(f"val_fraction {fraction} leaves no training rows out of {n}")
    order = torch.randperm(n, generator=generator("esper", "val-carve"))
    return order[: n - n_val].sort().values, order[n - n_val :].sort().values


def _crop_flip(x: Tensor, g: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop of the zero-padded image back to its size, then a random horizontal flip."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    left = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    rows = (top[:, None] + torch.arange(h))[:, None, :, None]
    cols = (left[:, None] + torch.arange(w))[:, None, None, :]
    out = padded[
        torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols
    ]
    flip = torch.rand(b, generator=g) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def _images(split: Any, size: int, dataset: str) -> tuple[Tensor, Tensor]:
    missing = {"img", "label"} - set(split.column_names)
    if missing:
        raise ConfigError(
            f"{dataset} lacks column(s) {sorted(missing)}; it has {split.column_names}"
        )
    arr = split.with_format("numpy")[:]
    x = torch.from_numpy(np.ascontiguousarray(arr["img"])).permute(0, 3, 1, 2).contiguous()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x, torch.from_numpy(np.asarray(arr["label"])).long()


def load_image_data(cfg: Mapping[str, Any]) -> ImageData:
    """CIFAR-10 (`cifar10`), `local:shapes10`, or a saved/local image data set with `img` and `label`."""
    hint = OFFLINE_HINTS["classification"]
    ds = load_dataset(cfg["dataset"], **zoo_args(cfg), local_hint=hint)
    _check_fraction(cfg["val_fraction"], cfg["dataset"])
    train, test = (_split(ds, cfg[k], cfg["dataset"]) for k in ("train_split", "test_split"))
    label = train.features.get("label")
    if not hasattr(label, "num_classes"):
        raise ConfigError(f"{cfg['dataset']}: column `label` is not a ClassLabel")
    all_x, all_y = _images(train, cfg["image_size"], cfg["dataset"])
    keep, held = carve_indices(len(all_x), cfg["val_fraction"])
    test_x, test_y = _images(test, cfg["image_size"], cfg["dataset"])
    return ImageData(
        train_x=all_x[keep],
        train_y=all_y[keep],
        val_x=all_x[held],
        val_y=all_y[held],
        test_x=test_x,
        test_y=test_y,
        n_outputs=label.num_classes,
        batch_size=cfg["batch_size"],
        mean=torch.tensor(cfg["mean"]).view(1, 3, 1, 1),
        std=torch.tensor(cfg["std"]).view(1, 3, 1, 1),
        augment=cfg["augment"],
        max_train_batches=cfg["max_train_batches"],
        max_val_batches=cfg["max_val_batches"],
    )


@dataclass
class TokenData:
    """One token stream per split, cut into (block_size + 1)-token windows at stride block_size."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    n_outputs: int
    eos_id: int
    block_size: int
    batch_size: int
    max_train_batches: int | None
    max_val_batches: int | None
    task_type: str = "lm"

    def __post_init__(self) -> None:
        for name, stream in (("train", self.train), ("val", self.val), ("test", self.test)):
            if n_windows(len(stream), self.block_size) == 0:
                raise ConfigError(
                    f"the {name} split has {len(stream)} tokens, fewer than one window of "
                    f"{self.block_size + 1}; lower data.block_size"
                )

    def steps_per_epoch(self) -> int:
        """Optimiser steps in one training epoch."""
        n = math.ceil(n_windows(len(self.train), self.block_size) / self.batch_size)
        return n if self.max_train_batches is None else min(n, self.max_train_batches)

    def _batch(self, stream: np.ndarray, windows: Tensor) -> Batch:
        starts = windows.numpy() * self.block_size
        rows = np.stack([stream[s : s + self.block_size + 1] for s in starts]).astype(np.int64)
        t = torch.from_numpy(rows)
        return t[:, :-1], t[:, 1:]

    def train_batches(self, g: torch.Generator) -> Iterator[Batch]:
        """One epoch of batches of shuffled windows (capped at `max_train_batches`)."""
        order = torch.randperm(n_windows(len(self.train), self.block_size), generator=g)
        for b in range(self.steps_per_epoch()):
            yield self._batch(self.train, order[b * self.batch_size : (b + 1) * self.batch_size])

    def eval_batches(self, split: str = "val") -> Iterator[Batch]:
        """The `val` or `test` windows in order (each pass capped at `max_val_batches`)."""
        stream = {"val": self.val, "test": self.test}[split]
        windows = torch.arange(n_windows(len(stream), self.block_size))
        for b in range(_eval_batch_count(len(windows), self.batch_size, self.max_val_batches)):
            yield self._batch(stream, windows[b * self.batch_size : (b + 1) * self.batch_size])


def n_windows(n_tokens: int, block_size: int) -> int:
    """Full (block_size + 1)-token windows at stride block_size; only the last partial one is lost."""
    return max(0, (n_tokens - 1) // block_size)


def load_token_data(cfg: Mapping[str, Any]) -> TokenData:
    """TinyStories (or `local:stories`) through its tokenizer, stories joined with EOS, cached as uint16."""
    _check_fraction(cfg["val_fraction"], cfg["dataset"])
    splits = load_token_splits(cfg, OFFLINE_HINTS["lm"])
    # The validation part is the tail of the train stream;
    # a contiguous cut keeps every validation window out of training.
    cut = len(splits.train) - round(len(splits.train) * cfg["val_fraction"])
    return TokenData(
        train=splits.train[:cut],
        val=splits.train[cut:],
        test=splits.test,
        n_outputs=splits.vocab_size,
        eos_id=splits.eos_id,
        block_size=cfg["block_size"],
        batch_size=cfg["batch_size"],
        max_train_batches=cfg["max_train_batches"],
        max_val_batches=cfg["max_val_batches"],
    )


def load_task_data(task_type: str, cfg: Mapping[str, Any]) -> ImageData | TokenData:
    """The data of a `classification` or `lm` task, as its config block describes."""
    if task_type == "classification":
        return load_image_data(cfg)
    if task_type == "lm":
        return load_token_data(cfg)
    raise ConfigError(f"unknown task_type {task_type!r}; known: classification, lm")
