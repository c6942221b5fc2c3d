"""Esper's evaluation chunks on a local Ray cluster give the episodes the local executor gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray

from esper.evaluate.command import load_eval_config
from esper.evaluate.episodes import PARTS
from esper.evaluate.harness import plan_tasks
from esper.evaluate.units import resolve_units
from labkit.executors import LocalExecutor, RayExecutor, RunOutcome

from .conftest import CNN_TEST, CONFIGS


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs, started and stopped here."""
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def play(executor, run_path: Path) -> tuple[list[RunOutcome], dict[str, dict]]:
    """Run the evaluation's chunk tasks (as `esper evaluate` plans them) and read the episode parts."""
    overrides = ["eval.episodes=2", "eval.chunk_episodes=2", *CNN_TEST]
    cfg = load_eval_config(CONFIGS / "eval_cifar10_local.yaml", overrides, "random,static")
    outcomes: list[RunOutcome] = []
    executor.run(
        plan_tasks(cfg, resolve_units(cfg["eval"]["policies"], cfg), run_path),
        should_stop=lambda: False,
        on_start=lambda task: None,
        on_done=outcomes.append,
    )
    parts = {}
    for path in sorted((run_path / PARTS).glob("*.json")):
        part = json.loads(path.read_text(encoding="utf-8"))
        part.pop("wall_s")  # timing, the one field allowed to differ
        parts[path.name] = part
    return outcomes, parts


def test_evaluation_chunks_on_ray_equal_the_local_ones(cluster, tmp_path):
    local_outcomes, local = play(LocalExecutor(1), tmp_path / "local")
    ray_outcomes, on_ray = play(RayExecutor(), tmp_path / "ray")
    assert [o.status for o in ray_outcomes] == ["complete"] * 2  # one chunk per policy
    assert {o.name for o in ray_outcomes} == {o.name for o in local_outcomes}
    assert len(on_ray) == 4 and on_ray == local
    assert all(o.node["node_id"] for o in ray_outcomes)
