"""`python -m cachemedicpp.plots --run_dir D`: the four locked figures and two tables (§9).

Everything is drawn from the run's saved `metrics/*.json`; nothing is recomputed.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from labkit.atomic import atomic_write_text
from labkit.cli import run_cli
from labkit.errors import MissingInputError
from labkit.rundir import RunDir
from labkit.stamp import rehearsed, save_figure, stamp_table

FIGURES = (
    "figA_score_vs_eps.png",
    "figB_clean_vs_overhead_pareto.png",
    "figC_logit_sensitivity.png",
    "figD_amplification_map.png",
)
TABLES = ("table_main_results.tex", "table_ablation_summary.tex")
PPL = "wikitext2_ppl"
CURVES = ("baseline", "heuristics", "cachemedic", "cachemedic_no_contr")


def read_metrics(run_dir: Path, name: str) -> dict[str, Any]:
    """One saved metrics record (exit 3 when the phase that writes it has not run)."""
    path = run_dir / "metrics" / name
    if not path.is_file():
        raise MissingInputError(f"{path} is missing; run the phase that writes it first")
    return json.loads(path.read_text(encoding="utf-8"))


def missed(calibration: Mapping[str, Any] | None, kind: str) -> bool:
    """True when `kind`'s calibration missed its target: its reference eps is a fallback."""
    return calibration is not None and kind in calibration and not calibration[kind]["reached"]


def fig_score_vs_eps(
    cells: Sequence[Mapping[str, Any]],
    path: Path,
    calibration: Mapping[str, Any] | None = None,
    *,
    rehearsal: bool,
) -> Path:
    """Value vs eps per defense with CI bands: one panel per (task, corruption type).

    A type whose calibration missed its target says so in its panel titles.
    """
    tasks = list(dict.fromkeys(c["task"] for c in cells))
    types = sorted({c["type"] for c in cells} - {"clean"})
    defenses = list(dict.fromkeys(c["defense"] for c in cells))
    fig = Figure(figsize=(3.2 * len(types), 2.6 * len(tasks)))
    axes = fig.subplots(len(tasks), len(types), squeeze=False)
    for i, task in enumerate(tasks):
        for j, kind in enumerate(types):
            ax = axes[i][j]
            for d in defenses:
                pts = sorted(
                    (c["eps"], c["value"], c["ci"]["low"], c["ci"]["high"])
                    for c in cells
                    if c["task"] == task and c["defense"] == d and c["type"] in (kind, "clean")
                )
                eps, val, lo, hi = (np.asarray(x, dtype=float) for x in zip(*pts, strict=True))
                ax.plot(eps, val, marker="o", ms=3, label=d)
                ax.fill_between(eps, lo, hi, alpha=0.15)
            note = "\n(eps* calibration missed: fallback eps)" if missed(calibration, kind) else ""
            ax.set_title(f"{task} / {kind}{note}", fontsize=8)
            ax.set_xlabel("eps", fontsize=7)
            ax.set_ylabel("PPL (log)" if task == PPL else "accuracy", fontsize=7)
            if task == PPL:
                ax.set_yscale("log")  # reset_clear's PPL would flatten every other curve
            ax.tick_params(labelsize=6, which="both")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path, rehearsal=rehearsal)


