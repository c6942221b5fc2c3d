"""`python -m esper evaluate`: trained Tamiyos vs the random, heuristic and static baselines."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

from esper.config import SCHEMA, check_config
from esper.evaluate.harness import PHASE, evaluate
from esper.evaluate.table import results_markdown
from esper.evaluate.units import expand_specs, resolve_units
from esper.rundirs import add_resume_flag, default_run_dir, open_run
from labkit.cli import add_executor_flags
from labkit.config import load_config
from labkit.errors import ConfigError
from labkit.executors import executor_spec, make_executor
from labkit.rehearsal import with_profile
from labkit.tables import add_json_flag, print_json

_INT1 = {"type": "integer", "minimum": 1, "maximum": 1_000_000}
EVAL_BLOCK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["episodes", "workers", "chunk_episodes", "policies", "heuristic_margin_nats"],
    "properties": {
        # PPO >= heuristic: the paired final-test-loss CI's high end below this many nats.
        "heuristic_margin_nats": {"type": "number", "minimum": 0},
        "episodes": _INT1,
        "workers": _INT1,
        "chunk_episodes": _INT1,
        "policies": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    },
}


def eval_schema() -> dict[str, Any]:
    """The train-host schema without its policy, episodes, ppo and checkpoint keys, plus `eval`."""
    schema = copy.deepcopy(SCHEMA)
    for key in ("policy", "episodes", "ppo", "checkpoint_every"):
        schema["properties"].pop(key)
        if key in schema["required"]:
            schema["required"].remove(key)
    schema["properties"]["eval"] = EVAL_BLOCK
    schema["required"].append("eval")
    return schema


def load_eval_config(
    path: str | Path, overrides: list[str], policies: str | None = None
) -> dict[str, Any]:
    """Load and check an evaluation config; `policies` (comma-separated) replaces eval.policies."""
    cfg = load_config(path, with_profile(path, overrides), schema=eval_schema())
    check_config(cfg)
    specs = cfg["eval"]["policies"] if policies is None else policies.split(",")
    cfg["eval"]["policies"] = expand_specs([s.strip() for s in specs if s.strip()])
    return cfg


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Check policies, config and data; create or resume the run; evaluate; print the table."""
    if args.pause_at is not None and args.pause_at < 1:
        raise ConfigError("--pause_at must be at least 1")
    extra = [*args.overrides]
    for key in ("episodes", "workers"):
        if getattr(args, key) is not None:
            extra.append(f"eval.{key}={getattr(args, key)}")
    cfg = load_eval_config(args.config, extra, args.policies)
    # Before any run dir exists: a bad executor block or --ray_address is a usage error (exit 2).
    executor = make_executor(executor_spec(args), cfg["eval"]["workers"])
    units = resolve_units(cfg["eval"]["policies"], cfg)
    run_dir = args.run_dir or default_run_dir("evaluate", Path(args.config).stem)
    _, run = open_run(
        cfg, run_dir, PHASE, resume=args.resume, config_path=args.config, check_task=True
    )
    with run.running():
        summary = evaluate(cfg, run, units, pause_at=args.pause_at, executor=executor)
    if args.json:
        print_json(summary)
        return 0
    print(results_markdown(summary), end="")
    print(f"evaluate: run {run.path}; summary.json, results.md/.tex and figures/ written")
    return 0


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    """Register `evaluate` on the `python -m esper` subcommands."""
    e = sub.add_parser(
        "evaluate", help="paired evaluation of trained Tamiyos against the baselines"
    )
    e.add_argument(
        "--config", required=True, help="YAML config, e.g. configs/eval_cifar10_local.yaml"
    )
    e.add_argument(
        "--policies",
        help="comma-separated: ppo:DIR (a train-tamiyo run; globs allowed), heuristic, random, static "
        "(default: eval.policies of the config)",
    )
    e.add_argument("--episodes", type=int, help="shorthand for eval.episodes=N")
    e.add_argument("--workers", type=int, help="shorthand for eval.workers=W")
    e.add_argument("--run_dir", help="run directory (default runs/evaluate-<config>-<UTC>)")
    e.add_argument("--pause_at", type=int, help="request a pause after K episodes in all (exit 75)")
    add_resume_flag(e)
    add_executor_flags(e)
    e.add_argument("overrides", nargs="*", help="dot-key overrides, e.g. eval.chunk_episodes=2")
    add_json_flag(e)
    e.set_defaults(func=cmd_evaluate)
