"""Render a generation's saved packs: rich tables and per-domain figures of KPI CIs vs the stock baseline."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter
from rich.console import Console
from rich.table import Table

from dream.candidate_pack import load_pack
from dream.config import REGIMES
from labkit.atomic import atomic_write_text, atomic_write_with
from labkit.errors import MissingInputError
from labkit.tables import UNBOUNDED_WIDTH

PLOTTED = ("perf", "p95_ms", "watts")
_GEN = re.compile(r"^gen(\d+)_\d+\.json$")
_FLEET = re.compile(r"^t\d+\.json$")  # a fleet worker's trial: no generation, reported as -1
FLEET = -1


def find_packs(
    artifacts: str | os.PathLike, generation: int | None, domains: Iterable[str] | None
) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    """The packs of one generation (default: the latest; -1: fleet trials) per domain, validated."""
    root = Path(artifacts) / "candidates"
    wanted = None if domains is None else set(domains)
    found: dict[int, dict[str, list[Path]]] = {}
    for path in sorted(root.glob("*/*.json")):
        m = _GEN.match(path.name)
        g = int(m.group(1)) if m else (FLEET if _FLEET.match(path.name) else None)
        domain = path.parent.name
        if g is not None and (wanted is None or domain in wanted):
            found.setdefault(g, {}).setdefault(domain, []).append(path)
    if not found:
        raise MissingInputError(f"no candidate packs under {root}")
    g = max(found) if generation is None else generation
    if g not in found:
        raise MissingInputError(f"no packs of generation {g} under {root} (have {sorted(found)})")
    return g, {d: [load_pack(p) for p in paths] for d, paths in sorted(found[g].items())}


def _num(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def _ci(ci: Sequence[float] | None) -> str:
    return "—" if ci is None else f"[{ci[0]:.3g}, {ci[1]:.3g}]"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1f}%"


def _mean(values: Sequence[float] | None) -> float | None:
    return None if not values else sum(values) / len(values)


def summary_table(domain: str, generation: int, packs: Sequence[Mapping[str, Any]]) -> Table:
    """One row per candidate: stage, safety, score and the genes the search moved."""
    t = Table(title=f"{domain} — generation {generation}: candidates", title_justify="left")
    for col in ("cand", "stage", "safe", "status", "score_v2", "improves", "genome (moved genes)"):
        t.add_column(col, overflow="fold")
    for p in sorted(packs, key=lambda p: p["cand_id"]):
        agg = p["aggregate"]
        moved = {k: v for k, v in p["genome"].items() if k not in p["frozen_genes"]}
        t.add_row(
            p["cand_id"],
            p["stage"],
            "yes" if p["safe"] else "[red]NO[/red]",
            agg["score_status"],
            _num(agg["score_v2"], 4),
            str(agg["improves_over_baseline"]).lower(),
            ", ".join(f"{k}={v:g}" for k, v in moved.items()),
        )
    return t


def regime_table(domain: str, packs: Sequence[Mapping[str, Any]]) -> Table:
    """Per full pack and regime: trials, KPI means with 95% CIs, change vs stock with its CI."""
    t = Table(title=f"{domain}: full evaluations vs stock baseline", title_justify="left")
    for col in ("cand", "regime", "ok/run", "perf", "perf 95% CI", "Δ perf", "Δ CI"):
        t.add_column(col)
    for col in ("p95 ms", "Δ p95", "watts", "passes"):
        t.add_column(col)
    for p in sorted(packs, key=lambda p: p["cand_id"]):
        if p["stage"] != "full":
            continue
        for r in p["regimes"]:
            k, ci, dp, dci = r["kpis"], r["ci95"], r["delta_pct"], r["delta_pct_ci95"]
            t.add_row(
                p["cand_id"],
                r["regime"],
                f"{r['trials_ok']}/{r['trials']}",
                _num(_mean(k["perf"]), 4),
                _ci(ci["perf"]),
                _pct(dp.get("perf")),
                _ci(dci.get("perf")),
                _num(_mean(k["p95_ms"])),
                _pct(dp.get("p95_ms")),
                _num(_mean(k["watts"])),
                str(r["improves"]).lower(),
            )
    return t


def _baseline_ci(
    baselines: Mapping[str, Any], domain: str, regime: Mapping[str, Any], kpi: str
) -> Sequence[float] | None:
    stored = baselines.get(domain, {}).get(regime["regime"])
    if stored is None or regime["baseline"] is None:
        return None
    if stored["baseline_id"] != regime["baseline"]["baseline_id"]:
        return None  # refreshed since: the interval of the baseline this pack used is gone
    return stored["ci95"].get(kpi)


def plot_domain(
    domain: str,
    generation: int,
    packs: Sequence[Mapping[str, Any]],
    baselines: Mapping[str, Any],
    path: str | os.PathLike,
) -> Path | None:
    """Per KPI and regime, each full pack's mean and 95% CI and the stock baseline's, all divided by
    the stock mean (regimes differ by orders of magnitude); None when the generation has no full pack."""
    full = sorted((p for p in packs if p["stage"] == "full"), key=lambda p: p["cand_id"])
    if not full:
        return None
    kpis = [k for k in PLOTTED if any(r["kpis"][k] for p in full for r in p["regimes"])]
    fig = Figure(figsize=(5.2 * len(kpis), 4.0))
    axes = fig.subplots(1, len(kpis), squeeze=False)
    series = [("stock", None)] + [(p["cand_id"], p) for p in full]
    width = 0.8 / len(series)
    for ax, kpi in zip(axes[0], kpis, strict=True):
        for j, (label, p) in enumerate(series):
            xs, ys, lo, hi = [], [], [], []
            regimes = {r["regime"]: r for r in (p or full[0])["regimes"]}
            for i, name in enumerate(REGIMES):
                r = regimes.get(name)
                base = None if r is None or r["baseline"] is None else r["baseline"].get(kpi)
                if not base:
                    continue
                if p is None:
                    y, ci = base, _baseline_ci(baselines, domain, r, kpi)
                else:
                    y, ci = _mean(r["kpis"][kpi]), r["ci95"][kpi]
                if y is None:
                    continue
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(y / base)
                lo.append((y - ci[0]) / base if ci else 0.0)
                hi.append((ci[1] - y) / base if ci else 0.0)
            style = {"color": "0.45", "marker": "s"} if p is None else {"marker": "o"}
            ax.errorbar(xs, ys, yerr=[lo, hi], ls="none", capsize=3, label=label, **style)
        ax.axhline(1.0, color="0.7", lw=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        low, high = ax.get_ylim()
        # Within a decade the minor ticks are the only labels; across decades they crowd.
        ax.yaxis.set_minor_formatter(
            FormatStrFormatter("%g") if high / low < 10 else NullFormatter()
        )
        ax.set_xticks(range(len(REGIMES)), REGIMES)
        ax.set_title(f"{kpi} / stock mean")
        ax.grid(axis="y", alpha=0.3, which="both")
    axes[0][0].legend(fontsize="small")
    fig.suptitle(
        f"{domain}, generation {generation}: mean and 95% CI per regime, relative to stock"
    )
    fig.tight_layout()
    return atomic_write_with(path, lambda fh: fig.savefig(fh, format="png", dpi=100))


def render_report(
    out_root: str | os.PathLike,
    *,
    generation: int | None = None,
    domains: Iterable[str] | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Print the tables, save them as text and the figures under `artifacts/reports/`; return where,
    with the tables themselves."""
    artifacts = Path(out_root) / "artifacts"
    g, by_domain = find_packs(artifacts, generation, domains)
    base_path = artifacts / "baselines.json"
    baselines = json.loads(base_path.read_text()) if base_path.exists() else {}
    # The saved text is as wide as its tables: nothing folded or cut.
    record = Console(record=True, width=UNBOUNDED_WIDTH, file=io.StringIO())
    figures = {}
    tables = []
    for domain, packs in by_domain.items():
        for table in (summary_table(domain, g, packs), regime_table(domain, packs)):
            tables.append(table)
            record.print(table)
            if console is not None:
                console.print(table)
        fig = plot_domain(
            domain, g, packs, baselines, artifacts / "reports" / f"gen{g}_{domain}.png"
        )
        if fig is not None:
            figures[domain] = str(fig.relative_to(Path(out_root)))
    text = atomic_write_text(artifacts / "reports" / f"gen{g}.txt", record.export_text())
    table = str(text.relative_to(Path(out_root)))
    return {"generation": g, "table": table, "figures": figures, "tables": tables}


def fleet_table(out_roots: Sequence[str | os.PathLike], generation: int | None) -> Table:
    """One row per (host, domain) over several hosts' trees: their full packs side by side."""
    t = Table(title="fleet: full evaluations per host", title_justify="left")
    for col in ("host", "out_root", "domain", "gen", "full packs", "best score_v2", "improves"):
        t.add_column(col)
    for root in out_roots:
        g, by_domain = find_packs(Path(root) / "artifacts", generation, None)
        for domain, packs in by_domain.items():
            full = [p for p in packs if p["stage"] == "full"]
            scores = [
                p["aggregate"]["score_v2"] for p in full if p["aggregate"]["score_v2"] is not None
            ]
            hosts = sorted({p["host"]["hostname"] for p in packs})
            better = [
                p["cand_id"] for p in full if p["aggregate"]["improves_over_baseline"] is True
            ]
            t.add_row(
                ", ".join(hosts),
                str(root),
                domain,
                str(g),
                str(len(full)),
                _num(max(scores, default=None), 4),
                ", ".join(better) or "none",
            )
    return t
