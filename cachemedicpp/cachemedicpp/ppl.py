"""Perplexity over token windows under an intervention (sliding windows score only new tokens)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from transformers import PreTrainedModel

from cachemedicpp.corruption import CorruptionEvent
from cachemedicpp.intervention import Defense, intervene


@dataclass(frozen=True)
class Window:
    """One model input [1, n]; tokens at positions >= score_from (>= 1) are scored."""

    ids: torch.Tensor
    score_from: int


def sliding_windows(
    stream: torch.Tensor, window: int, stride: int, max_windows: int | None = None
) -> list[Window]:
    """Windows of `window` tokens every `stride` tokens, each scoring the tokens no earlier window scored."""
    if stride > window:
        raise ValueError(f"stride {stride} larger than window {window} would skip tokens")
    out, prev_end = [], 0
    for begin in range(0, stream.numel(), stride):
        end = min(begin + window, stream.numel())
        ids = stream[begin:end][None]
        out.append(Window(ids, max(1, ids.shape[1] - (end - prev_end))))
        prev_end = end
        if end == stream.numel() or len(out) == max_windows:
            break
    return out


@torch.no_grad()
def window_nll(model: PreTrainedModel, window: Window) -> tuple[float, int]:
    """(sum of token NLLs, tokens scored) of one window under whatever intervention is active."""
    ids = window.ids.to(model.device)
    logits = model(ids).logits[0, window.score_from - 1 : -1].float()
    targets = ids[0, window.score_from :]
    return F.cross_entropy(logits, targets, reduction="sum").item(), targets.numel()


def perplexity(
    model: PreTrainedModel,
    windows: list[Window],
    *,
    event_for: Callable[[int], CorruptionEvent | None] = lambda i: None,
    defense: Defense | None = None,
) -> float:
    """exp(mean NLL) over the windows, window i read under `event_for(i)` and `defense`."""
    total, count = 0.0, 0
    for i, window in enumerate(windows):
        with intervene(model, event_for(i), defense):
            nll, n = window_nll(model, window)
        total, count = total + nll, count + n
    return math.exp(total / count)
