"""MLflow tracking (labkit.tracking) of a CacheMedic++ run: a few training steps land in a local store."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachemedicpp.train import build_parser, main
from labkit.cli import run_cli

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mve_local.yaml"


def test_a_train_run_lands_with_params_loss_curve_calibration_and_record(
    zoo_test_model, tmp_path, tracked
):
    run_dir = tmp_path / "run"
    overrides = [
        f"model.name={zoo_test_model('tiny-gpt2')}",
        "data.dataset=local:stories@test",
        "repair.protect_layers=[0, 1]",  # the test size has 2 layers
        "corruption.calibrate.n_windows=2",
        "train.steps=4",
        "train.log_every=1",
    ]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(
            build_parser(), main, ["--config", str(CONFIG), "--run_dir", str(run_dir), *overrides]
        )
    assert exit_info.value.code == 0
    client, run = tracked(run_dir / "run_record.json")
    assert run.data.tags["system"] == "cachemedicpp" and run.data.tags["phase.train"] == "complete"
    assert run.data.params["train.steps"] == "4" and run.data.params["repair.rank"] == "32"
    # the weights the run trained on, and the loss curve from logs/train.jsonl
    assert len(run.data.tags["weights_sha256"]) == 64
    history = client.get_metric_history(run.info.run_id, "logs/train.losses.total")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert any(k.startswith("metrics/calibration.metrics.") for k in run.data.metrics)
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"run_record.json", "config_resolved.yaml"} <= files
