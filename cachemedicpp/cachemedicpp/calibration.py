"""Calibration: per corruption type, bisect the eps* at which undefended PPL rises by the target."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from transformers import PreTrainedModel

from cachemedicpp.corruption import CorruptionEvent
from cachemedicpp.ppl import Window, perplexity
from labkit.progress import Stage


def search_eps(
    increase: Callable[[float], float], target: float, tol: float, eps_max: float, max_iter: int
) -> tuple[float, float]:
    """(eps, increase(eps)) closest to `target`: halve [0, eps_max] until within `tol` or out of tries.

    An `increase` that stays below the target even at eps_max leaves (eps_max, its increase).
    """
    lo, hi = 0.0, eps_max
    best = (hi, increase(hi))
    if best[1] <= target + tol:
        return best
    for _ in range(max_iter):
        mid = (lo + hi) / 2
        inc = increase(mid)
        if abs(inc - target) < abs(best[1] - target):
            best = (mid, inc)
        if abs(inc - target) <= tol:
            break
        lo, hi = (mid, hi) if inc < target else (lo, mid)
    return best


def calibrate(
    model: PreTrainedModel,
    windows: list[Window],
    types: list[str],
    make_event: Callable[[str, float, int], CorruptionEvent],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """{ppl_clean, target_ppl_increase, types: {type: {eps_star, ppl, ppl_increase, reached, evaluations}}}.

    `make_event(type, eps, i)` is the event window i reads; `settings` is `corruption.calibrate`.
    """
    ppl_clean = perplexity(model, windows)
    target, tol = settings["target_ppl_increase"], settings["tolerance"]
    out: dict[str, Any] = {}
    stage = Stage("calibrate", len(types))
    for kind in types:
        trace: list[list[float]] = []

        def increase(eps: float, kind: str = kind, trace: list = trace) -> float:
            ppl = perplexity(model, windows, event_for=lambda i: make_event(kind, eps, i))
            trace.append([eps, ppl])
            return ppl / ppl_clean - 1

        eps, inc = search_eps(increase, target, tol, settings["eps_max"], settings["max_iter"])
        out[kind] = {
            "eps_star": eps,
            "ppl": ppl_clean * (1 + inc),
            "ppl_increase": inc,
            "reached": abs(inc - target) <= tol,
            "evaluations": trace,
        }
        stage.update(len(out), detail=f"{kind} eps* {eps:.4g}")
    stage.close()
    return {"ppl_clean": ppl_clean, "target_ppl_increase": target, "types": out}