def fig_pareto(
    cells: Sequence[Mapping[str, Any]],
    regression: Mapping[str, float],
    task: str,
    path: Path,
    *,
    rehearsal: bool,
) -> Path:
    """Mean throughput ratio (x) vs clean regression of `task` (y), one point per defense."""
    fig = Figure(figsize=(4.5, 3.5))
    ax = fig.subplots()
    for d, reg in regression.items():
        ratio = np.mean([c["throughput_ratio"] for c in cells if c["defense"] == d])
        ax.scatter(ratio, reg, label=d)
    # Heuristics can cost hundreds of percent and R_phi well under one: linear within ±1 %.
    ax.set_yscale("symlog", linthresh=1.0)
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel("throughput ratio to no_defense")
    unit = "% PPL" if task == PPL else "accuracy points"
    ax.set_ylabel(f"clean regression of {task} ({unit}, symlog)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, rehearsal=rehearsal)


def fig_sensitivity(curves: Sequence[Mapping[str, Any]], path: Path, *, rehearsal: bool) -> Path:
    """Sens vs δn for up to four defenses (solid) and their Drift (dashed)."""
    fig = Figure(figsize=(4.5, 3.5))
    ax = fig.subplots()
    dn = [c["delta_norm"] for c in curves]
    for i, name in enumerate(n for n in CURVES if n in curves[0]):
        color = f"C{i}"
        ax.plot(dn, [c[name] for c in curves], color=color, marker="o", label=name)
        ax.plot(dn, [c[f"{name}_drift"] for c in curves], color=color, ls="--")
    ax.set_xlabel("δn (relative perturbation norm)")
    ax.set_ylabel("‖Δ top-k logits‖₂ (dashed: drift)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, rehearsal=rehearsal)


def fig_amplification(amp: Mapping[str, Any], path: Path, *, rehearsal: bool) -> Path:
    """γ(l,h) heatmaps before (baseline) and after repair, and log10 of their ratio."""
    base, rep = np.asarray(amp["baseline"]), np.asarray(amp["cachemedic"])
    panels = (("baseline γ", base), ("cachemedic γ", rep), ("log10 ratio", np.log10(rep / base)))
    fig = Figure(figsize=(10, 3))
    axes = fig.subplots(1, 3)
    for ax, (title, data) in zip(axes, panels, strict=True):
        if "ratio" in title:  # centred on 0: blue where repair damps, red where it amplifies
            bound = float(np.nanmax(np.abs(data))) or 1.0
            im = ax.imshow(data, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound)
        else:
            im = ax.imshow(data, aspect="auto", cmap="viridis")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(len(amp["heads"])), amp["heads"])
        ax.set_yticks(range(len(amp["layers"])), amp["layers"])
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return save_figure(fig, path, rehearsal=rehearsal)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "--" if x is None else f"{x:.{digits}f}"


def _ci(ci: Mapping[str, Any] | None) -> str:
    if ci is None or ci.get("low") is None:
        return "--"
    return f"[{ci['low']:.3f}, {ci['high']:.3f}]"


def main_table(task: Mapping[str, Any], eps_star: float, kind: str) -> str:
    """Per defense: clean PPL, PPL at eps* with CI, recovery with CI, KL, top-1, AUC, throughput.

    When `kind`'s calibration missed its target, the eps column says fallback, not eps*.
    """
    m = task["metrics"]
    calibration = task["settings"].get("calibration")
    fallback = missed(calibration, kind)
    eps_label = r"$\epsilon_{\mathrm{fallback}}$" if fallback else r"$\epsilon^*$"
    cells = [c for c in m["cells"] if c["task"] == PPL]
    at = {c["defense"]: c for c in cells if c["type"] == kind and c["eps"] == eps_star}
    clean = {c["defense"]: c for c in cells if c["type"] == "clean"}
    lines = [
        r"\begin{tabular}{lrrlrlrrrr}",
        r"\toprule",
        rf"defense & clean PPL & PPL@{eps_label} & CI & $R$ & $R$ CI & KL & top-1 & AUC$_R$ & tput \\",
        r"\midrule",
    ]
    for d, c in at.items():
        row = [
            d.replace("_", r"\_"),
            _fmt(clean[d]["value"]),
            _fmt(c["value"]),
            _ci(c["ci"]),
            _fmt(c["recovery"]),
            _ci(c.get("recovery_ci")),
            _fmt(c.get("kl_to_clean"), 4),
            _fmt(c.get("top1_agreement")),
            _fmt(m["task_auc"][PPL][d], 4),
            _fmt(c["throughput_ratio"]),
        ]
        lines.append(" & ".join(row) + r" \\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        f"% {kind} at eps*={eps_star:.4g}; CIs: BCa over examples; AUC_R: PPL recovery over "
        "eps/eps*, mean over types",
    ]
    if fallback:
        rise = 100 * calibration[kind]["ppl_increase"]
        lines[-1] = (
            f"% {kind} at a FALLBACK eps={eps_star:.4g}: calibration missed its target "
            f"(+{rise:.1f} % PPL there); CIs: BCa over examples"
        )
    return "\n".join(lines) + "\n"


def _gain(gain: Mapping[str, Any] | None) -> str:
    if gain is None or gain["value"] is None:
        return "--"
    return f"{gain['value']:+.3f} {_ci(gain)}"


def ablation_table(task: Mapping[str, Any], stab: Mapping[str, Any]) -> str:
    """contr vs no_contr per task: AUC, gain over none with CI, and the contr - no_contr gain;
    Sens at the largest δn, its ratio to none, clean regression."""
    m = task["metrics"]
    top = stab["metrics"]["stability"]["logit_sensitivity"][-1]
    lines = [
        r"\begin{tabular}{llrlrrr}",
        r"\toprule",
        rf"variant & task & AUC & gain vs none [CI] & Sens@$\delta_n$={top['delta_norm']:g} "
        r"& Sens ratio & clean reg. \\",
        r"\midrule",
    ]
    for d in ("cachemedic", "cachemedic_no_contr"):
        if d not in m["task_auc"][next(iter(m["task_auc"]))]:
            lines.append(d.replace("_", r"\_") + r" & \multicolumn{6}{l}{no paired run} \\")
            continue
        sens = top.get(d)
        ratio = None if sens is None or top["baseline"] == 0 else sens / top["baseline"]
        for t, per in m["task_auc"].items():
            row = [
                d.replace("_", r"\_"),
                t.replace("_", r"\_"),
                _fmt(per[d], 4),
                _gain(m["auc_gain"][t].get(f"{d}_vs_no_defense")),
                _fmt(sens),
                _fmt(ratio),
                _fmt(m["clean_regression"][t][d], 2),
            ]
            lines.append(" & ".join(row) + r" \\")
    for t, gains in m["auc_gain"].items():
        pair = gains.get("cachemedic_vs_cachemedic_no_contr")
        if pair is not None:
            name = t.replace("_", r"\_")
            lines.append(rf"contr $-$ no\_contr & {name} & & {_gain(pair)} & & & \\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        "% AUC per task over eps/eps* (PPL: recovery; others: accuracy); CIs: BCa over examples "
        "of this run; seed CIs and paired tests come from the sweep's ablation_summary.json",
    ]
    return "\n".join(lines) + "\n"


def headline_eps(run_dir: Path, task: Mapping[str, Any]) -> tuple[str, float]:
    """(type, eps) of the main table: gaussian at eps* when calibrated, else its largest eps."""
    cells = [c for c in task["metrics"]["cells"] if c["task"] == PPL and c["type"] != "clean"]
    if not cells:
        raise MissingInputError(
            "task_metrics.json has no corrupted wikitext2_ppl cells to tabulate"
        )
    types = {c["type"] for c in cells}
    kind = "gaussian" if "gaussian" in types else sorted(types)[0]
    grid = sorted({c["eps"] for c in cells if c["type"] == kind})
    cal = run_dir / "metrics" / "calibration.json"
    if cal.is_file():
        star = json.loads(cal.read_text(encoding="utf-8"))["metrics"].get("eps_star")
        if star and star.get(kind) in grid:
            return kind, star[kind]
    return kind, grid[-1]


def make_plots(run_dir: str | os.PathLike) -> list[Path]:
    """Write the locked figures and tables of a run and index them; return their paths."""
    run = RunDir.open(run_dir, phase="plots")
    task = read_metrics(run.path, "task_metrics.json")
    stab = read_metrics(run.path, "stability_metrics.json")
    figs, tabs = run.path / "paper" / "figures", run.path / "paper" / "tables"
    m, st = task["metrics"], stab["metrics"]["stability"]
    reg_task = PPL if PPL in m["clean_regression"] else next(iter(m["clean_regression"]))
    kind, eps = headline_eps(run.path, task)
    stamp = rehearsed(run.path)  # made on replicas: every figure and table says REHEARSAL
    calibration = task["settings"].get("calibration")
    regression = m["clean_regression"][reg_task]
    out = [
        fig_score_vs_eps(m["cells"], figs / FIGURES[0], calibration, rehearsal=stamp),
        fig_pareto(m["cells"], regression, reg_task, figs / FIGURES[1], rehearsal=stamp),
        fig_sensitivity(st["logit_sensitivity"], figs / FIGURES[2], rehearsal=stamp),
        fig_amplification(st["amplification_map"], figs / FIGURES[3], rehearsal=stamp),
        atomic_write_text(
            tabs / TABLES[0], stamp_table(main_table(task, eps, kind), "tex", rehearsal=stamp)
        ),
        atomic_write_text(
            tabs / TABLES[1], stamp_table(ablation_table(task, stab), "tex", rehearsal=stamp)
        ),
    ]
    for path in out:
        run.register_artifact(path)
    return [Path(p) for p in out]


def main(args: argparse.Namespace) -> int:
    """Draw everything and print where it went."""
    for path in make_plots(args.run_dir):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m cachemedicpp.plots`."""
    p = argparse.ArgumentParser(
        prog="cachemedicpp.plots",
        description="Locked figures and LaTeX tables of a run, from its saved metrics only.",
    )
    p.add_argument("--run_dir", required=True, help="a run with task and stability metrics")
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
