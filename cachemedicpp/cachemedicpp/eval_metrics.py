"""Per-cell metrics of the eval grid (§7) from per-example results: values, BCa CIs, AUC, regression."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from labkit.determinism import derive_seed
from labkit.stats import bootstrap_ci

PPL = "wikitext2_ppl"
CLEAN = "clean"  # the type name of the eps-0 cells, shared by every corruption type
DAMAGE_MIN = 0.01  # recovery is reported only where the undefended damage exceeds 1 %


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


def recovery(task: str, none: float, defended: float, clean: float) -> float | None:
    """Share of the undefended damage a defense undoes; None where the damage is below 1 %."""
    damage = (none - clean) / clean if task == PPL else clean - none
    if damage <= DAMAGE_MIN:
        return None
    return (none - defended) / (none - clean)


def _ci(
    stat: Callable[[np.ndarray], float], n: int, boot: Mapping[str, Any], seed: tuple
) -> dict[str, Any]:
    """BCa CI of `stat(indices)` over examples, resampling example indices."""
    res = bootstrap_ci(
        np.arange(n, dtype=np.float64),
        seed=derive_seed(*seed),
        statistic=lambda i: stat(i.astype(int)),
        n_resamples=boot["n_resamples"],
    )
    return {"low": res.low, "high": res.high, "method": res.method}


def summarize(
    cfg: Mapping[str, Any],
    units: Sequence[tuple[str, str, float, str]],
    done: Mapping[str, Mapping[str, Any]],
    examples: Mapping[str, Sequence[Any]],
) -> dict[str, Any]:
    """The `metrics` of task_metrics.json: cells, AUC, clean regression, needle gate, best heuristic."""
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
            "ci": _ci(lambda i, r=r, t=task: task_value(t, r, i), n, boot, (seed, *unit)),
            "score": 1 / value if task == PPL else value,
        }
        if task == PPL:
            cell["delta_ppl"] = value - clean
        if "kl" in r[0]:
            count = _arrays(r, "n").sum()
            cell["kl_to_clean"] = float(_arrays(r, "kl").sum() / count)
            cell["top1_agreement"] = float(_arrays(r, "top1").sum() / count)
        rec = recovery(task, none, value, clean)
        cell["recovery"] = rec
        if rec is not None and defense != "no_defense":

            def stat(i, r=r, t=task, cr=clean_rows, nr=none_rows):
                out = recovery(t, task_value(t, nr, i), task_value(t, r, i), task_value(t, cr, i))
                return np.nan if out is None else out

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
        **aggregates(cfg, cells),
    }


def aggregates(cfg: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """AUC of score over eps, mean score, clean regression, needle gate and the best heuristic."""
    by = {(c["task"], c["type"], c["eps"], c["defense"]): c for c in cells}
    tasks = sorted({c["task"] for c in cells})
    defenses = list(dict.fromkeys(c["defense"] for c in cells))
    types = sorted({c["type"] for c in cells} - {CLEAN})
    gate = None
    if "needle_long_context" in tasks:
        acc = by[("needle_long_context", CLEAN, 0.0, "no_defense")]["value"]
        threshold = cfg["eval"]["needle_long_context"]["gate"]
        gate = {"clean_accuracy": acc, "threshold": threshold, "passed": acc >= threshold}
    counted = [t for t in tasks if not (t == "needle_long_context" and not gate["passed"])]
    auc: dict[str, dict[str, dict[str, float]]] = {}
    for task in tasks:
        auc[task] = {}
        for kind in types:
            auc[task][kind] = {}
            for d in defenses:
                pts = sorted(
                    (e, c["score"])
                    for (t, k, e, dd), c in by.items()
                    if t == task and dd == d and k in (kind, CLEAN)
                )
                eps, score = zip(*pts, strict=True)
                auc[task][kind][d] = float(np.trapezoid(score, eps))
    mean_auc = {d: float(np.mean([auc[t][k][d] for t in counted for k in types])) for d in defenses}
    mean_score = {
        d: float(np.mean([c["score"] for c in cells if c["defense"] == d and c["task"] in counted]))
        for d in defenses
    }
    regression = {}
    for task in tasks:
        clean = by[(task, CLEAN, 0.0, "no_defense")]["value"]
        regression[task] = {
            d: (
                100 * (by[(task, CLEAN, 0.0, d)]["value"] / clean - 1)
                if task == "wikitext2_ppl"
                else 100 * (clean - by[(task, CLEAN, 0.0, d)]["value"])
            )
            for d in defenses
        }
    heuristics = [
        d for d in defenses if d not in ("no_defense", "cachemedic", "cachemedic_no_contr")
    ]
    best = max(heuristics, key=mean_auc.__getitem__) if heuristics else None
    return {
        "auc": auc,
        "mean_auc": mean_auc,
        "mean_score": mean_score,
        "clean_regression": regression,
        "clean_regression_units": {"wikitext2_ppl": "percent PPL", "other": "accuracy points"},
        "needle_gate": gate,
        "aggregated_tasks": counted,
        "best_heuristic": best,
    }
