"""Criticality signatures S1-S3 and the gain-effect check for one (spike definition, rate) (§6, §9)."""

from __future__ import annotations

import numpy as np
import pandas as pd

G_DIFF_MAX = 0.2


def gain_effect_resolved(curve: pd.DataFrame) -> bool:
    """True when b_tot's range over gains exceeds its mean CI width: the gain moved it measurably."""
    spread = float(curve["b_tot"].max() - curve["b_tot"].min())
    width = float((curve["b_tot_hi"] - curve["b_tot_lo"]).mean())
    return bool(np.isfinite(width) and spread > width)


def signatures(
    curve: pd.DataFrame,
    gstar: float,
    status: str,
    crackling_pass: bool,
    *,
    null: str = "perm",
    g_diff_max: float = G_DIFF_MAX,
) -> dict[str, object]:
    """S1 crossing with delta_b_tot CI excluding 0, S2 interior chi peak near g*, S3 crackling pass."""
    curve = curve.sort_values("g").reset_index(drop=True)
    at = curve.loc[np.isclose(curve["g"], gstar)]
    lo, hi = (at[f"delta_b_tot_{null}_{e}"].iloc[0] for e in ("lo", "hi")) if len(at) else (0, 0)
    s1 = status == "crossing" and bool(lo > 0 or hi < 0)
    peak = int(curve["chi"].to_numpy().argmax())
    g_chi = float(curve["g"].iloc[peak])
    s2 = 0 < peak < len(curve) - 1 and abs(g_chi - gstar) <= g_diff_max
    return {
        "S1_BRANCHING_CROSSING": s1,
        "S2_SUSCEPTIBILITY_PEAK": bool(s2),
        "S3_CRACKLING_RELATION": bool(crackling_pass),
        "quasi_critical": bool(s1 and s2),
        "g_chi_peak": g_chi,
        "gain_effect_resolved": gain_effect_resolved(curve),
    }
