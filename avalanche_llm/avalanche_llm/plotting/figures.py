"""Figures F01-F11 (design §7), drawn only from saved artifacts, written as PDF + PNG with provenance."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from labkit.stamp import NOTE, stamp_figure

SD_SHORT = {"SPIKE_ONE_SIDED_POS": "one-sided z", "SPIKE_TWO_SIDED_ABS": "two-sided |z|"}
NULLS = ("perm", "shift", "shuffle")


def figure_bytes(
    fig: Figure, name: str, provenance: Mapping[str, Any], *, rehearsal: bool = False
) -> dict[str, bytes]:
    """PDF and PNG bytes of `fig`, the provenance JSON embedded in both (no dates: same input, same
    bytes); a rehearsal's figure carries the REHEARSAL watermark, and its note in both files."""
    text = json.dumps(provenance, sort_keys=True)
    pdf_meta = {"Title": name, "Subject": text, "CreationDate": None}
    png_meta = {"Title": name, "Provenance": text}
    if rehearsal:
        stamp_figure(fig)
        pdf_meta["Keywords"] = png_meta["Comment"] = NOTE
    pdf, png = io.BytesIO(), io.BytesIO()
    fig.savefig(pdf, format="pdf", metadata=pdf_meta)
    fig.savefig(png, format="png", dpi=120, metadata=png_meta)
    return {"pdf": pdf.getvalue(), "png": png.getvalue()}


def _panels(n: int, height: float = 3.2) -> tuple[Figure, np.ndarray]:
    fig, axes = _grid(1, n, height)
    return fig, axes[0]


def _grid(rows: int, cols: int, row_height: float = 3.2) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(4.6 * cols, row_height * rows), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _rate_label(rate: float) -> str:
    return f"rate {rate:.3g}"


def _curves(ax: Axes, df: pd.DataFrame, col: str, band: bool = True) -> None:
    """One line per target rate of `col` vs gain, with its CI band when the columns exist."""
    for rate, sub in df.groupby("target_rate", sort=True):
        sub = sub.sort_values("gain")
        (line,) = ax.plot(sub["gain"], sub[col], marker="o", ms=3, label=_rate_label(rate))
        if band and f"{col}_lo" in sub:
            ax.fill_between(
                sub["gain"], sub[f"{col}_lo"], sub[f"{col}_hi"], color=line.get_color(), alpha=0.2
            )


def _by_sd(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(str(sd), sub) for sd, sub in df.groupby("spike_def_id", sort=True)]


def f01_raster_example(A: np.ndarray, labels: np.ndarray, title: str) -> Figure:
    """Spike counts A[l, t] of one sequence and its connected components (ADJ_4N)."""
    fig, (ax0, ax1) = _panels(2)
    im = ax0.imshow(A, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax0, label="spikes per site")
    shown = np.ma.masked_equal(labels, 0)
    ax1.imshow(shown, aspect="auto", origin="lower", cmap="tab20", interpolation="nearest")
    ax0.set_title(f"A (counts) - {title}")
    ax1.set_title(f"components: {int(labels.max())}")
    for ax in (ax0, ax1):
        ax.set_xlabel("token t")
        ax.set_ylabel("layer l")
    return fig


def f02_rate_match_check(tau: pd.DataFrame) -> Figure:
    """Achieved vs target per-layer spike rate for every threshold, with the identity line."""
    fig, axes = _panels(max(1, tau["spike_def_id"].nunique()))
    for ax, (sd, sub) in zip(axes, _by_sd(tau), strict=True):
        ax.scatter(sub["rate_target"], sub["rate_achieved"], s=8, c=sub["gain"], cmap="coolwarm")
        both = sub[["rate_target", "rate_achieved"]].to_numpy()
        lim = [float(both[both > 0].min()) * 0.8, float(both.max()) * 1.25]
        ax.plot(lim, lim, color="k", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="target rate r*_l", ylabel="achieved rate")
        ax.minorticks_off()
        ax.set_title(f"{SD_SHORT.get(sd, sd)}: max |err| {sub['abs_err'].max():.2g}")
    return fig


def f03_branching_curves(m: pd.DataFrame) -> Figure:
    """b_time, b_depth, b_tot vs gain with 95% CI bands, one panel per spike definition and kind."""
    sds = _by_sd(m)
    fig, axes = _grid(3, len(sds), 2.8)
    for j, (sd, sub) in enumerate(sds):
        for i, kind in enumerate(("b_time", "b_depth", "b_tot")):
            ax = axes[i, j]
            _curves(ax, sub, kind)
            if kind == "b_tot":
                ax.axhline(1.0, color="k", lw=0.8, ls="--")
            ax.set(xlabel="gain g", ylabel=kind, title=f"{SD_SHORT.get(sd, sd)}")
    axes[0, 0].legend(fontsize=7)
    return fig


