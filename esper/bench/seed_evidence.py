"""What each policy did with seeds in an evaluation run: kept-seed rates, blueprints, seed quality.

    python bench/seed_evidence.py --run_dir runs/e1 [--out evidence.json]

Reads the run's saved JSONL only. Per policy (and per PPO training seed): the share of episodes that
kept (fossilised) a seed, the blueprints kept, germinations and culls per episode, the action shares
by stage, and two measures of the kept seeds' quality: the counterfactual contribution measured in
TRAINING just before blending (L(alpha=0) - L(alpha=1) on a fixed validation batch) and the
contribution c = L(alpha=0) - L at fossilisation. Positive values mean the seed lowered the loss.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from labkit.atomic import atomic_write_json
from labkit.cli import run_cli
from labkit.errors import MissingInputError

TRAINING = 3  # SeedStage.TRAINING


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise MissingInputError(f"{path} not found; is this an evaluate run directory?")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _key(record: dict[str, Any]) -> tuple[str, Any]:
    return record["policy"], record["unit"]


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def evidence(run_dir: Path) -> dict[str, Any]:
    """Per (policy, unit): kept-seed rate, blueprints, actions by stage, kept seeds' quality."""
    episodes = _read(run_dir / "episodes.jsonl")
    steps = _read(run_dir / "steps.jsonl")
    events = _read(run_dir / "events.jsonl")
    # The last TRAINING-stage counterfactual of each episode before each fossilisation.
    last_cf: dict[tuple[str, Any, int], float] = {}
    cf_at_keep: dict[tuple[str, Any], list[float]] = defaultdict(list)
    c_at_keep: dict[tuple[str, Any], list[float]] = defaultdict(list)
    for s in steps:
        if s.get("seed_stage") == TRAINING and s.get("has_active_seed"):
            last_cf[(*_key(s), s["episode"])] = s["seed_counterfactual"]
    for e in events:
        if e["kind"] == "fossilized":
            cf = last_cf.get((*_key(e), e["episode"]))
            if cf is not None:
                cf_at_keep[_key(e)].append(cf)
            if e.get("contribution") is not None:
                c_at_keep[_key(e)].append(e["contribution"])
    rows = []
    for key in sorted({_key(e) for e in episodes}, key=lambda k: (k[0], str(k[1]))):
        eps = [e for e in episodes if _key(e) == key]
        shares: Counter[str] = Counter()
        for e in eps:
            for counts in e["actions_by_stage"].values():
                shares.update(counts)
        total = sum(shares.values())
        rows.append(
            {
                "policy": key[0],
                "unit": key[1],
                "episodes": len(eps),
                "kept_rate": sum(e["fossils"] > 0 for e in eps) / len(eps),
                "kept_blueprints": dict(Counter(b for e in eps for b in e["fossil_blueprints"])),
                "germinations_per_episode": sum(e["germinations"] for e in eps) / len(eps),
                "culls_per_episode": sum(e["culls"] for e in eps) / len(eps),
                "action_shares": {a: c / total for a, c in sorted(shares.items())},
                "kept_counterfactual_mean": _mean(cf_at_keep[key]),
                "kept_contribution_mean": _mean(c_at_keep[key]),
                "mean_test_loss": _mean([e["test_loss"] for e in eps if e.get("test_loss")]),
            }
        )
    return {"run_dir": str(run_dir), "rows": rows}


def _f(x: float | None, fmt: str = "{:+.4f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def main(args: argparse.Namespace) -> int:
    """Print the evidence table; optionally save it as JSON."""
    out = evidence(Path(args.run_dir))
    table = Table(title=f"seed evidence, {args.run_dir}")
    for col in (
        "policy",
        "unit",
        "kept",
        "kept blueprints",
        "germ./ep",
        "culls/ep",
        "WAIT",
        "cf of kept",
        "c of kept",
        "test loss",
    ):
        table.add_column(col)
    for r in out["rows"]:
        table.add_row(
            r["policy"],
            str(r["unit"]),
            f"{r['kept_rate']:.0%}",
            ", ".join(f"{b} {n}" for b, n in r["kept_blueprints"].items()) or "-",
            f"{r['germinations_per_episode']:.2f}",
            f"{r['culls_per_episode']:.2f}",
            f"{r['action_shares'].get('WAIT', 0.0):.0%}",
            _f(r["kept_counterfactual_mean"]),
            _f(r["kept_contribution_mean"]),
            _f(r["mean_test_loss"], "{:.4f}"),
        )
    Console(width=160).print(table)
    if args.out:
        atomic_write_json(args.out, out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Command line of the evidence report."""
    p = argparse.ArgumentParser(prog="seed_evidence", description=__doc__.splitlines()[0])
    p.add_argument("--run_dir", required=True, help="an evaluate run directory")
    p.add_argument("--out", help="write the rows as JSON here")
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
