"""`esper evaluate --executor ray` on a local Ray cluster writes what the local executor writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray

from labkit.ray_executor import RayExecutor

from .test_evaluate_cli import EVAL_CONFIG, LOGS, esper, evaluate

# The summary's timing fields, the only ones allowed to differ.
TIMING = ("episode_wall_s_mean", "episode_wall_s_total", "wall_s_this_attempt")


def outputs(run: Path) -> dict[str, object]:
    """The episode logs' bytes and the summary without its timing fields."""
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    return {
        **{name: (run / name).read_bytes() for name in LOGS},
        "summary": {k: v for k, v in summary.items() if k not in TIMING},
    }


@pytest.fixture
def cluster():
    """A local Ray cluster of 2 CPUs, started and stopped here; the CLI's executor joins it."""
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def test_evaluate_on_ray_equals_the_local_evaluation(cluster, tmp_path, monkeypatch):
    assert evaluate(tmp_path / "local", "random,static", episodes=2) == 0
    launched, run = [], RayExecutor.run

    def spy(self, tasks, **callbacks):
        launched.append(len(tasks))
        return run(self, tasks, **callbacks)

    monkeypatch.setattr(RayExecutor, "run", spy)
    assert evaluate(tmp_path / "ray", "random,static", "--executor", "ray", episodes=2) == 0
    assert launched == [2]  # both chunks (one per policy) went to the cluster
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
    record = json.loads((tmp_path / "ray" / "run_record.json").read_text(encoding="utf-8"))
    assert record["phases"]["evaluate"]["status"] == "complete"


def test_ray_address_without_the_ray_executor_is_refused(tmp_path):
    run = tmp_path / "r"
    flags = ("--policies", "random", "--ray_address", "auto", "--run_dir", run)
    code = esper("evaluate", "--config", EVAL_CONFIG, *flags)
    assert code == 2 and not run.exists()
