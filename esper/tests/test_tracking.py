"""MLflow tracking (labkit.tracking) of an Esper run: a short heuristic episode lands in a local store."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_a_train_host_run_lands_with_params_step_metrics_summary_and_figures(tmp_path, tracked):
    run_dir = tmp_path / "host"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train-host",
                "--config",
                str(CONFIGS / "cifar10_local.yaml"),
                "--policy",
                "heuristic",
                "--run_dir",
                str(run_dir),
                "task.max_epochs=3",
                "data.max_train_batches=2",
                "data.max_val_batches=2",
            ]
        )
    assert exit_info.value.code == 0
    client, run = tracked(run_dir / "run_record.json")
    assert run.info.status == "FINISHED"
    assert run.data.tags["system"] == "esper" and run.data.tags["phase"] == "train_host"
    assert run.data.params["task.max_epochs"] == "3" and run.data.params["policy"] == "heuristic"
    # every epoch line of steps.jsonl, one point each; the episode's summary as final metrics
    assert len(client.get_metric_history(run.info.run_id, "steps.val_loss")) == 4  # epochs 0-3
    assert "summary.val_loss.value" in run.data.metrics
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert figures == {"figures/learning_curves.png", "figures/seed_timeline.png"}
