"""Run the CLI in-process on the local profile with the zoo's test-size models and data."""

from __future__ import annotations

from pathlib import Path

import pytest

from avalanche_llm import canon
from avalanche_llm.cli import cli

LOCAL = canon.ROOT / "configs" / "pipeline_local.yaml"
# A short grid and two rates keep each phase to a few seconds; everything else is the local profile.
SMALL = (
    "pipeline.gain_grid=[0.8,1.0,1.2]",
    "pipeline.target_events_per_site=[0.38,1.52]",
    "pipeline.bootstrap_reps=50",
)


def local_args(models: dict[str, Path], *extra: str) -> list[str]:
    """--config and --set arguments pointing both roles at test-size zoo models and data."""
    sets = [
        f"models.INSTRUCT.hf_id={models['INSTRUCT']}",
        f"models.BASE.hf_id={models['BASE']}",
        "datasets.A.id=local:stories@test",
        "datasets.B.id=local:stories@test",
        "datasets.ARC_MCQ.id=local:mcq@test",
        *SMALL,
        *extra,
    ]
    return ["--config", str(LOCAL), *(x for s in sets for x in ("--set", s))]


def run(*argv: str) -> int:
    """Exit code of `python -m avalanche_llm *argv`."""
    with pytest.raises(SystemExit) as exc:
        cli(list(argv))
    return exc.value.code
