import json
import os
import time
from pathlib import Path

import pytest
import yaml

from labkit.config import config_hash
from labkit.control import request_pause
from labkit.errors import EXIT_BAD_INPUT, EXIT_PAUSED, ConfigError, Paused, RunExistsError
from labkit.executors import LocalExecutor, OrderedExecutor
from labkit.jsonl import read_jsonl
from labkit.sweep import load_sweep, main, plan_sweep, run_sweep, sanitize_name

# Worker processes import the run functions below by name; this folder must be importable.
HERE = Path(__file__).resolve().parent
ENTRY = "test_sweep:record_run"


def record_run(name: str, config: dict, run_dir: Path) -> dict:
    """A run: leaves one marker line per call, then sleeps, fails, crashes or pauses the sweep."""
    with open(Path(config["marker_dir"]) / f"{name}.calls", "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()}\n")
    if config["pause_sweep"]:
        request_pause(run_dir.parent, "test")
    time.sleep(config["sleep_s"])
    if config["crash"]:
        os._exit(3)
    if config["fail"]:
        raise ValueError(f"boom in {name}\nsecond line")
    (run_dir / "out.txt").write_text(f"{config['train']['lr']}\n", encoding="utf-8")
    return {"score": config["train"]["lr"] * 10, "seed": config["seed"]}


@pytest.fixture(autouse=True)
def importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def base_config(tmp_path: Path) -> dict:
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    return {
        "seed": 0,
        "marker_dir": str(markers),
        "pause_sweep": False,
        "sleep_s": 0,
        "crash": False,
        "fail": False,
        "train": {"lr": 0.1, "steps": 3},
    }


def write_sweep(tmp_path: Path, **doc) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base_config(tmp_path)), encoding="utf-8")
    doc = {"sweep_name": "s1", "base_config": "base.yaml", "entry": ENTRY, **doc}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def calls(tmp_path: Path) -> dict[str, int]:
    return {p.stem: len(p.read_text().splitlines()) for p in (tmp_path / "markers").glob("*.calls")}


def summary(out_root: Path, name: str = "s1") -> dict:
    return json.loads((out_root / f"{name}_summary.json").read_text(encoding="utf-8"))


FOUR = [{"name": f"r{i}", "overrides": [f"seed={i}"]} for i in range(4)]


def test_expansion_gives_stable_names_and_resolved_configs(tmp_path):
    runs = [
        {"name": "low lr/x", "overrides": ["train.lr=1e-4"]},
        {"overrides": ["train.steps=5", "seed=2"]},
        {},
    ]
    path = write_sweep(tmp_path, runs=runs)
    plan = load_sweep(path)
    assert [r.name for r in plan.runs] == ["low_lr_x", "train.steps_5__seed_2", "base"]
    low = plan.runs[0]
    assert low.overrides == ("train.lr=1e-4",)
    assert low.config["train"] == {"lr": 1e-4, "steps": 3}
    assert low.config_hash == config_hash(low.config)
    assert plan.runs[1].config["seed"] == 2 and plan.runs[1].config["train"]["steps"] == 5
    assert plan.runs[2].config == base_config(tmp_path)
    again = load_sweep(path)
    assert again.spec_hash == plan.spec_hash and again.runs == plan.runs


def test_grid_is_a_product_in_key_order_crossed_with_runs(tmp_path):
    base = base_config(tmp_path)
    doc = {
        "sweep_name": "g",
        "base_config": base,
        "grid": {"train.lr": [0.1, 1e-3], "seed": [0, 1, 2]},
    }
    plan = plan_sweep(doc)
    assert [r.name for r in plan.runs] == [
        f"train.lr-{lr}__seed-{s}" for lr in ("0.1", "0.001") for s in (0, 1, 2)
    ]
    assert [(r.config["train"]["lr"], r.config["seed"]) for r in plan.runs] == [
        (lr, s) for lr in (0.1, 1e-3) for s in (0, 1, 2)
    ]
    assert plan.runs[4].overrides == ("train.lr=0.001", "seed=1")
    crossed = plan_sweep(
        {
            **doc,
            "runs": [{"name": "a"}, {"name": "b", "overrides": ["fail=true"]}],
            "grid": {"seed": [0, 1]},
        }
    )
    assert [r.name for r in crossed.runs] == ["a__seed-0", "a__seed-1", "b__seed-0", "b__seed-1"]
    assert crossed.runs[3].config["fail"] is True and crossed.runs[3].config["seed"] == 1


