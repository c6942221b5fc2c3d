"""Every CacheMedic++ paper config rehearsed end to end on replicas (their `test` size), at the sizes of
configs/rehearsal_profile.yaml: it completes, writes every locked figure and table stamped REHEARSAL,
and every run record says rehearsal: true with the caps it applied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachemedicpp import sweep
from cachemedicpp.config import PROJECT, load_run_config
from cachemedicpp.eval import eval_run
from cachemedicpp.plots import FIGURES, TABLES, make_plots, missed
from cachemedicpp.stability import stability_run
from cachemedicpp.train import train_run
from labkit.rehearsal import ENV
from labkit.stamp import stamped
from labkit.zoo import replicas

CONFIGS = PROJECT / "configs"
RUN_CONFIGS = ("mve.yaml", "second_model_smoke_gpt2_large.yaml", "mve_qwen.yaml")
SWEEPS = ("full_gpt2_matrix.yaml", "ood_loto_all.yaml")
# Beyond the profile, for the test suite's time: two corruption types (the targeted-damage one and a
# noise one), the undefended model against CacheMedic++; the tasks, model, dtype and windows stay.
# `make rehearse` runs the profile alone.
TEST_CAPS = [
    "device=cpu",
    "eval.corruption_eval=[gaussian, contiguous_overwrite]",
    "eval.defenses=[no_defense, cachemedic]",
]


@pytest.fixture
def rehearsing(monkeypatch):
    monkeypatch.setenv(ENV, "1")
    monkeypatch.setattr(replicas, "REPLICA_SIZE", "test")


def check_rehearsed_run(run: Path, config: Path) -> None:
    """Complete, every locked figure and table there and stamped, the record a capped rehearsal."""
    record = json.loads((run / "run_record.json").read_text(encoding="utf-8"))
    assert record["rehearsal"] is True
    assert {p: s["status"] for p, s in record["phases"].items()} == {
        p: "complete" for p in ("train", "eval", "stability")
    }
    assert "train.steps=4" in record["rehearsal_profile"][str(config)]
    paper = run / "paper"
    # A replica too weak to reach the calibration target still completes, and says so in its table.
    task = json.loads((run / "metrics" / "task_metrics.json").read_text(encoding="utf-8"))
    if missed(task["settings"].get("calibration"), "gaussian"):
        assert "FALLBACK" in (paper / "tables" / TABLES[0]).read_text(encoding="utf-8")
    for path in [paper / "figures" / n for n in FIGURES] + [paper / "tables" / n for n in TABLES]:
        assert stamped(path), path


@pytest.mark.rehearsal
@pytest.mark.parametrize("name", RUN_CONFIGS)
def test_paper_config_rehearses_train_eval_stability_plots(name, rehearsing, tmp_path):
    config = CONFIGS / name
    cfg = load_run_config(config, TEST_CAPS)
    assert cfg["train"]["steps"] == 4 and cfg["eval"]["sst2_prompted"]["n"] == 2  # the profile
    assert cfg["dtype"] == "bf16" and cfg["eval"]["wikitext2_ppl"]["window"] == 1024  # paper path
    run = tmp_path / "run"
    train_run(cfg, run)
    eval_run(cfg, run)
    stability_run(cfg, run)
    make_plots(run)
    check_rehearsed_run(run, config)


@pytest.mark.rehearsal
@pytest.mark.parametrize("name", SWEEPS)
def test_paper_sweep_rehearses_one_run(name, rehearsing, tmp_path, capsys):
    config = CONFIGS / name
    args = sweep.build_parser().parse_args(
        ["--sweep_config", str(config), "--out_root", str(tmp_path), *TEST_CAPS]
    )
    assert sweep.main(args) == 0
    runs = [p for p in (tmp_path / config.stem).iterdir() if (p / "run_record.json").is_file()]
    assert len(runs) == 1  # the profile keeps one run of the sweep
    check_rehearsed_run(runs[0], CONFIGS / "mve.yaml")
    assert f"rehearsal profile for {config}" in capsys.readouterr().err
