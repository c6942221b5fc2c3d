"""g* selection with an honest crossing / no_crossing status (design §6).

Methods (CANON.ENUM.GSTAR_METHOD):
- `btot_near_one` (the seed's default): argmin |b_tot - 1|;
- `mr_near_one`: argmin |m_MR - 1| (subsampling-robust branching ratio);
- `excess_btot`: argmax b_tot - b_tot_iid, the branching the rate-matched iid control does not
  have (b_tot alone is set mostly by the spike rate).
Ties go to the gain nearest the baseline. `crossing` needs the curve the method reads (b_tot, or
m_MR for mr_near_one) to straddle 1 across g*'s two grid neighbours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from labkit.errors import ConfigError

GSTAR_METHODS = ("btot_near_one", "mr_near_one", "excess_btot")
GAIN_BASELINE = 1.0
# Scores this close are ties: float noise must not decide between gains.
TIE_ATOL = 1e-9


def _checked(name: str, g: np.ndarray, values: Sequence[float] | None) -> np.ndarray:
    if values is None:
        raise ConfigError(f"g* selection needs {name} on the gain grid")
    v = np.asarray(values, dtype=float)
    if v.shape != g.shape:
        raise ConfigError(f"need >= 2 gains with one {name} each, got {g.shape} and {v.shape}")
    if not np.isfinite(v).all():
        raise ConfigError(f"gains and {name} must be finite to select g*")
    return v


def _crossing(g: np.ndarray, d: np.ndarray, best: int) -> float | None:
    """The zero of d nearest g[best], if g*'s two neighbours straddle it (else None)."""
    if not 0 < best < g.size - 1 or d[best - 1] * d[best + 1] >= 0:
        return None
    if d[best] == 0:
        return float(g[best])
    i = best - 1 if d[best - 1] * d[best] < 0 else best
    return float(g[i] + (g[i + 1] - g[i]) * (-d[i]) / (d[i + 1] - d[i]))


def select_gstar(
    gains: Sequence[float],
    b_tot: Sequence[float],
    *,
    baseline: float = GAIN_BASELINE,
    method: str = "btot_near_one",
    m_mr: Sequence[float] | None = None,
    b_tot_iid: Sequence[float] | None = None,
) -> dict[str, object]:
    """g* of one condition's gain curve by `method`, its crossing status and interpolated g_cross."""
    g = np.asarray(gains, dtype=float)
    if g.ndim != 1 or g.size < 2:
        raise ConfigError(f"need >= 2 gains with one b_tot each, got {g.shape}")
    b = _checked("b_tot", g, b_tot)
    if not (np.isfinite(g).all() and (np.diff(g) > 0).all()):
        raise ConfigError(f"gains must be finite and strictly increasing, got {g.tolist()}")
    if method == "btot_near_one":
        curve = b
        score = np.abs(b - 1.0)
    elif method == "mr_near_one":
        curve = _checked("m_mr", g, m_mr)
        score = np.abs(curve - 1.0)
    elif method == "excess_btot":
        curve = b
        score = -(b - _checked("b_tot_iid", g, b_tot_iid))
    else:
        raise ConfigError(f"unknown gstar method {method!r}; expected one of {GSTAR_METHODS}")
    tied = np.flatnonzero(score <= score.min() + TIE_ATOL)
    best = int(tied[np.argmin(np.abs(g[tied] - baseline))])
    g_cross = _crossing(g, curve - 1.0, best)
    out: dict[str, object] = {
        "method": method,
        "gstar": float(g[best]),
        "status": "crossing" if g_cross is not None else "no_crossing",
        "g_cross": g_cross,
        "btot_at_gstar": float(b[best]),
        "abs_btot_minus_one": float(abs(b[best] - 1.0)),
        "on_edge": not 0 < best < g.size - 1,
    }
    if m_mr is not None:
        out["m_mr_at_gstar"] = float(_checked("m_mr", g, m_mr)[best])
    if b_tot_iid is not None:
        out["excess_btot_at_gstar"] = float(b[best] - _checked("b_tot_iid", g, b_tot_iid)[best])
    return out


def select_all(
    gains: Sequence[float], curves: Mapping[str, Sequence[float]], baseline: float
) -> dict[str, dict[str, object]]:
    """g* of every method from one condition's curves (b_tot, m_mr, b_tot_iid)."""
    return {
        method: select_gstar(
            gains,
            curves["b_tot"],
            baseline=baseline,
            method=method,
            m_mr=curves["m_mr"],
            b_tot_iid=curves["b_tot_iid"],
        )
        for method in GSTAR_METHODS
    }