def f04_null_deltab(m: pd.DataFrame) -> Figure:
    """delta_b_tot against the within-layer permutation and circular-shift nulls, with CIs."""
    sds = _by_sd(m)
    fig, axes = _grid(2, len(sds), 2.9)
    for j, (sd, sub) in enumerate(sds):
        for i, null in enumerate(("perm", "shift")):
            ax = axes[i, j]
            _curves(ax, sub, f"delta_b_tot_{null}")
            ax.axhline(0.0, color="k", lw=0.8)
            ax.set(xlabel="gain g", ylabel=f"delta b_tot vs {null}", title=SD_SHORT.get(sd, sd))
    axes[0, 0].legend(fontsize=7)
    return fig


def f05_gstar_selection(grid: pd.DataFrame, gstar: pd.DataFrame) -> Figure:
    """|b_tot - 1| vs gain on the calibration slice, g* marked and labelled with its status."""
    fig, axes = _panels(grid["spike_def_id"].nunique())
    for ax, (sd, sub) in zip(axes, _by_sd(grid), strict=True):
        for rate, cur in sub.groupby("target_rate", sort=True):
            cur = cur.sort_values("gain")
            (line,) = ax.plot(cur["gain"], (cur["b_tot"] - 1).abs(), marker="o", ms=3)
            sel = gstar[(gstar["spike_def_id"] == sd) & np.isclose(gstar["target_rate"], rate)]
            for row in sel.itertuples():
                ax.plot(
                    [row.gstar],
                    [row.abs_btot_minus_one],
                    marker="*",
                    ms=12,
                    color=line.get_color(),
                    label=f"{_rate_label(rate)}: g*={row.gstar:g} ({row.status})",
                )
        ax.set(xlabel="gain g", ylabel="|b_tot - 1|", title=SD_SHORT.get(sd, sd))
        ax.legend(fontsize=6, loc="best")
    return fig


def _paired_bars(ax: Axes, df: pd.DataFrame, col: str, err: bool = False) -> None:
    labels = sorted({(r.spike_def_id, r.target_rate) for r in df.itertuples()})
    x = np.arange(len(labels))
    for k, which in enumerate(("g1", "gstar")):
        sub = df[df["gain_label"] == which].set_index(["spike_def_id", "target_rate"])
        vals = np.array([sub.loc[lab, col] for lab in labels], dtype=float)
        yerr = None
        if err:
            lo = np.array([sub.loc[lab, f"{col}_lo"] for lab in labels], dtype=float)
            hi = np.array([sub.loc[lab, f"{col}_hi"] for lab in labels], dtype=float)
            yerr = np.vstack([vals - lo, hi - vals])
        ax.bar(x + (k - 0.5) * 0.4, vals, width=0.4, yerr=yerr, capsize=2, label=which)
    ax.set_xticks(x, [f"{SD_SHORT.get(s, s)[:3]}|{r:.2g}" for s, r in labels], rotation=60)
    ax.legend(fontsize=7)


def f06_generalization_b(t02: pd.DataFrame) -> Figure:
    """Dataset B at g=1 vs g*: perplexity and b_tot (A-fitted thresholds)."""
    fig, (ax0, ax1) = _panels(2, height=3.8)
    _paired_bars(ax0, t02, "ppl")
    ax0.set(ylabel="perplexity on B", title="perplexity")
    _paired_bars(ax1, t02, "b_tot")
    ax1.axhline(1.0, color="k", lw=0.8, ls="--")
    ax1.set(ylabel="b_tot on B", title="branching on B")
    return fig


def f07_arc_mcq(t03: pd.DataFrame) -> Figure:
    """ARC-style MCQ accuracy with 95% CI at g=1 and at each condition's g*."""
    fig, axes = _panels(1, height=3.8)
    _paired_bars(axes[0], t03, "accuracy", err=True)
    axes[0].set(ylabel="accuracy", title="multiple-choice accuracy")
    return fig


