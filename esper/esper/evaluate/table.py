"""The results tables (results.md, results.tex) from a summary: the headline paired test-loss deltas,
per-policy means with CIs, the secondary paired return deltas, and the verdicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Format = Callable[[float], str]


def _num(x: float) -> str:
    return f"{x:.4g}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _cell(ci: dict[str, Any] | None, fmt: Format, *, signed: bool = False) -> str:
    if ci is None or ci["value"] is None:
        return "n/a"
    sign = "+" if signed and ci["value"] > 0 else ""
    if ci["low"] is None:
        return f"{sign}{fmt(ci['value'])} (n={ci['n']})"
    return f"{sign}{fmt(ci['value'])} [{fmt(ci['low'])}, {fmt(ci['high'])}]"


def _quality(summary: dict[str, Any], split: str = "val") -> tuple[str, str, Format]:
    """Perplexity for a language model, accuracy for a classifier (whichever the episodes measured)."""
    has_ppl = any(p["val_perplexity"] is not None for p in summary["policies"].values())
    if has_ppl:
        return f"{split}_perplexity", f"{split} perplexity", _num
    return f"{split}_accuracy", f"{split} accuracy", _pct


def headline_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and one row per comparison: paired final test loss and accuracy/perplexity deltas."""
    key, label, fmt = _quality(summary, "test")
    header = ["paired delta (final test)", "test loss", label]
    rows = [
        [name, _cell(d["test_loss"], _num, signed=True), _cell(d[key], fmt, signed=True)]
        for name, d in summary["headline"].items()
    ]
    return header, rows


def table_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and one row per policy: final test loss and quality, val loss, return, growth, WAIT."""
    test_key, test_label, fmt = _quality(summary, "test")
    header = [
        "policy",
        "units",
        "final test loss",
        test_label,
        "final val loss",
        "return (secondary)",
        "params added",
        "fossils",
        "culls",
        "WAIT share",
    ]
    rows = []
    for name, p in summary["policies"].items():
        units = f"{p['episodes']} ep"
        if p["units"]:
            k = len(p["units"])
            units = f"{k} seed{'s' if k > 1 else ''} x {p['episodes'] // k} ep"
        wait = p["actions"]["wait_share"]
        flag = " (> 90 %: flagged)" if p["actions"]["wait_collapse"] else ""
        if p["actions"].get("collapsed_units"):
            flag += f" (seeds > 90 %: {p['actions']['collapsed_units']})"
        rows.append(
            [
                name,
                units,
                _cell(p["test_loss"], _num),
                _cell(p[test_key], fmt),
                _cell(p["val_loss"], _num),
                _cell(p["return"], _num),
                _cell(p["params_added"], _num),
                _cell(p["fossils"], _num),
                _cell(p["culls"], _num),
                f"{_pct(wait)}{flag}",
            ]
        )
    return header, rows


def delta_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and one row per baseline: paired PPO - baseline deltas (unit = training seed)."""
    key, label, fmt = _quality(summary)
    header = ["paired delta", "return", "return, episode-level CI", "final val loss", label]
    rows = [
        [
            name,
            _cell(d["return"]["ci"], _num, signed=True),
            _cell(d["return"]["episode_level_ci"], _num, signed=True),
            _cell(d["val_loss"]["ci"], _num, signed=True),
            _cell(d[key]["ci"], fmt, signed=True),
        ]
        for name, d in summary["paired"].items()
    ]
    return header, rows


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def results_markdown(summary: dict[str, Any]) -> str:
    """results.md: the per-policy table, the paired deltas and the verdicts."""
    lines = [
        f"# Evaluation: {summary['task']} ({summary['episodes_per_unit']} paired episodes per unit)",
        "",
        "Headline: final test-split loss, paired on the same episode seeds; 95 % hierarchical",
        "bootstrap CIs (training seeds resampled, then episodes within each; a baseline is one group).",
        "",
        *_markdown(*headline_rows(summary)),
        "",
        "Per policy: means with 95 % BCa bootstrap CIs; PPO's unit is a training seed (mean of its "
        "episodes), a baseline's unit is an episode.",
        "",
        *_markdown(*table_rows(summary)),
    ]
    if summary["paired"]:
        lines += [
            "",
            "Secondary: paired deltas PPO - baseline of return and validation metrics (CI over",
            "training seeds, and over episode seeds as a check of how much the shared episodes matter):",
            "",
        ]
        lines += _markdown(*delta_rows(summary))
    if summary["verdicts"]:
        lines += [
            "",
            f"Verdicts (final test loss; heuristic margin {summary.get('heuristic_margin_nats')} nats):",
            "",
        ]
        lines += [f"- {name}: {v['text']}" for name, v in summary["verdicts"].items()]
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("&", r"\&"),
        ("#", r"\#"),
    ):
        text = text.replace(a, b)
    return text


def _tabular(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\hline"]
    for row in [header, *rows]:
        lines.append(" & ".join(_tex_escape(c) for c in row) + r" \\")
        if row is header:
            lines.append(r"\hline")
    return [*lines, r"\hline", r"\end{tabular}"]


def results_latex(summary: dict[str, Any]) -> str:
    """results.tex: the same two tables as LaTeX tabulars."""
    lines = [f"% Evaluation: {_tex_escape(summary['task'])}", *_tabular(*headline_rows(summary))]
    lines += ["", *_tabular(*table_rows(summary))]
    if summary["paired"]:
        lines += ["", *_tabular(*delta_rows(summary))]
    return "\n".join(lines) + "\n"
