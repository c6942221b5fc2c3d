"""Run an evaluation: chunks of paired episodes through the labkit executor, pausable between
episodes, then the run files, summary.json, results tables and figures.

Episode i of every unit starts from the same seed. The JSONL files are assembled from the saved
parts in a fixed order (units as listed, episodes ascending), so they are the same bytes whichever
worker finished first and however often the run was paused.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from esper.evaluate.episodes import PARTS, part_path, read_part
from esper.evaluate.figures import plot_evaluation
from esper.evaluate.summary import summarise_episodes
from esper.evaluate.table import results_latex, results_markdown
from esper.evaluate.units import Unit
from labkit.atomic import atomic_write_json, atomic_write_text
from labkit.control import REQUEST, PauseControl, request_pause
from labkit.errors import LabkitError, Paused
from labkit.executors import Executor, LocalExecutor, RunOutcome, RunTask
from labkit.heartbeat import Heartbeat
from labkit.jsonl import read_jsonl
from labkit.rundir import RunDir
from labkit.stamp import rehearsed, stamp_table

PHASE = "evaluate"
LOGS = ("episodes.jsonl", "steps.jsonl", "events.jsonl")
TRAINING_LOG = "ppo_training.jsonl"
ENTRY = "esper.evaluate.episodes:run_chunk"


def plan_tasks(cfg: dict[str, Any], units: list[Unit], run_path: Path) -> list[RunTask]:
    """Chunks of episodes still missing, chunk-major so that a cut-short run stays paired."""
    n, size = cfg["eval"]["episodes"], cfg["eval"]["chunk_episodes"]
    tasks = []
    for start in range(0, n, size):
        for unit in units:
            todo = [
                i
                for i in range(start, min(n, start + size))
                if not part_path(run_path, unit, i).exists()
            ]
            if todo:
                tasks.append(
                    RunTask(
                        name=f"{unit.label}_{start:04d}",
                        config={"cfg": cfg, "unit": asdict(unit), "episodes": todo},
                        run_dir=str(run_path),
                        entry=ENTRY,
                    )
                )
    return tasks


def _done(run_path: Path) -> int:
    return sum(1 for _ in (run_path / PARTS).glob("*.json"))


def _lines(records: list[dict[str, Any]]) -> str:
    # The same line format as labkit.jsonl.append_jsonl, written in one atomic step.
    return "".join(
        json.dumps(r, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
        for r in records
    )


def assemble(
    run_path: Path, units: list[Unit], n: int
) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """Write episodes/steps/events.jsonl from the parts; the episode records and walls per policy."""
    logs: dict[str, list[dict[str, Any]]] = {name: [] for name in LOGS}
    walls: dict[str, list[float]] = defaultdict(list)
    for unit in units:
        for i in range(n):
            part = read_part(part_path(run_path, unit, i))
            logs["episodes.jsonl"].append(part["episode"])
            logs["steps.jsonl"] += part["steps"]
            logs["events.jsonl"] += part["events"]
            walls[unit.policy].append(part["wall_s"])
    for name, records in logs.items():
        atomic_write_text(run_path / name, _lines(records))
    return logs["episodes.jsonl"], dict(walls)


def copy_training_curves(run_path: Path, units: list[Unit]) -> bool:
    """ppo_training.jsonl: each PPO unit's training returns, so the figures need only this run."""
    records = []
    for unit in units:
        if unit.source is None:
            continue
        for k, r in enumerate(read_jsonl(Path(unit.source) / "episodes.jsonl").records):
            records.append({"unit": unit.unit, "episode": k, "return": r["return"]})
    if records:
        atomic_write_text(run_path / TRAINING_LOG, _lines(records))
    return bool(records)


def _failure(outcomes: list[RunOutcome]) -> LabkitError:
    first = outcomes[0]
    detail = (first.traceback or "").strip().splitlines()
    where = f" ({detail[-1]})" if detail and detail[-1] != first.error else ""
    return LabkitError(
        f"{len(outcomes)} episode chunk(s) failed; {first.name}: {first.error}{where}"
    )


def evaluate(
    cfg: dict[str, Any],
    run: RunDir,
    units: list[Unit],
    *,
    pause_at: int | None = None,
    heartbeat_s: float = 5.0,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Play (or continue) every paired episode of `run`, then write the summary, tables and figures.

    `pause_at=K` requests a pause once K episodes in all are done (as `touch control/pause.request`).
    The chunks run on `executor` (default: `eval.workers` local processes).
    """
    path, n = run.path, cfg["eval"]["episodes"]
    total = n * len(units)
    started = time.perf_counter()
    tasks = plan_tasks(cfg, units, path)
    failed: list[RunOutcome] = []
    before = _done(path)
    (path / REQUEST).parent.mkdir(exist_ok=True)  # so `touch control/pause.request` just works
    with Heartbeat(path, PHASE, total, step=before, min_interval_s=heartbeat_s) as hb:
        pause = PauseControl(path, PHASE, heartbeat=hb, min_interval_s=0)
        stopping = False

        def should_stop() -> bool:
            nonlocal stopping
            stopping = stopping or bool(failed) or pause.requested()
            return stopping

        def on_done(outcome: RunOutcome) -> None:
            if outcome.status == "failed":
                failed.append(outcome)
            done = _done(path)
            hb.beat(done, metrics={"chunk": outcome.name, "status": outcome.status})
            if pause_at is not None and before < pause_at <= done < total:
                request_pause(path, f"evaluate --pause_at {pause_at}")

        executor = executor or LocalExecutor(cfg["eval"]["workers"])
        executor.run(tasks, should_stop=should_stop, on_start=lambda task: None, on_done=on_done)
        if failed:
            raise _failure(failed)
        done = _done(path)
        if done < total:
            ack = pause.acknowledge(done, path / PARTS)
            raise Paused(f"paused after {done}/{total} episodes (ack {ack}); rerun to resume")
        episodes, walls = assemble(path, units, n)
        has_training = copy_training_curves(path, units)
        summary = {
            "task": cfg["task"]["name"],
            "task_type": cfg["task"]["task_type"],
            "episodes_per_unit": n,
            "eval_seed": cfg["seed"],
            "units": [asdict(u) for u in units],
            "heuristic_margin_nats": cfg["eval"]["heuristic_margin_nats"],
            **summarise_episodes(episodes, cfg["seed"], cfg["eval"]["heuristic_margin_nats"]),
            "episode_wall_s_mean": {p: round(float(np.mean(w)), 3) for p, w in walls.items()},
            "episode_wall_s_total": round(sum(map(sum, walls.values())), 3),
            "wall_s_this_attempt": round(time.perf_counter() - started, 3),
        }
        atomic_write_json(path / "summary.json", summary)
        stamp = rehearsed(path)
        atomic_write_text(
            path / "results.md", stamp_table(results_markdown(summary), "md", rehearsal=stamp)
        )
        atomic_write_text(
            path / "results.tex", stamp_table(results_latex(summary), "tex", rehearsal=stamp)
        )
        names = [*LOGS, "summary.json", "results.md", "results.tex"]
        names += [TRAINING_LOG] if has_training else []
        for name in names:
            run.register_artifact(name)
        for fig in plot_evaluation(path):
            run.register_artifact(fig)
        hb.beat(total, metrics={"episodes": total}, force=True)
    return summary