def f08_spikedef_robust(m: pd.DataFrame) -> Figure:
    """b_tot under the two spike definitions at matched (rate, gain): robustness to the definition."""
    wide = m.pivot_table(index=["target_rate", "gain"], columns="spike_def_id", values="b_tot")
    fig, axes = _panels(1, height=3.8)
    ax = axes[0]
    if wide.shape[1] == 2:
        a, b = wide.columns
        for rate, sub in wide.groupby(level=0):
            ax.scatter(sub[a], sub[b], s=12, label=_rate_label(rate))
        lim = [float(np.nanmin(wide.values)), float(np.nanmax(wide.values))]
        ax.plot(lim, lim, color="k", lw=0.8)
        ax.set(xlabel=f"b_tot {SD_SHORT.get(a, a)}", ylabel=f"b_tot {SD_SHORT.get(b, b)}")
        ax.legend(fontsize=7)
    ax.set_title("spike-definition robustness (each point: one gain)")
    return fig


def f09_chi_curves(m: pd.DataFrame) -> Figure:
    """Susceptibility chi vs gain, one panel per spike definition."""
    fig, axes = _panels(m["spike_def_id"].nunique())
    for ax, (sd, sub) in zip(axes, _by_sd(m), strict=True):
        _curves(ax, sub, "chi", band=False)
        ax.set(xlabel="gain g", ylabel="chi", title=SD_SHORT.get(sd, sd))
    axes[0].legend(fontsize=7)
    return fig


def f10_null_compare(nulls: pd.DataFrame) -> Figure:
    """b_tot of real rasters vs each null (perm, shift, token shuffle) at g=1 and g*."""
    fig, axes = _panels(2, height=3.8)
    for ax, which in zip(axes, ("g1", "gstar"), strict=True):
        sub = nulls[nulls["gain_label"] == which].sort_values(["spike_def_id", "target_rate"])
        x = np.arange(len(sub))
        cols = ["b_tot", *(f"b_tot_{n}" for n in NULLS if f"b_tot_{n}" in sub)]
        for k, col in enumerate(cols):
            ax.bar(x + (k - len(cols) / 2 + 0.5) * 0.2, sub[col], width=0.2, label=col)
        labels = [
            f"{SD_SHORT.get(s, s)[:3]}|{r:.2g}"
            for s, r in zip(sub["spike_def_id"], sub["target_rate"], strict=True)
        ]
        ax.set_xticks(x, labels, rotation=60)
        ax.set(ylabel="b_tot", title=f"real vs nulls at {which}")
        ax.legend(fontsize=7)
    return fig


def f11_ablations(t06: pd.DataFrame) -> Figure:
    """b_tot per intervention at g* (and MLP_GLOBAL at g=1), per spike definition and rate."""
    fig, axes = _panels(t06["spike_def_id"].nunique(), height=3.8)
    for ax, (sd, sub) in zip(axes, _by_sd(t06), strict=True):
        arms = list(dict.fromkeys(sub["arm"]))
        rates = sorted(sub["target_rate"].unique())
        x = np.arange(len(rates))
        for k, arm in enumerate(arms):
            cur = sub[sub["arm"] == arm].set_index("target_rate").reindex(rates)
            ax.bar(x + (k - len(arms) / 2 + 0.5) * 0.13, cur["b_tot"], width=0.13, label=arm)
        ax.set_xticks(x, [_rate_label(r) for r in rates])
        ax.set(ylabel="b_tot", title=f"ablations - {SD_SHORT.get(sd, sd)}")
        ax.legend(fontsize=6)
    return fig


CONTROL_STYLE = {"real": "k-", "perm": "C0--", "shift": "C1--", "iid": "C3:"}


def _column(df: pd.DataFrame, name: str) -> str:
    return name if name in df else f"opt_{name}"


def f12_controls(t01: pd.DataFrame) -> Figure:
    """b_tot, chi and m_MR vs g of the real rasters beside their perm, shift and rate-matched iid
    controls, one row per (spike definition, rate): a signature the controls reproduce is no evidence."""
    conds = t01.sort_values(["spike_def_id", "target_rate"]).groupby(
        ["spike_def_id", "target_rate"], sort=False
    )
    metrics = ("b_tot", "chi", "m_mr")
    fig, axes = _grid(len(conds), len(metrics), row_height=2.4)
    for row, ((sd, rate), sub) in zip(axes, conds, strict=True):
        sub = sub.sort_values("gain")
        for ax, metric in zip(row, metrics, strict=True):
            for src, style in CONTROL_STYLE.items():
                name = metric if src == "real" else f"{metric}_{src}"
                ax.plot(sub["gain"], sub[_column(sub, name)], style, label=src)
            ax.set(
                xlabel="gain g", ylabel=metric, title=f"{SD_SHORT.get(sd, sd)}, {_rate_label(rate)}"
            )
            ax.title.set_fontsize(8)
    axes[0, 0].legend(fontsize=7)
    return fig
