"""RayExecutor on a real local Ray cluster: same summary as local, worker kill, failure, pause."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray

from labkit.cli import run_cli
from labkit.control import request_pause
from labkit.errors import ConfigError, Paused
from labkit.executors import LocalExecutor, RayExecutor, make_executor
from labkit.jsonl import read_jsonl
from labkit.selfcheck import DEFAULT_CONFIG, sweep_run
from labkit.sweep import main, plan_sweep, run_sweep
from labkit.watch import build_parser
from labkit.watch import main as watch_main

HERE = Path(__file__).resolve().parent
OUTPUTS = ("weights.safetensors", "metrics.json", "logs/loss.jsonl")
TIMING = ("updated_utc", "wall_s", "started_utc", "finished_utc")
# Slow enough to be hit mid-run: 40 steps of 50 ms, a checkpoint every 5.
SLOW = ["train.steps=40", "train.checkpoint_every=5"]
# Long enough (20 s) that a loaded machine starting its second worker late still finds the first running.
LONG = ["train.steps=400", "train.checkpoint_every=5"]


def slow_run(name: str, config: dict, run_dir: Path) -> dict:
    """The self-check run with a pause between steps, so a test can kill or pause it mid-run."""
    return sweep_run(name, config, run_dir, step_sleep=0.05)


def failing_run(name: str, config: dict, run_dir: Path) -> dict:
    """A run whose function raises."""
    raise ValueError(f"boom in {name}")


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster of 2 CPUs for the whole module, started and stopped here."""
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def importable(monkeypatch):
    # Ray workers get the driver's sys.path, so they import this module's run functions by name.
    monkeypatch.syspath_prepend(str(HERE))


def plan(entry: str, overrides: dict | None = None, **doc):
    grid = overrides or {"seed": [0, 1]}
    return plan_sweep(
        {"sweep_name": "s", "base_config": DEFAULT_CONFIG, "entry": entry, "grid": grid, **doc}
    )


def stripped(summary_file: Path) -> bytes:
    """The summary without its timing and host fields, serialised canonically."""
    doc = json.loads(summary_file.read_text(encoding="utf-8"))
    doc = {k: v for k, v in doc.items() if k not in TIMING}
    doc["runs"] = [{k: v for k, v in r.items() if k not in (*TIMING, "node")} for r in doc["runs"]]
    return json.dumps(doc, sort_keys=True).encode()


def digests(run_dir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in OUTPUTS}


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run_record.json").read_text(encoding="utf-8"))


def heartbeat(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "logs" / "train_heartbeat.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def wait_for(predicate, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def in_background(fn, *args, **kwargs) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target():
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the test thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def test_nothing_imports_ray_unless_it_is_chosen():
    code = (
        "import sys, labkit.sweep, labkit.executors, labkit.selfcheck, labkit.watch;"
        "labkit.executors.make_executor('local', 2);"
        "assert 'ray' not in sys.modules, 'ray was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"kind": "ray", "max_retries": -1}, "max_retries"),
        ({"kind": "ray", "resources_per_run": {"CPU": -1}}, "resources_per_run"),
        ({"kind": "ray", "adress": "auto"}, "adress"),
        ({"kind": "slurm"}, "executor"),
    ],
)
def test_bad_executor_blocks_fail_before_any_run(spec, match):
    with pytest.raises(ConfigError, match=match):
        plan("labkit.selfcheck:sweep_run", executor=spec)
    with pytest.raises(ConfigError, match=match):
        make_executor(spec)


def test_executor_block_and_flags_choose_the_executor():
    ray_block = {"kind": "ray", "address": "local", "resources_per_run": {"CPU": 2, "GPU": 0}}
    built = make_executor(plan("labkit.selfcheck:sweep_run", executor=ray_block).executor)
    assert isinstance(built, RayExecutor)
    assert (built.address, built.resources, built.max_retries) == ("local", {"CPU": 2, "GPU": 0}, 3)
    assert (
        not built.fresh_worker and make_executor({**ray_block, "fresh_worker": True}).fresh_worker
    )
    local = make_executor(
        plan("labkit.selfcheck:sweep_run", executor="local", workers=2).executor, 2
    )
    assert isinstance(local, LocalExecutor) and local.workers == 2


def test_ray_address_without_ray_executor_exits_2(tmp_path, capsys):
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"sweep_name": "s", "base_config": DEFAULT_CONFIG, "runs": [{}]}))
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep_config", str(sweep), "--out_root", str(tmp_path), "--ray_address", "x:1"])
    assert exit_info.value.code == 2
    assert "--ray_address needs --executor ray" in capsys.readouterr().err


def test_ray_summary_equals_the_local_one_apart_from_timing_and_host(cluster, tmp_path, capsys):
    p = plan("labkit.selfcheck:sweep_run")
    local = run_sweep(p, tmp_path / "local", executor=LocalExecutor(1))
    on_ray = run_sweep(p, tmp_path / "ray", executor=RayExecutor(max_retries=1))
    assert on_ray["status"] == local["status"] == "complete" and on_ray["counts"]["complete"] == 2
    assert stripped(tmp_path / "ray" / "s_summary.json") == stripped(
        tmp_path / "local" / "s_summary.json"
    )
    node_id = ray.get_runtime_context().get_node_id()
    for run in on_ray["runs"]:
        # The ledger names the Ray node and worker; the run record names the host of each phase.
        assert run["node"]["node_id"] == node_id and run["node"]["pid"] != os.getpid()
        run_dir = tmp_path / "ray" / "s" / run["name"]
        assert record(run_dir)["phases"]["train"]["hostname"] == run["node"]["hostname"]
        assert digests(run_dir) == digests(tmp_path / "local" / "s" / run["name"])
    # labkit.watch on the out root: one line per run, with the node that ran it.
    with pytest.raises(SystemExit):
        run_cli(build_parser(), watch_main, ["--run_dir", str(tmp_path / "ray")])
    out = capsys.readouterr().out
    for run in on_ray["runs"]:
        line = next(row for row in out.splitlines() if row.lstrip().startswith(run["name"]))
        assert "complete" in line and "60/60" in line and run["node"]["node_ip"] in line


