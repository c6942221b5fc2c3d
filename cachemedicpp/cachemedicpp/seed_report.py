"""`python -m cachemedicpp.seed_report --out_root O --sweep_name S --out_dir D`: a seed sweep's tables and figure.

Reads only what `cachemedicpp.sweep` wrote (`<O>/<S>_summary.json` and `<O>/<S>/ablation_summary.json`)
and writes `D/<S>_report.md` (per task: the paired contr − no_contr AUC gains per seed, their BCa CI,
the paired t-test and whether an effect is claimed; per seed: each run's AUCs, clean regression and
Sens; the runs' wall time) and `D/<S>_paired.png` (per task and for Sens, each seed's no_contr →
contr pair). Nothing is recomputed, so the README's numbers are the sweep's own.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from labkit.atomic import atomic_write_text, atomic_write_with
from labkit.cli import run_cli
from labkit.errors import MissingInputError
from labkit.sweep import summary_path

CONTR, NO_CONTR = "cachemedic", "cachemedic_no_contr"


def load_sweep(out_root: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(sweep summary, ablation summary) of a finished sweep (exit 3 when either is missing)."""
    paths = (summary_path(out_root, name), out_root / name / "ablation_summary.json")
    for path in paths:
        if not path.is_file():
            raise MissingInputError(f"{path} is missing; run cachemedicpp.sweep first")
    summary, ablation = (json.loads(p.read_text(encoding="utf-8")) for p in paths)
    return summary, ablation


