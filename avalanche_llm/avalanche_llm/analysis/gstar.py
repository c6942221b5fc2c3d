"""g* selection `btot_near_one` with an honest crossing / no_crossing status (design §6)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labkit.errors import ConfigError

GSTAR_METHODS = ("btot_near_one",)
GAIN_BASELINE = 1.0
# |b_tot - 1| values this close are ties: float noise must not decide between gains.
TIE_ATOL = 1e-9


def _crossings(g: np.ndarray, d: np.ndarray) -> list[float]:
    """Gains where b_tot - 1 = d meets zero, linearly interpolated between neighbours."""
    out: list[float] = [float(g[i]) for i in np.flatnonzero(d == 0)]
    for i in np.flatnonzero(d[:-1] * d[1:] < 0):
        out.append(float(g[i] + (g[i + 1] - g[i]) * (-d[i]) / (d[i + 1] - d[i])))
    return sorted(out)


def select_gstar(
    gains: Sequence[float], b_tot: Sequence[float], *, baseline: float = GAIN_BASELINE
) -> dict[str, object]:
    """argmin_g |b_tot - 1| (ties -> closest to `baseline`); `crossing` only for an interior
    argmin with a sign change of b_tot - 1, g_cross the interpolated crossing nearest g*."""
    g = np.asarray(gains, dtype=float)
    b = np.asarray(b_tot, dtype=float)
    if g.ndim != 1 or g.shape != b.shape or g.size < 2:
        raise ConfigError(f"need >= 2 gains with one b_tot each, got {g.shape} and {b.shape}")
    if not (np.isfinite(g).all() and np.isfinite(b).all()):
        raise ConfigError("gains and b_tot must be finite to select g*")
    if not (np.diff(g) > 0).all():
        raise ConfigError(f"gains must be strictly increasing, got {g.tolist()}")
    d = b - 1.0
    dist = np.abs(d)
    tied = np.flatnonzero(dist <= dist.min() + TIE_ATOL)
    best = int(tied[np.argmin(np.abs(g[tied] - baseline))])
    crossings = _crossings(g, d)
    interior = 0 < best < g.size - 1
    g_cross = min(crossings, key=lambda c: abs(c - g[best])) if crossings and interior else None
    return {
        "gstar": float(g[best]),
        "status": "crossing" if g_cross is not None else "no_crossing",
        "g_cross": g_cross,
        "btot_at_gstar": float(b[best]),
        "abs_btot_minus_one": float(dist[best]),
        "on_edge": not interior,
    }
