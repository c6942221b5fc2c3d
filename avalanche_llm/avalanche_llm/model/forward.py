"""Batched, inference-only forward passes over token windows with u capture and a gain intervention."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch

from avalanche_llm.model.gain import apply_gain
from avalanche_llm.model.hooks import capture_u
from avalanche_llm.model.loader import LoadedModel

# sink(layer, u [b, T, d_ff], rows): rows = the window indices of this batch.
USink = Callable[[int, torch.Tensor, slice], None]
LogitsSink = Callable[[torch.Tensor, slice], None]


def forward_windows(
    lm: LoadedModel,
    windows: np.ndarray,
    batch_size: int,
    *,
    u_sink: USink | None = None,
    logits_sink: LogitsSink | None = None,
    gain: float = 1.0,
    intervention: str = "MLP_GLOBAL",
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Run `windows` [N, T] through the model at `gain`; u goes to `u_sink`, logits to `logits_sink`.

    Without a logits sink only the backbone runs (`base_model`), skipping the LM head.
    """
    ids = torch.as_tensor(np.ascontiguousarray(windows), dtype=torch.long)
    rows = slice(0, 0)

    def sink(layer: int, u: torch.Tensor) -> None:
        u_sink(layer, u, rows)

    net = lm.model if logits_sink is not None else lm.model.base_model
    with torch.inference_mode(), apply_gain(lm.model, gain, intervention):
        capture = capture_u(lm.model, sink) if u_sink is not None else nullcontext()
        with capture:
            for start in range(0, ids.shape[0], batch_size):
                rows = slice(start, min(start + batch_size, ids.shape[0]))
                batch = ids[rows].to(lm.device)
                # Windows are never padded; an explicit all-ones mask says so to every family.
                out = net(input_ids=batch, attention_mask=torch.ones_like(batch), use_cache=False)
                if logits_sink is not None:
                    logits_sink(out.logits, rows)
                if on_batch is not None:
                    on_batch(rows.stop)