def paired_runs(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Complete runs that scored their seed's no_contr R_phi, ordered by seed."""
    runs = [r["result"] for r in summary["runs"] if r["status"] == "complete" and r["result"]]
    paired = [r for r in runs if all(NO_CONTR in v for v in r["task_auc"].values())]
    return sorted(paired, key=lambda r: r["seed"])


def _num(x: float | None, fmt: str = "+.4f") -> str:
    return "–" if x is None else format(x, fmt)


def _claim_row(label: str, claim: Mapping[str, Any], fmt: str) -> str:
    ci, p = claim["ci"], claim["p_value"]
    values = " / ".join(_num(v, fmt) for v in claim["values"])
    p_text = "–" if p is None else f"{p:.3g}"
    verdict = "yes" if claim["effect_claimed"] else "no"
    return (
        f"| {label} | {values} | {_num(ci['value'], fmt)} [{_num(ci['low'], fmt)}, "
        f"{_num(ci['high'], fmt)}] | {p_text} | {claim['n_seeds']} | {verdict} |"
    )


def report_markdown(summary: Mapping[str, Any], ablation: Mapping[str, Any], name: str) -> str:
    """The README tables: paired gains with CIs and tests, then the per-seed values."""
    runs = paired_runs(summary)
    seeds = " / ".join(str(s) for s in ablation["seeds"])
    ci_level = next(iter(ablation["auc_gain"].values()), ablation["sens_ratio"])["ci"]
    lines = [
        f"Paired contr − no_contr over seeds {seeds} (BCa CI over seeds at "
        f"{ci_level['confidence']:.0%}, paired t-test; an effect is claimed only with "
        f">= {ablation['sens_ratio']['min_seeds']} seeds, p < 1 − confidence and a CI that "
        "excludes the null):",
        "",
        "| quantity | per seed | mean [CI] | p | seeds | effect claimed |",
        "|---|---|---|---|---|---|",
    ]
    for task, claim in ablation["auc_gain"].items():
        lines.append(_claim_row(f"AUC gain, {task}", claim, "+.4f"))
    lines.append(_claim_row("Sens ratio at the largest δn (null 1)", ablation["sens_ratio"], ".3f"))
    tasks = list(ablation["auc_gain"])
    head = " | ".join(f"{t} AUC contr / no_contr / none" for t in tasks)
    lines += [
        "",
        f"| seed | {head} | clean regression contr / no_contr | Sens contr / no_contr / none |",
        "|---" * (len(tasks) + 3) + "|",
    ]
    for r in runs:
        aucs = " | ".join(
            " / ".join(
                _num(r["task_auc"][t].get(d), ".4f") for d in (CONTR, NO_CONTR, "no_defense")
            )
            for t in tasks
        )
        reg = r["clean_regression"].get(tasks[0], {}) if tasks else {}
        sens = r["sensitivity_at_max_delta"]
        lines.append(
            f"| {r['seed']} | {aucs} | {_num(reg.get(CONTR), '.2f')} % / "
            f"{_num(reg.get(NO_CONTR), '.2f')} % | {_num(sens.get(CONTR), '.2f')} / "
            f"{_num(sens.get(NO_CONTR), '.2f')} / {_num(sens.get('baseline'), '.2f')} |"
        )
    walls = [r["wall_s"] for r in summary["runs"] if r["wall_s"] is not None]
    starts = [r["started_utc"] for r in summary["runs"] if r["started_utc"]]
    ends = [r["finished_utc"] for r in summary["runs"] if r["finished_utc"]]
    lines += [
        "",
        f"{name}: {summary['counts']['complete']} of {summary['n_runs']} runs complete; runs' "
        f"summed wall time {sum(walls) / 60:.1f} min, first start {min(starts, default='–')}, "
        f"last finish {max(ends, default='–')}.",
    ]
    return "\n".join(lines) + "\n"


def fig_paired(summary: Mapping[str, Any], ablation: Mapping[str, Any], path: Path) -> Path:
    """Per task AUC and the Sens at the largest δn: one line per seed from no_contr to contr."""
    runs = paired_runs(summary)
    panels = [(t, f"AUC, {t}", ablation["auc_gain"][t]) for t in ablation["auc_gain"]]
    panels.append((None, "Sens at the largest δn", ablation["sens_ratio"]))
    fig = Figure(figsize=(4.2 * len(panels), 3.6))
    for k, (task, title, claim) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        for r in runs:
            src = r["task_auc"][task] if task else r["sensitivity_at_max_delta"]
            if src[NO_CONTR] is None or src[CONTR] is None:
                continue  # no curve (no PPL damage above 1 %): no pair to draw, as in the sweep
            ax.plot(
                [0, 1], [src[NO_CONTR], src[CONTR]], marker="o", alpha=0.8, label=str(r["seed"])
            )
        ci = claim["ci"]
        what = "gain" if task else "ratio"
        ax.set_title(
            f"{title}\nmean {what} {ci['value']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}], "
            f"p={claim['p_value']:.2g}"
            if claim["p_value"] is not None
            else title,
            fontsize=8,
        )
        ax.set_xticks([0, 1], ["no_contr (λ 0)", "contr (λ 0.5)"])
        ax.set_xlim(-0.3, 1.3)
        if ax.lines:
            ax.legend(title="seed", fontsize=7, title_fontsize=7)
    fig.tight_layout()
    atomic_write_with(
        path, lambda f: fig.savefig(f, format="png", dpi=120, metadata={"Software": None})
    )
    return path


def write_report(out_root: Path, name: str, out_dir: Path) -> list[Path]:
    """Write the report's markdown and figure; return their paths."""
    summary, ablation = load_sweep(out_root, name)
    if not paired_runs(summary):
        raise MissingInputError(f"sweep {name!r} under {out_root} has no complete paired run")
    md = atomic_write_text(out_dir / f"{name}_report.md", report_markdown(summary, ablation, name))
    return [Path(md), fig_paired(summary, ablation, out_dir / f"{name}_paired.png")]


def main(args: argparse.Namespace) -> int:
    """Write the report and print where it went."""
    for path in write_report(Path(args.out_root), args.sweep_name, Path(args.out_dir)):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m cachemedicpp.seed_report`."""
    p = argparse.ArgumentParser(
        prog="cachemedicpp.seed_report",
        description="Tables and a figure of a seed sweep, from its summaries only.",
    )
    p.add_argument("--out_root", required=True, help="the sweep's --out_root")
    p.add_argument("--sweep_name", default="seedrep_local", help="the sweep's name")
    p.add_argument("--out_dir", required=True, help="folder for <name>_report.md and _paired.png")
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
