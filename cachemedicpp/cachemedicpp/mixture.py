"""Events from a config: the training mixture Π (and its OOD renormalisation), eps grids, donors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from cachemedicpp.config import project_path
from cachemedicpp.corruption import CorruptionEvent, Params
from cachemedicpp.masks import Axes
from labkit.config import load_yaml
from labkit.determinism import generator
from labkit.errors import ConfigError


def ood_split(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The leave-one-type-out split named by `eval.ood_protocol` (None when unset)."""
    name = cfg["eval"]["ood_protocol"]
    if name is None:
        return None
    path = cfg["eval"]["ood_splits_path"]
    splits = load_yaml(project_path(path))
    if name not in splits:
        raise ConfigError(
            f"eval.ood_protocol {name!r} is not a split of {path}; known: {', '.join(splits)}"
        )
    return splits[name]


def train_mix(cfg: Mapping[str, Any]) -> dict[str, float]:
    """Π for training, weights summing to 1; under an OOD protocol only over its train_types."""
    weights = dict(cfg["corruption"]["mix"])
    split = ood_split(cfg)
    if split is not None:
        weights = {t: w for t, w in weights.items() if t in split["train_types"]}
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError("the training mixture has no type with positive weight")
    return {t: w / total for t, w in weights.items() if w > 0}


def eps_grids(
    cfg: Mapping[str, Any], types: list[str], eps_star: Mapping[str, float] | None
) -> dict[str, list[float]]:
    """Per type eps grid: eps*×`calibrate.multipliers` when calibrated, else `corruption.eps_grid`."""
    if eps_star is None:
        return {t: list(cfg["corruption"]["eps_grid"]) for t in types}
    mult = cfg["corruption"]["calibrate"]["multipliers"]
    return {t: [eps_star[t] * m for m in mult] for t in types}


def sample_step(
    cfg: Mapping[str, Any], mix: Mapping[str, float], grids: Mapping[str, list[float]], step: int
) -> tuple[str, float] | None:
    """This step's (type, eps), or None for a clean step; a function of (seed, step) only."""
    g = generator(cfg["seed"], "train-mix", step)
    if torch.rand((), generator=g).item() < cfg["train"]["clean_batch_prob"]:
        return None
    types = list(mix)
    kind = types[int(torch.multinomial(torch.tensor([mix[t] for t in types]), 1, generator=g))]
    grid = grids[kind]
    return kind, float(grid[int(torch.randint(len(grid), (), generator=g))])


def make_event(
    cfg: Mapping[str, Any],
    kind: str,
    eps: float,
    key: tuple,
    *,
    max_len: int,
    donor: Mapping[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
    persistence: str | None = None,
) -> CorruptionEvent:
    """A corruption event with the config's axes, params, eps mode and protected layers."""
    corr = cfg["corruption"]
    return CorruptionEvent(
        type=kind,
        eps=eps,
        key=key,
        protect_layers=tuple(cfg["repair"]["protect_layers"]),
        axes=Axes.from_config(corr["axes"]),
        params=Params.from_config(corr["params"]),
        eps_mode=corr["eps_mode"],
        persistence=persistence or corr["persistence"],
        max_len=max_len,
        donor=donor,
    )


@torch.no_grad()
def donor_cache(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, length: int
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Clean K,V of every layer for `prompt`, its tokens repeated to `length` (the overwrite donor)."""
    ids = tokenizer(prompt, return_tensors="pt").input_ids[0]
    if ids.numel() == 0:
        raise ConfigError("corruption.params.donor_prompt tokenizes to nothing")
    ids = ids.repeat(-(-length // ids.numel()))[:length][None].to(model.device)
    cache = model(ids, use_cache=True).past_key_values
    return {i: (layer.keys, layer.values) for i, layer in enumerate(cache.layers)}
