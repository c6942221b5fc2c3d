"""Per-cell metrics of the eval grid (§7) from per-example results: values, BCa CIs, AUC, regression."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from cachemedicpp.task_auc import (
    CLEAN,
    DAMAGE_MIN,
    NONE,
    PPL,
    Axis,
    UnitValues,
    gain_ci,
    mean_task_gain,
    recovery,
    task_auc,
    type_auc,
)
from labkit.determinism import derive_seed
from labkit.stats import bootstrap_ci

HEURISTIC_OF_STABILITY_TASK = PPL  # stability reads next-token logits: the LM task's best heuristic


def unit_key(unit: tuple[str, str, float, str]) -> str:
    """The progress-file key of an eval unit (task, type, eps, defense)."""
    task, kind, eps, defense = unit
    return f"{task}|{kind}|{eps!r}|{defense}"


def _arrays(rows: Sequence[Mapping[str, float]], key: str) -> np.ndarray:
    return np.asarray([r[key] for r in rows], dtype=np.float64)


def task_value(task: str, rows: Sequence[Mapping[str, float]], idx: np.ndarray) -> float:
    """PPL (token-weighted) or accuracy of the examples `idx`."""
    if task == PPL:
        return math.exp(_arrays(rows, "nll")[idx].sum() / _arrays(rows, "n")[idx].sum())
    return float(_arrays(rows, "correct")[idx].mean())


def cell_scores(task: str, rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """A finished cell's scores over all its examples, as its eval log line carries them."""
    idx = np.arange(len(rows))
    out = {"metric": "ppl" if task == PPL else "accuracy", "value": task_value(task, rows, idx)}
    if "kl" in rows[0]:
        count = _arrays(rows, "n").sum()
        out["kl_to_clean"] = float(_arrays(rows, "kl").sum() / count)
        out["top1_agreement"] = float(_arrays(rows, "top1").sum() / count)
    return out


def subset_values(task: str, rows: Sequence[Mapping[str, float]]) -> Callable[[np.ndarray], Any]:
    """`task_value` vectorised: index arrays [..., k] -> values [...], with the same bits."""
    if task == PPL:
        nll, n = _arrays(rows, "nll"), _arrays(rows, "n")
        return lambda idx: _exp(nll[idx].sum(axis=-1) / n[idx].sum(axis=-1))
    correct = _arrays(rows, "correct")
    return lambda idx: correct[idx].mean(axis=-1)


def _exp(x: np.ndarray) -> np.ndarray:
    # math.exp per element: np.exp may differ from the scalar path in the last bit
    x = np.asarray(x)
    return np.array([math.exp(v) for v in x.ravel()]).reshape(x.shape)


def recoveries(task: str, none: Any, defended: Any, clean: Any) -> Any:
    """`recovery` elementwise over arrays, NaN where it is undefined."""
    none, defended, clean = np.broadcast_arrays(none, defended, clean)
    damage = (none - clean) / clean if task == PPL else clean - none
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (none - defended) / (none - clean)
    return np.where(damage <= DAMAGE_MIN, np.nan, out)


def _ci(
    stat: Callable[[np.ndarray], Any], n: int, boot: Mapping[str, Any], seed: tuple
) -> dict[str, Any]:
    """BCa CI of `stat` over examples, resampling example indices.

    `stat` maps index arrays [..., k] to values [...]: scipy then scores a batch of resamples per
    call instead of one (a per-resample call made the cell CIs most of the eval's summary time).
    """

    def statistic(i: np.ndarray, axis: int = -1) -> Any:
        return stat(np.moveaxis(i, axis, -1).astype(int))

    res = bootstrap_ci(
        np.arange(n, dtype=np.float64),
        seed=derive_seed(*seed),
        statistic=statistic,
        n_resamples=boot["n_resamples"],
        confidence=boot["confidence"],
    )
    return {"low": res.low, "high": res.high, "method": res.method, "confidence": res.confidence}


