"""Per-task AUC on the normalised damage axis x = eps/eps*, and each defense's gain with a BCa CI.

One task, one unit: for perplexity the curve is the recovery R of the PPL damage (defined where
the undefended damage exceeds 1 %), for SST-2 and the needle it is accuracy (x = 0 included).
A type's AUC is the trapezoid area over x divided by the x span it covers (the curve's mean
height), so every type counts the same whatever its eps*; a task's AUC is the mean over its types.
Numbers of different tasks are never averaged, except the gain over no_defense in
`mean_task_gain`, where every task's gain is a fraction (of damage recovered, of examples right).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats

from labkit.determinism import derive_seed
from labkit.stats import bootstrap_ci

PPL = "wikitext2_ppl"
CLEAN = "clean"
NONE = "no_defense"
DAMAGE_MIN = 0.01  # recovery is defined only where the undefended damage exceeds 1 %
Unit = tuple[str, str, float, str]


def recovery(task: str, none: float, defended: float, clean: float) -> float | None:
    """Share of the undefended damage a defense undoes; None where the damage is below 1 %."""
    damage = (none - clean) / clean if task == PPL else clean - none
    if damage <= DAMAGE_MIN:
        return None
    return (none - defended) / (none - clean)


class UnitValues:
    """Per-example results of every unit as arrays: PPL or accuracy of any subset of examples."""

    def __init__(self, rows: Mapping[Unit, Sequence[Mapping[str, float]]]):
        self.arrays: dict[Unit, tuple[np.ndarray, np.ndarray]] = {}
        for unit, r in rows.items():
            key = "nll" if unit[0] == PPL else "correct"
            self.arrays[unit] = (
                np.asarray([x[key] for x in r], dtype=np.float64),
                np.asarray([x["n"] for x in r], dtype=np.float64),
            )

    def value(self, unit: Unit, idx: np.ndarray | None = None) -> float:
        """PPL (token-weighted) or accuracy of the examples `idx` (all when None)."""
        a, n = self.arrays[unit]
        if idx is not None:
            a, n = a[idx], n[idx]
        if unit[0] == PPL:
            return math.exp(a.sum() / n.sum())
        return float(a.mean())


@dataclass(frozen=True)
class Axis:
    """The normalised axis: eps grid and reference eps (eps*, or the largest eps) per type."""

    grids: Mapping[str, Sequence[float]]
    reference: Mapping[str, float]
    calibrated: bool

    def describe(self) -> dict[str, Any]:
        """What the AUCs of task_metrics.json were computed over."""
        return {
            "x": "eps / reference_eps",
            "reference_eps": dict(self.reference),
            "reference": "calibrated eps*" if self.calibrated else "largest eps of the grid",
            "quantity": {PPL: "recovery of the PPL damage", "other": "accuracy"},
            "auc": "trapezoid area over x / x span (mean height); task AUC: mean over types",
        }


def mean_height(points: Sequence[tuple[float, float]]) -> float | None:
    """Area under the points divided by their x span; one point is its own height."""
    if not points:
        return None
    if len(points) == 1:
        return points[0][1]
    x, y = (np.asarray(v, dtype=np.float64) for v in zip(*sorted(points), strict=True))
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def type_auc(
    task: str, kind: str, defense: str, axis: Axis, value: Callable[[Unit], float]
) -> float | None:
    """The AUC of one (task, type, defense) curve over x = eps/eps*."""
    clean = value((task, CLEAN, 0.0, NONE))
    points = [] if task == PPL else [(0.0, value((task, CLEAN, 0.0, defense)))]
    for eps in axis.grids[kind]:
        if eps <= 0:
            continue
        y = value((task, kind, eps, defense))
        if task == PPL:
            y = recovery(task, value((task, kind, eps, NONE)), y, clean)
            if y is None:
                continue
        points.append((eps / axis.reference[kind], y))
    return mean_height(points)


def task_auc(task: str, defense: str, axis: Axis, value: Callable[[Unit], float]) -> float | None:
    """Mean AUC over the types with a defined curve (the same types for every defense)."""
    aucs = [type_auc(task, k, defense, axis, value) for k in axis.grids]
    aucs = [a for a in aucs if a is not None]
    return float(np.mean(aucs)) if aucs else None


def _gain(
    task: str, defense: str, base: str, axis: Axis, values: UnitValues, idx: np.ndarray | None
) -> float:
    def value(unit: Unit) -> float:
        return values.value(unit, idx)

    a, b = task_auc(task, defense, axis, value), task_auc(task, base, axis, value)
    return np.nan if a is None or b is None else a - b


def gain_ci(
    task: str,
    defense: str,
    base: str,
    axis: Axis,
    values: UnitValues,
    n: int,
    boot: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Task AUC of `defense` minus that of `base`, with a BCa CI over resampled examples."""
    res = bootstrap_ci(
        np.arange(n, dtype=np.float64),
        seed=derive_seed(seed, "auc_gain", task, defense, base),
        statistic=lambda i: _gain(task, defense, base, axis, values, i.astype(int)),
        n_resamples=boot["n_resamples"],
        confidence=boot["confidence"],
    )
    return res.to_dict()


def mean_task_gain(
    tasks: Sequence[str],
    defense: str,
    axis: Axis,
    values: UnitValues,
    sizes: Mapping[str, int],
    boot: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Mean over tasks of the AUC gain over no_defense; BCa CI resampling each task's examples.

    Tasks without a defined gain (no PPL damage above 1 % anywhere) are left out and listed.
    """
    undefined = [t for t in tasks if not np.isfinite(_gain(t, defense, NONE, axis, values, None))]
    tasks = [t for t in tasks if t not in undefined]
    out: dict[str, Any] = {
        "value": None,
        "low": None,
        "high": None,
        "confidence": boot["confidence"],
        "method": "BCa, examples resampled within each task",
        "tasks": list(tasks),
        "left_out": undefined,
    }
    if not tasks:
        return out

    def stat(*idx: np.ndarray) -> float:
        gains = [
            _gain(t, defense, NONE, axis, values, i.astype(int))
            for t, i in zip(tasks, idx, strict=True)
        ]
        return float(np.mean(gains))

    data = tuple(np.arange(sizes[t], dtype=np.float64) for t in tasks)
    value = stat(*data)
    res = scipy.stats.bootstrap(
        data,
        stat,
        vectorized=False,
        paired=False,
        n_resamples=boot["n_resamples"],
        confidence_level=boot["confidence"],
        method="BCa",
        rng=np.random.default_rng(derive_seed(seed, "mean_task_gain", defense)),
    )
    low, high = res.confidence_interval
    finite = bool(np.isfinite(low) and np.isfinite(high))
    out.update(
        value=value, low=float(low) if finite else None, high=float(high) if finite else None
    )
    return out
