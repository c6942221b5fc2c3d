"""Phase registry: subcommand -> module `avalanche_llm.phases.<subcommand>`, imported only when run.

Stage tags, dependencies, help lines and phase-specific flags live in the CANON registry
(`ID.STAGE`, `ID.NEEDS`, `CLI.HELP`, `CLI.OPTIONS`). Every phase module exposes:

- `STAGE: str` — its stage tag (`S01`), checked against `CANON.ID.STAGE.<subcommand>`;
- `NEEDS: tuple[str, ...]` — upstream stage tags (`ctx.deps[tag]`), checked against `CANON.ID.NEEDS`;
- `PRODUCES_RUN: bool` — False only for the pure validation phase 0 (no run directory);
- `check(ctx) -> None` (optional) — validates inputs before any run directory exists (also on --dry_run);
- `run(ctx) -> None` — does the work, writing artifacts through `ctx.run` (a `StageRun`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from avalanche_llm import canon

SUBCOMMANDS = tuple(canon.registry()["ID"]["STAGE"])


def needs(subcommand: str) -> tuple[str, ...]:
    """Stage tags `subcommand` reads, from the registry."""
    return tuple(canon.registry()["ID"]["NEEDS"][subcommand])


def load_phase(subcommand: str) -> ModuleType:
    """Import the module of `subcommand` and check its STAGE and NEEDS against the registry."""
    module = importlib.import_module(f"avalanche_llm.phases.{subcommand}")
    if canon.stage_tag(subcommand) != module.STAGE or tuple(module.NEEDS) != needs(subcommand):
        raise RuntimeError(
            f"{subcommand}: module STAGE/NEEDS {module.STAGE} {module.NEEDS} disagree with CANON "
            f"{canon.stage_tag(subcommand)} {needs(subcommand)}"
        )
    return module
