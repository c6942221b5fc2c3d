"""Regenerate the README's result tables from `esper evaluate` run directories (never by hand).

    python bench/readme_results.py --readme README.md --block cnn \
        --run "Default reward (potential)=runs/e4/eval_potential" \
        --run "Ablation (seed_asymmetric)=runs/e4/eval_seed_asymmetric"

For each run, in order: its headline table (paired final-test-loss deltas with the hierarchical
CIs), its per-policy table and its verdicts, all from the run's summary.json through the same
functions that write results.md; then one seed-evidence table over every run
(bench/seed_evidence.py). The text replaces what lies between the README's two marker lines of the
named block, `<!-- evaluate-tables:NAME:begin -->` and `<!-- evaluate-tables:NAME:end -->`; the rest of
the README, other blocks included, is kept (so one task's tables are regenerated without the other's runs).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

from esper.evaluate.table import headline_rows, table_rows
from labkit.atomic import atomic_write_text
from labkit.cli import run_cli
from labkit.errors import ConfigError, MissingInputError


def _evidence_module() -> Any:
    path = Path(__file__).with_name("seed_evidence.py")
    spec = importlib.util.spec_from_file_location("seed_evidence", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def run_section(label: str, run_dir: Path) -> list[str]:
    """One run's headline, per-policy table and verdicts."""
    path = run_dir / "summary.json"
    if not path.is_file():
        raise MissingInputError(f"{path} not found; is {run_dir} a finished evaluate run?")
    summary = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        f"**{label}** (`{run_dir}`; {summary['episodes_per_unit']} paired episodes per unit), "
        "headline (final test loss, 95 % hierarchical CI):",
        "",
        *markdown_table(*headline_rows(summary)),
        "",
        *markdown_table(*table_rows(summary)),
        "",
    ]
    lines += [f"- {name}: {v['text']}" for name, v in summary["verdicts"].items()]
    return [*lines, ""]


def evidence_section(runs: list[tuple[str, Path]]) -> list[str]:
    """Kept seeds per policy and unit, with the quality of the kept seeds, over every run."""
    evidence = _evidence_module().evidence
    header = ["run", "policy", "unit", "kept", "blueprints kept", "WAIT", "cf of kept"]
    header += ["c of kept", "test loss"]
    rows = []
    for label, run_dir in runs:
        for r in evidence(run_dir)["rows"]:
            kept = ", ".join(f"{b} {n}" for b, n in r["kept_blueprints"].items()) or "-"
            rows.append(
                [
                    label,
                    r["policy"],
                    "-" if r["unit"] is None else str(r["unit"]),
                    f"{r['kept_rate']:.0%}",
                    kept,
                    f"{r['action_shares'].get('WAIT', 0.0):.0%}",
                    _f(r["kept_counterfactual_mean"], "{:+.3f}"),
                    _f(r["kept_contribution_mean"], "{:+.3f}"),
                    _f(r["mean_test_loss"], "{:.3f}"),
                ]
            )
    return [
        "Seed evidence (`bench/seed_evidence.py`; cf = L(alpha=0) - L(alpha=1) of a kept seed just "
        "before blending, c = its contribution at fossilisation; positive = the seed lowers the loss):",
        "",
        *markdown_table(header, rows),
        "",
    ]


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else fmt.format(x)


def parse_run(text: str) -> tuple[str, Path]:
    """`LABEL=RUN_DIR` -> (label, path)."""
    label, sep, path = text.partition("=")
    if not sep or not label.strip() or not path.strip():
        raise ConfigError(f"--run {text!r}: give LABEL=RUN_DIR")
    return label.strip(), Path(path.strip())


def markers(name: str) -> tuple[str, str]:
    """The begin and end marker lines of the block called `name`."""
    return f"<!-- evaluate-tables:{name}:begin -->", f"<!-- evaluate-tables:{name}:end -->"


def replace_block(readme: str, name: str, block: str) -> str:
    """`readme` with the text between the marker lines of block `name` replaced by `block`."""
    begin, end = markers(name)
    if readme.count(begin) != 1 or readme.count(end) != 1:
        raise ConfigError(f"the README needs exactly one {begin} and one {end} line")
    head, rest = readme.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{block}{end}{tail}"


def main(args: argparse.Namespace) -> int:
    """Build every section first (bad input fails before the README is touched), then write it."""
    runs = [parse_run(r) for r in args.run]
    readme = Path(args.readme)
    if not readme.is_file():
        raise MissingInputError(f"{readme} not found")
    lines: list[str] = []
    for label, run_dir in runs:
        lines += run_section(label, run_dir)
    lines += evidence_section(runs)
    text = replace_block(readme.read_text(encoding="utf-8"), args.block, "\n".join(lines))
    atomic_write_text(readme, text)
    print(f"{readme}: tables of {len(runs)} evaluate run(s) written into block {args.block!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Command line of the README regenerator."""
    p = argparse.ArgumentParser(prog="readme_results", description=__doc__.splitlines()[0])
    p.add_argument("--readme", default="README.md", help="the README to update in place")
    p.add_argument(
        "--block", required=True, help="name of the README's marker block (cnn, cnn_ablation, lm)"
    )
    p.add_argument(
        "--run", action="append", required=True, help="LABEL=RUN_DIR of an evaluate run (repeat)"
    )
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
