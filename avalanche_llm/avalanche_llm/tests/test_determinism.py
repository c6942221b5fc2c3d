"""Determinism smoke test: the same config twice in fresh out roots -> same run ids, same result bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from avalanche_llm.tests.local_cli import local_args, run

PHASES = (
    "phase1_calibrate",
    "phase2_gain_grid",
    "phase2_select_gstar",
    "phase3_extract_rasters",
    "phase4_run_nulls",
)


def results_digest(out_root: Path) -> dict[str, str]:
    """sha256 of every file under every run's results/, keyed by run id and relative path."""
    return {
        p.relative_to(out_root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out_root.glob("RUN_*/results/**/*"))
        if p.is_file()
    }


def test_same_config_same_ids_and_bytes(tmp_path: Path, zoo_test_model):
    models = {"INSTRUCT": zoo_test_model("tiny-llama"), "BASE": zoo_test_model("tiny-gpt2")}
    digests = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        for phase in PHASES:
            assert (
                run(phase, *local_args(models), "--model_role", "BASE", "--out_root", str(out)) == 0
            )
        digests.append(results_digest(out))
    first, second = digests
    assert sorted({k.split("/")[0][:8] for k in first}) == [
        "RUN_S01_",
        "RUN_S02B",
        "RUN_S02_",
        "RUN_S03_",
        "RUN_S04_",
    ]
    assert first == second