def victim_plan():
    run = {"name": "victim", "overrides": SLOW}
    doc = {"sweep_name": "k", "base_config": DEFAULT_CONFIG, "runs": [run]}
    return plan_sweep({**doc, "entry": "test_ray_executor:slow_run"})


def kill_mid_run(tmp_path: Path, max_retries: int) -> tuple[dict, Path]:
    p = victim_plan()
    run_dir = tmp_path / "ray" / "k" / "victim"
    thread, box = in_background(
        run_sweep, p, tmp_path / "ray", executor=RayExecutor(max_retries=max_retries)
    )

    def checkpointed() -> bool:
        beat = heartbeat(run_dir)
        return bool(beat and beat["latest_checkpoint"] and beat["step"] >= 12)

    wait_for(checkpointed)
    os.kill(heartbeat(run_dir)["pid"], signal.SIGKILL)
    thread.join(timeout=300)
    assert "error" not in box, box.get("error")
    return box["result"], run_dir


def test_killed_worker_is_retried_and_resumes_to_the_same_outputs(cluster, tmp_path):
    doc, run_dir = kill_mid_run(tmp_path, max_retries=2)
    assert doc["status"] == "complete"
    train = record(run_dir)["phases"]["train"]
    # The retry reopened the run (a second attempt) and went on from the checkpoint.
    assert train["status"] == "complete" and train["attempts"] == 2
    beats = read_jsonl(run_dir / "logs" / "train_heartbeat.jsonl").records
    second = [b for b in beats if b["pid"] != beats[0]["pid"]]
    assert second and second[0]["step"] >= 10  # started from a checkpoint, not from step 0
    steps = [json.loads(line)["step"] for line in (run_dir / "logs" / "loss.jsonl").open()]
    assert steps == list(range(1, 41))
    spec = victim_plan().runs[0]
    sweep_run(spec.name, spec.config, tmp_path / "reference")
    assert digests(run_dir) == digests(tmp_path / "reference")


def test_without_retries_a_killed_worker_is_a_failed_run(cluster, tmp_path):
    doc, _ = kill_mid_run(tmp_path, max_retries=0)
    assert doc["status"] == "failed"
    assert doc["runs"][0]["error"].startswith("worker died")


def test_exception_in_a_run_is_a_failed_run_with_traceback_and_exit_1(cluster, tmp_path, capsys):
    sweep = tmp_path / "sweep.json"
    doc = {
        "sweep_name": "f",
        "base_config": DEFAULT_CONFIG,
        "entry": "test_ray_executor:failing_run",
        "runs": [{"name": "bad"}],
    }
    sweep.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep_config", str(sweep), "--out_root", str(out), "--executor", "ray"])
    assert exit_info.value.code == 1
    printed = capsys.readouterr()
    assert "1 runs failed" in printed.err
    # The sweep's line per run (printed once at the end when not on a terminal).
    line = next(row for row in printed.out.splitlines() if row.lstrip().startswith("bad"))
    assert "failed" in line and "ValueError: boom" in line
    bad = json.loads((out / "f_summary.json").read_text())["runs"][0]
    assert bad["status"] == "failed" and bad["error"] == "ValueError: boom in bad"
    assert "failing_run" in bad["traceback"] and bad["node"]["node_id"]


def test_sweep_pause_reaches_running_tasks_and_rerun_resumes(cluster, tmp_path):
    p = plan_sweep(
        {
            "sweep_name": "p",
            "base_config": DEFAULT_CONFIG,
            "entry": "test_ray_executor:slow_run",
            "runs": [{"name": f"r{s}", "overrides": [*LONG, f"seed={s}"]} for s in (0, 1)],
        }
    )
    out = tmp_path / "ray"
    thread, box = in_background(run_sweep, p, out, executor=RayExecutor())
    runs = [out / "p" / name for name in ("r0", "r1")]
    wait_for(lambda: all((heartbeat(r) or {}).get("step", 0) >= 3 for r in runs))
    request_pause(out / "p", "test")
    thread.join(timeout=300)
    assert isinstance(box.get("error"), Paused)
    paused = json.loads((out / "p_summary.json").read_text())
    # Both runs stopped at a safe point mid-training instead of running to the end.
    assert [r["status"] for r in paused["runs"]] == ["paused", "paused"]
    for run_dir in runs:
        assert record(run_dir)["phases"]["train"]["status"] == "paused"
        assert heartbeat(run_dir)["step"] < 400
    # The rerun resumes them; without the pauses between steps, so it is quick.
    done = run_sweep(p, out, run_fn="labkit.selfcheck:sweep_run", executor=RayExecutor())
    assert done["status"] == "complete"
    for run_dir in runs:
        assert record(run_dir)["phases"]["train"]["attempts"] == 2
        assert not (run_dir / "control" / "pause.request").exists()
    for spec in p.runs:
        # Paused and resumed, each run ends with the bytes of one never paused.
        sweep_run(spec.name, spec.config, tmp_path / "reference" / spec.name)
        assert digests(out / "p" / spec.name) == digests(tmp_path / "reference" / spec.name)