def summarize(
    cfg: Mapping[str, Any],
    units: Sequence[tuple[str, str, float, str]],
    done: Mapping[str, Mapping[str, Any]],
    axis: Axis,
) -> dict[str, Any]:
    """The `metrics` of task_metrics.json: cells, per-task AUCs and gains, regression, best heuristics."""
    boot, seed = cfg["eval"]["bootstrap"], cfg["seed"]
    rows = {u: done[unit_key(u)]["rows"] for u in units}
    cells = []
    for unit in units:
        task, kind, eps, defense = unit
        r = rows[unit]
        n = len(r)
        all_idx = np.arange(n)
        clean_rows = rows[(task, CLEAN, 0.0, "no_defense")]
        none_rows = rows[(task, kind, eps, "no_defense")]
        value = task_value(task, r, all_idx)
        clean = task_value(task, clean_rows, all_idx)
        none = task_value(task, none_rows, all_idx)
        cell = {
            "task": task,
            "type": kind,
            "eps": eps,
            "defense": defense,
            "n": n,
            "value": value,
            "ci": _ci(subset_values(task, r), n, boot, (seed, *unit)),
            "score": 1 / value if task == PPL else value,
        }
        if task == PPL:
            cell["delta_ppl"] = value - clean
        cell.update({k: v for k, v in cell_scores(task, r).items() if k not in ("metric", "value")})
        rec = recovery(task, none, value, clean)
        cell["recovery"] = rec
        if rec is not None and defense != "no_defense":
            of = [subset_values(task, x) for x in (none_rows, r, clean_rows)]

            def stat(i, t=task, of=of):
                return recoveries(t, *(f(i) for f in of))

            cell["recovery_ci"] = _ci(stat, n, boot, (seed, "recovery", *unit))
        result, base = done[unit_key(unit)], done[unit_key((task, kind, eps, "no_defense"))]
        cell["tokens_per_s"] = result["tokens"] / result["seconds"]
        cell["throughput_ratio"] = (result["tokens"] / result["seconds"]) / (
            base["tokens"] / base["seconds"]
        )
        cell["peak_memory_mb"] = result["peak_memory_mb"]
        cell["peak_memory_scope"] = result["peak_memory_scope"]
        cells.append(cell)
    return {
        "cells": cells,
        **aggregates(cfg, cells, rows, axis),
    }


def best_heuristic(
    heuristics: Sequence[str], auc: Mapping[str, float | None], regression: Mapping[str, float]
) -> str | None:
    """The heuristic of largest task AUC; where no curve is defined (no PPL damage above 1 %),
    the one that costs least on clean input, since there is nothing to recover."""
    scored = [h for h in heuristics if auc[h] is not None]
    if scored:
        return max(scored, key=auc.__getitem__)
    return min(heuristics, key=regression.__getitem__) if heuristics else None


def aggregates(
    cfg: Mapping[str, Any],
    cells: Sequence[Mapping[str, Any]],
    rows: Mapping[tuple[str, str, float, str], Sequence[Mapping[str, float]]],
    axis: Axis,
) -> dict[str, Any]:
    """Per task (never across tasks): AUC per type and mean, gains over no_defense with CIs, the
    best heuristic; clean regression; the needle gate; R_phi's mean gain over the gated tasks."""
    by = {(c["task"], c["type"], c["eps"], c["defense"]): c for c in cells}
    tasks = sorted({c["task"] for c in cells})
    defenses = list(dict.fromkeys(c["defense"] for c in cells))
    boot, seed = cfg["eval"]["bootstrap"], cfg["seed"]
    gate = None
    if "needle_long_context" in tasks:
        acc = by[("needle_long_context", CLEAN, 0.0, NONE)]["value"]
        threshold = cfg["eval"]["needle_long_context"]["gate"]
        gate = {"clean_accuracy": acc, "threshold": threshold, "passed": acc >= threshold}
    counted = [t for t in tasks if not (t == "needle_long_context" and not gate["passed"])]
    values = UnitValues(rows)
    sizes = {t: by[(t, CLEAN, 0.0, NONE)]["n"] for t in tasks}
    auc, per_task, gains, best = {}, {}, {}, {}
    heuristics = [d for d in defenses if d not in (NONE, "cachemedic", "cachemedic_no_contr")]
    for task in tasks:
        auc[task] = {
            k: {d: type_auc(task, k, d, axis, values.value) for d in defenses} for k in axis.grids
        }
        per_task[task] = {d: task_auc(task, d, axis, values.value) for d in defenses}
        pairs = [(d, NONE) for d in defenses if d != NONE]
        if {"cachemedic", "cachemedic_no_contr"} <= set(defenses):
            pairs.append(("cachemedic", "cachemedic_no_contr"))
        gains[task] = {
            f"{d}_vs_{b}": gain_ci(task, d, b, axis, values, sizes[task], boot, seed)
            for d, b in pairs
        }
    regression = {}
    for task in tasks:
        clean = by[(task, CLEAN, 0.0, NONE)]["value"]
        regression[task] = {
            d: (
                100 * (by[(task, CLEAN, 0.0, d)]["value"] / clean - 1)
                if task == PPL
                else 100 * (clean - by[(task, CLEAN, 0.0, d)]["value"])
            )
            for d in defenses
        }
        best[task] = best_heuristic(heuristics, per_task[task], regression[task])
    mean_gain = None
    if "cachemedic" in defenses and counted:
        mean_gain = mean_task_gain(counted, "cachemedic", axis, values, sizes, boot, seed)
    return {
        "auc_axis": axis.describe(),
        "auc": auc,
        "task_auc": per_task,
        "auc_gain": gains,
        "cachemedic_mean_task_gain": mean_gain,
        "clean_regression": regression,
        "clean_regression_units": {PPL: "percent PPL", "other": "accuracy points"},
        "needle_gate": gate,
        "aggregated_tasks": counted,
        "best_heuristic": best,
    }