def test_long_names_are_cut_with_a_stable_digest():
    a, b = sanitize_name("x" * 200 + "a"), sanitize_name("x" * 200 + "b")
    assert len(a) == 80 and a != b and a == sanitize_name("x" * 200 + "a")


@pytest.mark.parametrize(
    ("runs", "match"),
    [
        ([{"name": "a"}, {"name": "a!"}], "share the name 'a'"),
        ([{"name": "control"}], "unusable folder name"),
        ([{"name": "ok"}, {"name": "bad", "overrides": ["train.lrr=1"]}], "run 'bad'.*train.lrr"),
    ],
)
def test_bad_runs_are_config_errors(tmp_path, runs, match):
    with pytest.raises(ConfigError, match=match):
        load_sweep(write_sweep(tmp_path, runs=runs))


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"runs": [{"overrides": ["no_equals_sign"]}]}, r"runs\.0\.overrides\.0"),
        ({"runs": FOUR, "workers": 0}, r"workers: 0 is less than the minimum"),
        ({"runs": FOUR, "executor": "slurm"}, r"executor"),
        ({"runs": [{"name": "a", "extra": 1}]}, r"runs\.0.*extra"),
        ({}, "give `runs`, `grid` or both"),
    ],
)
def test_sweep_file_schema_errors_name_the_key(tmp_path, doc, match):
    with pytest.raises(ConfigError, match=match):
        load_sweep(write_sweep(tmp_path, **doc))


