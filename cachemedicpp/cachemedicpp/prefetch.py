"""`python -m cachemedicpp.prefetch [--config Y]... [--model REPO[@REV]]...`.

Fills the Hugging Face cache with the models the given configs (default: `configs/mve.yaml` and
`configs/second_model_smoke_gpt2_large.yaml`) and `--model` specs name, so that runs start
without live downloads. `local:` zoo names are built instead; local directories need nothing.
Every target gets one line; any target that could not be fetched makes the exit code 3.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from cachemedicpp.config import load_run_config, project_path
from cachemedicpp.data import LOCAL_HINT
from labkit.cli import run_cli
from labkit.errors import ConfigError, MissingInputError
from labkit.zoo import resolve_model
from labkit.zoo.hub import hub_endpoint, hub_unreachable_reason

DEFAULT_CONFIGS = ("configs/mve.yaml", "configs/second_model_smoke_gpt2_large.yaml")


@dataclass(frozen=True)
class Target:
    """One model to make local: a name (zoo, directory or hub id), an optional hub revision."""

    name: str
    revision: str | None
    source: str


def parse_model(spec: str) -> Target:
    """`REPO` or `REPO@REV` as a target."""
    name, _, rev = spec.partition("@")
    if not name or (spec.count("@") and not rev):
        raise ConfigError(f"--model {spec!r}: expected REPO or REPO@REV")
    return Target(name, rev or None, "--model")


def targets(configs: list[str], models: list[str]) -> list[Target]:
    """Targets from configs (validated, exit 2 on a bad one) and --model specs, first seen kept."""
    if not configs and not models:
        configs = list(DEFAULT_CONFIGS)
    out = [Target(load_run_config(project_path(c))["model"]["name"], None, str(c)) for c in configs]
    out += [parse_model(m) for m in models]
    seen, unique = set(), []
    for t in out:
        if (t.name, t.revision) not in seen:
            seen.add((t.name, t.revision))
            unique.append(t)
    return unique


def fetch(target: Target) -> Path:
    """Local path of one target: built, already local, or downloaded (MissingInputError offline)."""
    if target.revision is None:
        return resolve_model(target.name, local_hint=LOCAL_HINT)
    from huggingface_hub import snapshot_download

    reason = hub_unreachable_reason()
    if reason is not None:
        raise MissingInputError(
            f"model {target.name}@{target.revision} cannot be fetched: the hub is unreachable "
            f"({reason}); {LOCAL_HINT}"
        )
    return Path(snapshot_download(target.name, revision=target.revision, endpoint=hub_endpoint()))


def main(args: argparse.Namespace) -> int:
    """Fetch every target, one line each; exit 3 if any is missing."""
    failed = []
    for t in targets(args.config, args.model):
        label = t.name if t.revision is None else f"{t.name}@{t.revision}"
        try:
            path = fetch(t)
        except MissingInputError as exc:
            failed.append(label)
            print(f"MISSING {label} (from {t.source}): {exc}")
            continue
        print(f"ok      {label} (from {t.source}) -> {path}")
    if failed:
        raise MissingInputError(f"{len(failed)} target(s) not available: {', '.join(failed)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m cachemedicpp.prefetch`."""
    p = argparse.ArgumentParser(
        prog="cachemedicpp.prefetch",
        description="Put the models of configs and --model specs into the local cache.",
    )
    p.add_argument("--config", action="append", default=[], help="a run config (repeatable)")
    p.add_argument("--model", action="append", default=[], help="REPO or REPO@REV (repeatable)")
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
