"""Criticality signatures S1-S3 and the gain-effect check for one (spike definition, rate) (§6, §9).

Whether a signature counts as evidence is decided against the controls (analysis.controls); here
S2 is also evaluated on the rate-matched iid control's chi curve, which can peak near g* by chance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

G_DIFF_MAX = 0.2


def gain_effect_resolved(curve: pd.DataFrame) -> bool:
    """True when b_tot's range over gains exceeds its mean CI width: the gain moved it measurably."""
    spread = float(curve["b_tot"].max() - curve["b_tot"].min())
    width = float((curve["b_tot_hi"] - curve["b_tot_lo"]).mean())
    return bool(np.isfinite(width) and spread > width)


def _chi_peak(curve: pd.DataFrame, col: str, gstar: float, g_diff_max: float) -> tuple[bool, float]:
    peak = int(curve[col].to_numpy().argmax())
    g_chi = float(curve["g"].iloc[peak])
    return bool(0 < peak < len(curve) - 1 and abs(g_chi - gstar) <= g_diff_max), g_chi


def signatures(
    curve: pd.DataFrame,
    gstar: float,
    status: str,
    crackling_pass: bool,
    *,
    null: str = "perm",
    g_diff_max: float = G_DIFF_MAX,
) -> dict[str, object]:
    """S1 crossing with delta_b_tot CI excluding 0, S2 interior chi peak near g* (on the real and
    on the iid control's chi curve), S3 crackling pass."""
    curve = curve.sort_values("g").reset_index(drop=True)
    at = curve.loc[np.isclose(curve["g"], gstar)]
    lo, hi = (at[f"delta_b_tot_{null}_{e}"].iloc[0] for e in ("lo", "hi")) if len(at) else (0, 0)
    s1 = status == "crossing" and bool(lo > 0 or hi < 0)
    s2, g_chi = _chi_peak(curve, "chi", gstar, g_diff_max)
    s2_iid = _chi_peak(curve, "chi_iid", gstar, g_diff_max)[0] if "chi_iid" in curve else False
    return {
        "S1_BRANCHING_CROSSING": s1,
        "S2_SUSCEPTIBILITY_PEAK": s2,
        "S2_met_by_iid": s2_iid,
        "S3_CRACKLING_RELATION": bool(crackling_pass),
        "g_chi_peak": g_chi,
        "gain_effect_resolved": gain_effect_resolved(curve),
    }