def test_config_schema_path_and_callback_validate_every_run(tmp_path):
    schema = {"type": "object", "properties": {"seed": {"type": "integer", "maximum": 2}}}
    (tmp_path / "cfg.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    path = write_sweep(tmp_path, runs=FOUR, config_schema="cfg.schema.json")
    with pytest.raises(ConfigError, match=r"run 'r3'.*seed: 3 is greater than the maximum"):
        load_sweep(path)

    def no_small_lr(cfg):
        if cfg["train"]["lr"] < 0.01:
            raise ConfigError("train.lr must be >= 0.01")

    path = write_sweep(tmp_path, runs=[{"name": "x", "overrides": ["train.lr=1e-3"]}])
    with pytest.raises(ConfigError, match=r"run 'x': train.lr must be >= 0.01"):
        load_sweep(path, config_schema=no_small_lr)


def test_unknown_override_key_stops_the_cli_before_any_run(tmp_path, capsys):
    runs = [*FOUR, {"name": "typo", "overrides": ["train.stepz=4"]}]
    path = write_sweep(tmp_path, runs=runs)
    out_root = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep_config", str(path), "--out_root", str(out_root)])
    assert exit_info.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run 'typo'" in err and "train.stepz" in err
    assert not out_root.exists() and calls(tmp_path) == {}


def test_unimportable_entry_stops_before_any_run(tmp_path):
    plan = load_sweep(write_sweep(tmp_path, runs=FOUR, entry="no_such_module_xyz:run"))
    with pytest.raises(ConfigError, match="cannot import 'no_such_module_xyz'"):
        run_sweep(plan, tmp_path / "out")
    assert not (tmp_path / "out" / "s1").exists() and calls(tmp_path) == {}


def strip_timings(doc: dict) -> dict:
    doc = {k: v for k, v in doc.items() if k != "updated_utc"}
    doc["runs"] = [
        {k: v for k, v in r.items() if k not in ("wall_s", "started_utc", "finished_utc")}
        for r in doc["runs"]
    ]
    return doc


def test_sequential_and_two_processes_give_the_same_summary(tmp_path):
    grid = {"train.lr": [0.1, 0.2], "seed": [0, 1]}
    plan = load_sweep(write_sweep(tmp_path, grid=grid))
    seq = run_sweep(plan, tmp_path / "seq", executor=LocalExecutor(1))
    par = run_sweep(plan, tmp_path / "par", executor=LocalExecutor(2))
    assert seq["status"] == "complete" and seq["counts"]["complete"] == 4
    assert strip_timings(seq) == strip_timings(par)
    assert strip_timings(summary(tmp_path / "par")) == strip_timings(par)
    assert seq["runs"][3]["result"] == {"score": 2.0, "seed": 1}
    assert [r["name"] for r in seq["runs"]] == [r.name for r in plan.runs]
    for root in ("seq", "par"):
        for run in plan.runs:
            out = tmp_path / root / "s1" / run.name / "out.txt"
            assert out.read_text() == f"{run.config['train']['lr']}\n"
    logs = tmp_path / "par" / "s1" / "logs"
    heartbeat = json.loads((logs / "sweep_heartbeat.json").read_text())
    assert (heartbeat["status"], heartbeat["step"], heartbeat["total"]) == ("complete", 4, 4)
    beats = read_jsonl(logs / "sweep_heartbeat.jsonl").records
    assert [b["step"] for b in beats if b["status"] == "running"] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("workers", [1, 2])
def test_pause_mid_sweep_then_resume_runs_each_exactly_once(tmp_path, workers):
    runs = [{"name": "r0", "overrides": ["pause_sweep=true"]}] + [
        {"name": f"r{i}", "overrides": [f"seed={i}", "sleep_s=1.0" if workers > 1 else "sleep_s=0"]}
        for i in range(1, 5)
    ]
    plan = load_sweep(write_sweep(tmp_path, runs=runs, workers=workers))
    out_root = tmp_path / "out"
    with pytest.raises(Paused, match="paused with 2 of 5" if workers > 1 else "paused with 1 of 5"):
        run_sweep(plan, out_root)
    paused = summary(out_root)
    assert paused["status"] == "paused"
    assert [r["status"] for r in paused["runs"]] == ["complete"] * workers + ["pending"] * (
        5 - workers
    )
    control = out_root / "s1" / "control"
    assert (control / "pause_ack_sweep.json").is_file() and not (control / "pause.request").exists()
    ack = json.loads((control / "pause_ack_sweep.json").read_text())
    assert ack["pending"] == [f"r{i}" for i in range(workers, 5)]

    done = run_sweep(plan, out_root)
    assert done["status"] == "complete" and done["counts"]["complete"] == 5
    assert calls(tmp_path) == {f"r{i}": 1 for i in range(5)}


def test_failed_run_is_recorded_and_the_rest_complete(tmp_path, capsys):
    runs = [*FOUR[:2], {"name": "bad", "overrides": ["fail=true"]}, *FOUR[2:]]
    path = write_sweep(tmp_path, runs=runs)
    doc = run_sweep(load_sweep(path), tmp_path / "out")
    assert doc["status"] == "failed" and doc["counts"] == {
        "complete": 4,
        "failed": 1,
        "paused": 0,
        "running": 0,
        "pending": 0,
    }
    bad = next(r for r in doc["runs"] if r["name"] == "bad")
    assert bad["error"] == "ValueError: boom in bad" and bad["result"] is None
    assert "record_run" in bad["traceback"]
    # The CLI on the same sweep resumes: only the failed run runs again, and exits 1.
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep_config", str(path), "--out_root", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    assert "1 runs failed" in capsys.readouterr().err
    assert calls(tmp_path) == {"r0": 1, "r1": 1, "bad": 2, "r2": 1, "r3": 1}


def test_dead_worker_is_recorded_and_the_sweep_goes_on(tmp_path):
    runs = [{"name": "crash", "overrides": ["crash=true"]}, *FOUR[1:]]
    doc = run_sweep(load_sweep(write_sweep(tmp_path, runs=runs, workers=2)), tmp_path / "out")
    status = {r["name"]: r for r in doc["runs"]}
    assert status["crash"]["status"] == "failed"
    assert status["crash"]["error"].startswith("worker process died")
    assert status["r3"]["status"] == "complete"


def test_a_run_starts_only_after_the_runs_it_needs(tmp_path):
    # Listed before what they need, on two workers: only the ordering keeps them apart.
    runs = [
        {"name": "late", "overrides": ["seed=1"]},
        {"name": "after_bad", "overrides": ["seed=2"]},
        {"name": "early", "overrides": ["sleep_s=0.5"]},
        {"name": "bad", "overrides": ["fail=true"]},
    ]
    plan = load_sweep(write_sweep(tmp_path, runs=runs))
    needs = {"late": {"early"}, "after_bad": {"bad"}}
    doc = run_sweep(plan, tmp_path / "out", executor=OrderedExecutor(LocalExecutor(2), needs))
    by = {r["name"]: r for r in doc["runs"]}
    assert by["late"]["status"] == "complete"
    assert by["late"]["started_utc"] >= by["early"]["finished_utc"]
    assert by["after_bad"]["status"] == "failed"
    assert by["after_bad"]["error"] == "needs run 'bad', which failed"
    assert calls(tmp_path) == {"late": 1, "early": 1, "bad": 1}
    # Without the ordering the same two workers start `late` alongside `early`.
    plain = run_sweep(plan, tmp_path / "plain", executor=LocalExecutor(2))
    by = {r["name"]: r for r in plain["runs"]}
    assert by["late"]["started_utc"] < by["early"]["finished_utc"]


def test_runs_that_need_each_other_are_refused():
    with pytest.raises(ConfigError, match="cycle"):
        OrderedExecutor(LocalExecutor(1), {"a": {"b"}, "b": {"a"}})


def test_no_resume_refuses_an_existing_sweep_unless_forced(tmp_path):
    plan = load_sweep(write_sweep(tmp_path, runs=FOUR[:2]))
    run_sweep(plan, tmp_path / "out")
    with pytest.raises(RunExistsError, match="already exists"):
        run_sweep(plan, tmp_path / "out", resume=False)
    assert run_sweep(plan, tmp_path / "out")["status"] == "complete"
    assert calls(tmp_path) == {"r0": 1, "r1": 1}
    run_sweep(plan, tmp_path / "out", resume=False, force=True)
    assert calls(tmp_path) == {"r0": 2, "r1": 2}


def test_resume_refuses_a_run_whose_config_changed(tmp_path):
    run_sweep(load_sweep(write_sweep(tmp_path, runs=FOUR[:2])), tmp_path / "out")
    changed = [FOUR[0], {"name": "r1", "overrides": ["seed=7"]}]
    with pytest.raises(RunExistsError, match=r"run 'r1'.*config hash"):
        run_sweep(load_sweep(write_sweep(tmp_path, runs=changed)), tmp_path / "out")


def test_unpicklable_run_function_is_refused_for_worker_processes(tmp_path):
    plan = load_sweep(write_sweep(tmp_path, runs=FOUR[:2]))
    with pytest.raises(ConfigError, match="cannot be sent to a worker process"):
        run_sweep(plan, tmp_path / "out", run_fn=lambda n, c, d: {}, executor=LocalExecutor(2))
    assert calls(tmp_path) == {}


def test_cli_dry_run_prints_the_plan_and_a_paused_sweep_exits_75(tmp_path, capsys):
    runs = [{"name": "r0", "overrides": ["pause_sweep=true"]}, FOUR[1]]
    path = write_sweep(tmp_path, runs=runs)
    out_root = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep_config", str(path), "--out_root", str(out_root), "--dry_run"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "r0" in printed and "pause_sweep=true" in printed and "runs 2" in printed
    assert not out_root.exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep_config", str(path), "--out_root", str(out_root)])
    assert exit_info.value.code == EXIT_PAUSED
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep_config", str(path), "--out_root", str(out_root), "--no-resume"])
    assert exit_info.value.code == 4
