"""The one context manager: activate {corruption event, defense} on a patched model, keyed by layer.

    with intervene(model, event=ev, defense=r_phi) as iv:
        logits = model(input_ids).logits          # prefill: C on read (transient), R_phi on read
        iv.eps_realized                           # what C actually did

A defense is None, R_phi (a RepairOperator), or a training-free heuristic (`KVDefense`) that rewrites
the K,V a layer reads given the region it may touch. For decode loops use `greedy_decode`, which
handles persistent events (C written once into the cache after prefill).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from transformers import Cache, PreTrainedModel

from cachemedicpp.corruption import CorruptionEvent, EventState
from cachemedicpp.families import cache_shape
from cachemedicpp.masks import Axes, time_mask
from cachemedicpp.patch import check_batch, interceptor_of
from cachemedicpp.repair import RepairOperator


class KVDefense(Protocol):
    """A heuristic defense: it rewrites cached K,V [1,H,T,d] of its layers inside `region` [1,H,T,1].

    H is the number of heads in the cache (`num_key_value_heads` under grouped-query attention).
    """

    layers: frozenset[int] | None  # None: every layer
    oracle_mask: bool  # True: the region is the event's true mask, else its time region
    axes: Axes | None  # the time region of a read without an event (None: the whole cache)

    def __call__(
        self, layer: int, key: torch.Tensor, value: torch.Tensor, region: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


Defense = RepairOperator | KVDefense


@dataclass
class LayerRecord:
    """What one layer held and read on the latest read (tensors keep their autograd history)."""

    key: torch.Tensor  # as cached, before C
    value: torch.Tensor
    key_read: torch.Tensor  # after C and any heuristic: what attention (or R_phi) started from
    value_read: torch.Tensor
    repaired: dict[str, torch.Tensor]  # R_phi's explicit K̂/V̂ at the last query (repaired parts)
    damaged: bool  # C changed this layer's K,V on this read


class Intervention:
    """State of one active intervention on one model (masks, fitted strengths, records)."""

    def __init__(
        self,
        n_heads: int,
        event: CorruptionEvent | None,
        defense: Defense | None,
        record: Iterable[int],
    ):
        self.event = event
        self.n_heads = n_heads
        self.state = None if event is None else EventState(event, n_heads)
        self.repair = defense if isinstance(defense, RepairOperator) else None
        self.heuristic = None if defense is None or self.repair is not None else defense
        self.record_layers = frozenset(record)
        self.records: dict[int, LayerRecord] = {}
        self.committed = False

    @property
    def eps_realized(self) -> float:
        """Mean relative change C made on the layers it hit (0 without an event)."""
        return 0.0 if self.state is None else self.state.eps_realized()

    def attend(
        self,
        module: nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float,
        dropout: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One layer's attention under this intervention (called by the patched model)."""
        layer = module.layer_idx
        cached_k, cached_v = key, value
        damaged = False
        if self.state is not None and self.event.persistence == "transient":
            key, value = self.state.apply(layer, key, value)
            damaged = self.state.realized.get(layer, 0.0) > 0
        heuristic = self.heuristic
        if heuristic is not None and (heuristic.layers is None or layer in heuristic.layers):
            region = self.region(layer, key.shape[-2], heuristic)
            key, value = heuristic(layer, key, value, region.to(key.device))
        if self.repair is not None and layer in self.repair.layers:
            out = self.repair.attend(layer, query, key, value, attention_mask, scaling)
        else:
            out = module.cachemedic.eager(
                module, query, key, value, attention_mask, scaling=scaling, dropout=dropout
            )
        if layer in self.record_layers:
            repaired = {}
            if self.repair is not None and layer in self.repair.layers:
                repaired = self.repair.explicit(layer, key, value, query[:, :, -1:])
            self.records[layer] = LayerRecord(cached_k, cached_v, key, value, repaired, damaged)
        return out

    def region(self, layer: int, length: int, heuristic: KVDefense) -> torch.Tensor:
        """Boolean [1,H,T,1] a heuristic may touch: the event's region, else its own time region.

        A clean read gets the same time region as a damaged one, so a heuristic's clean
        regression measures what it costs where it would act, not on the recent tokens too.
        """
        if self.state is not None:
            return self.state.region(layer, length, oracle=heuristic.oracle_mask)
        if heuristic.axes is None:
            t = torch.ones(length, dtype=torch.bool)
        else:
            t = time_mask(heuristic.axes, length)
        return t[None, None, :, None].expand(1, self.n_heads, length, 1)

    def commit(self, cache: Cache) -> None:
        """Persistent events: write C once into the cache (call after prefill); no-op otherwise."""
        if self.state is None or self.event.persistence != "persistent":
            return
        if self.committed:
            raise RuntimeError("a persistent corruption event is written into the cache only once")
        for layer in sorted(self.state.layers):
            cached = cache.layers[layer]
            cached.keys, cached.values = self.state.apply(layer, cached.keys, cached.values)
        self.committed = True


@contextmanager
def intervene(
    model: PreTrainedModel,
    event: CorruptionEvent | None = None,
    defense: Defense | None = None,
    *,
    record: Iterable[int] = (),
) -> Iterator[Intervention]:
    """Activate `event` and `defense` on a patched model for the enclosed forward passes."""
    interceptor = interceptor_of(model)
    if interceptor.active is not None:
        raise RuntimeError("an intervention is already active on this model; they do not nest")
    active = Intervention(cache_shape(model.config).kv_heads, event, defense, record)
    interceptor.active = active
    try:
        yield active
    finally:
        interceptor.active = None


@torch.no_grad()
def greedy_decode(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    event: CorruptionEvent | None = None,
    defense: Defense | None = None,
    eos_token_id: int | None = None,
) -> tuple[torch.Tensor, Intervention]:
    """Greedy continuation [1, n] of a prompt [1, T] under an intervention.

    The prompt's last token is fed as the first decode step, after the prefill of the rest and
    after a persistent event was written into the cache, so every generated token reads the
    damaged cache.
    """
    check_batch(input_ids)
    if input_ids.shape[1] < 2 or max_new_tokens < 1:
        raise ValueError(
            "greedy_decode needs a prompt of at least 2 tokens and max_new_tokens >= 1"
        )
    with intervene(model, event, defense) as active:
        out = model(input_ids[:, :-1], use_cache=True)
        cache = out.past_key_values
        active.commit(cache)
        token, generated = input_ids[:, -1:], []
        for _ in range(max_new_tokens):
            out = model(token, past_key_values=cache, use_cache=True)
            token = out.logits[:, -1:].argmax(dim=-1)
            generated.append(token)
            if eos_token_id is not None and token.item() == eos_token_id:
                break
    return torch.cat(generated, dim=1), active
