import json
import subprocess
import sys
import threading
import time

import pytest
import yaml

from cachemedicpp import prefetch, sweep, watch
from cachemedicpp.config import PROJECT, resolve
from cachemedicpp.seed_report import write_report
from cachemedicpp.sweep import Budget, ablation, load_plan
from labkit.cli import run_cli
from labkit.control import request_pause
from labkit.errors import ConfigError, MissingInputError
from labkit.jsonl import read_jsonl

LOCKED_SWEEPS = ("full_matrix_local", "seedrep_local", "full_gpt2_matrix", "ood_loto_all")


def tiny_base(model_dir):
    return {
        "seed": 5,
        "threads": 1,
        "model": {"name": str(model_dir)},
        "data": {"dataset": "local:stories@test", "prefix_tokens": 48},
        "corruption": {"axes": {"head_mode": "all", "n_recent": 8}},
        "repair": {"rank": 4, "protect_layers": [0, 1]},
        "loss": {"kd_positions": 16},
        "train": {"steps": 2, "log_every": 1, "checkpoint_every": 2},
        "eval": {
            "tasks": ["wikitext2_ppl"],
            "corruption_eval": ["gaussian"],
            "eps": [0.0, 0.16],
            "use_calibrated_grid": False,
            "wikitext2_ppl": {
                "dataset": "local:stories@test",
                "dataset_config": None,
                "window": 64,
                "stride": 32,
                "max_windows": 2,
            },
            "bootstrap": {"n_resamples": 100},
        },
        "stability": {
            "prompts": 1,
            "prompt_tokens": 40,
            "delta_norms": [0.0, 1.0],
            "directions": 1,
            "top_k": 10,
        },
    }


@pytest.mark.parametrize("name", LOCKED_SWEEPS)
def test_locked_sweep_configs_expand_and_validate(name):
    plan = load_plan(PROJECT / "configs" / f"{name}.yaml")
    assert plan.name == name and len(plan.runs) >= 6
    assert len({r.config_hash for r in plan.runs}) == len(plan.runs)


def test_seedrep_pairs_five_seeds():
    plan = load_plan(PROJECT / "configs" / "seedrep_local.yaml")
    runs = {r.name: r.config for r in plan.runs}
    assert len(runs) == 2 * sweep.MIN_SEEDS
    for seed in (1234, 2026, 2027, 2028, 2029):
        assert runs[f"s{seed}_no_contr"]["loss"]["lambda_contr"] == 0
        assert runs[f"s{seed}_contr"]["eval"]["no_contr_run_dir"] == f"s{seed}_no_contr"
        assert runs[f"s{seed}_contr"]["seed"] == seed
    # Each contr run waits for its seed's no_contr run, on any executor.
    assert sweep.pair_needs(plan) == {
        f"s{seed}_contr": {f"s{seed}_no_contr"} for seed in (1234, 2026, 2027, 2028, 2029)
    }


def test_sweep_refuses_a_bad_override_before_any_run(tmp_path, model_dir):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_base(model_dir)))
    (tmp_path / "s.yaml").write_text(
        yaml.safe_dump(
            {
                "sweep_name": "bad",
                "base_config": "base.yaml",
                "runs": [{"overrides": ["repair.rnak=3"]}],
            }
        )
    )
    with pytest.raises(ConfigError, match="rnak"):
        load_plan(tmp_path / "s.yaml")


def test_sweep_runs_pairs_pauses_and_summarises(tmp_path, model_dir):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_base(model_dir)))
    sweep = {
        "sweep_name": "pair",
        "base_config": "base.yaml",
        "entry": "cachemedicpp.sweep:run_one",
        "runs": [
            {"name": "nc", "overrides": ["loss.lambda_contr=0.0"]},
            {"name": "c", "overrides": ["eval.no_contr_run_dir=nc"]},
        ],
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
    out = tmp_path / "out"
    (out / "pair" / "control").mkdir(parents=True)
    (out / "pair" / "control" / "pause.request").write_text("test")
    cmd = [
        sys.executable,
        "-m",
        "cachemedicpp.sweep",
        "--sweep_config",
        str(tmp_path / "s.yaml"),
        "--out_root",
        str(out),
    ]
    paused = subprocess.run(cmd, cwd=PROJECT, capture_output=True, text=True)
    assert paused.returncode == 75, paused.stderr
    done = subprocess.run([*cmd, "--json"], cwd=PROJECT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "pair_summary.json").read_text())
    assert json.loads(done.stdout) == summary  # --json: stdout holds only the summary
    assert summary["status"] == "complete" and summary["counts"]["complete"] == 2
    result = {r["name"]: r["result"] for r in summary["runs"]}
    assert "cachemedic_no_contr" in result["c"]["task_auc"]["wikitext2_ppl"]
    assert "cachemedic_no_contr" not in result["nc"]["task_auc"]["wikitext2_ppl"]
    for name in ("paper/figures/figA_score_vs_eps.png", "metrics/stability_metrics.json"):
        assert (out / "pair" / "c" / name).is_file()
    abl = json.loads((out / "pair" / "ablation_summary.json").read_text())
    # the random model's PPL barely moves, so its recovery curve may be undefined (no pair)
    assert abl["seeds"] == [5] and abl["auc_gain"]["wikitext2_ppl"]["n_seeds"] <= 1
    assert abl["auc_gain"]["wikitext2_ppl"]["effect_claimed"] is False  # one seed: no claim
    # the seed report reads these real summaries (None where a curve is undefined included)
    md, png = write_report(out, "pair", tmp_path / "report")
    assert "| 5 |" in md.read_text() and png.is_file()


def fake_result(seed, gain):
    """A run's headline with a known contr − no_contr AUC gain on two tasks."""
    auc = {"cachemedic": 0.5 + gain, "cachemedic_no_contr": 0.5}
    return {
        "seed": seed,
        "task_auc": {"wikitext2_ppl": auc, "sst2_prompted": dict(auc)},
        "sensitivity_at_max_delta": {"cachemedic": 1.0, "cachemedic_no_contr": 1.0 + gain},
    }


def test_ablation_claims_only_with_five_seeds_a_paired_test_and_a_ci_off_the_null():
    cfg = resolve({**tiny_base("m"), "seed": 0})
    clear = ablation({str(i): fake_result(i, 0.1 + 0.01 * i) for i in range(5)}, cfg)
    for task in ("wikitext2_ppl", "sst2_prompted"):
        gain = clear["auc_gain"][task]
        assert gain["effect_claimed"] is True and gain["p_value"] < 0.05 and gain["n_seeds"] == 5
    assert clear["sens_ratio"]["effect_claimed"] is True
    # the same clear effect on three seeds (all agree in sign) is not a claim
    few = ablation({str(i): fake_result(i, 0.1 + 0.01 * i) for i in range(3)}, cfg)
    assert few["auc_gain"]["wikitext2_ppl"]["effect_claimed"] is False
    noisy = [-0.1, 0.1, -0.05, 0.06, 0.02]
    mixed = ablation({str(i): fake_result(i, g) for i, g in enumerate(noisy)}, cfg)
    assert mixed["auc_gain"]["wikitext2_ppl"]["effect_claimed"] is False


def test_prefetch_resolves_targets_and_reports_offline(monkeypatch, model_dir, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    names = [t.name for t in prefetch.targets([], [])]
    assert names == ["gpt2-medium", "gpt2-large"]
    ts = prefetch.targets(["configs/mve.yaml"], ["gpt2-medium", "gpt2@abc", str(model_dir)])
    assert [(t.name, t.revision) for t in ts] == [
        ("gpt2-medium", None),
        ("gpt2", "abc"),
        (str(model_dir), None),
    ]
    with pytest.raises(ConfigError):
        prefetch.parse_model("gpt2@")
    args = prefetch.build_parser().parse_args(["--model", str(model_dir), "--model", "gpt2@abc"])
    with pytest.raises(MissingInputError, match="gpt2@abc"):
        prefetch.main(args)
    out = capsys.readouterr().out
    assert f"ok      {model_dir}" in out and "MISSING gpt2@abc" in out and "HF_HUB_OFFLINE" in out


def test_watch_shows_every_phase_heartbeat(tmp_path, capsys):
    from labkit.heartbeat import Heartbeat

    for phase, total in (("train", 10), ("eval", 4)):
        hb = Heartbeat(tmp_path, phase, total)
        hb.beat(total)
        hb.set_status("complete", step=total)
    args = watch.build_parser().parse_args(
        ["--run_dir", str(tmp_path), "--follow", "--stop_on_terminal", "--interval", "0.01"]
    )
    assert watch.build_parser().prog == "cachemedicpp.watch"
    assert watch.watch.main(args) == 0  # --stop_on_terminal: returns once all phases are done
    out = capsys.readouterr().out
    assert "train" in out and "10/10" in out and "eval" in out and "4/4" in out


def write_sweep(tmp_path, model_dir, runs, **extra):
    """A sweep file over the tiny base config; returns its path."""
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_base(model_dir)))
    doc = {"sweep_name": "sw", "base_config": "base.yaml", "runs": runs, **extra}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path / "s.yaml"


def sweep_exit(path, out, *flags):
    """Exit code of `python -m cachemedicpp.sweep` run in this process."""
    argv = ["--sweep_config", str(path), "--out_root", str(out), *flags]
    with pytest.raises(SystemExit) as exit_:
        run_cli(sweep.build_parser(), sweep.main, argv)
    return exit_.value.code


def test_budget_hint_stops_launches_once_spent():
    budget = Budget(max_runs=2, max_wall_hours=1.0)
    assert budget.spent(1, 10.0) is None
    assert "max_runs" in budget.spent(2, 10.0)
    assert "max_wall_hours" in budget.spent(1, 3600.0)
    assert Budget().spent(10**6, 1e9) is None


def test_a_failed_run_makes_the_sweep_exit_nonzero_and_the_budget_stops_launches(
    tmp_path, model_dir
):
    runs = [
        {"name": "broken", "overrides": [f"model.name={tmp_path / 'no_such_model'}"]},
        {"name": "ok"},
        {"name": "later", "overrides": ["seed=6"]},
    ]
    path = write_sweep(tmp_path, model_dir, runs, budget={"max_runs": 2})
    out = tmp_path / "out"
    # the budget allows two finished runs: broken (failed) and ok; `later` never starts
    assert sweep_exit(path, out) == 1
    summary = json.loads((out / "sw_summary.json").read_text())
    assert summary["counts"] == {**summary["counts"], "failed": 1, "complete": 1, "pending": 1}
    assert summary["budget"]["max_runs"] == 2 and summary["budget"]["runs_used"] == 2
    assert "max_runs 2 reached" in summary["budget"]["stopped_by"]
    # without the budget the rerun finishes `later`, redoes `broken`, and still exits 1 for it
    path = write_sweep(tmp_path, model_dir, runs)
    assert sweep_exit(path, out) == 1
    summary = json.loads((out / "sw_summary.json").read_text())
    assert summary["status"] == "failed" and summary["counts"]["complete"] == 2
    assert summary["budget"]["stopped_by"] is None
    assert [r["status"] for r in summary["runs"]] == ["failed", "complete", "complete"]


def test_sweep_pause_pauses_the_phase_in_flight_and_no_resume_refuses_complete_runs(
    tmp_path, model_dir
):
    # The run trains in a child process, which polls the sweep's request every RELAY_INTERVAL_S
    # (0.5 s): 300 steps outlast that poll even on an idle machine.
    steps = ["train.steps=300", "train.log_every=5", "train.checkpoint_every=30"]
    path = write_sweep(tmp_path, model_dir, [{"name": "r", "overrides": steps}])
    out = tmp_path / "out"
    log = out / "sw" / "r" / "logs" / "train.jsonl"

    def pause_once_training() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if log.is_file():  # step 5 is done: the train phase is in flight
                request_pause(out / "sw", "test")
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=pause_once_training)
    watcher.start()
    code = sweep_exit(path, out)
    watcher.join()
    # the train phase itself paused mid-way (not the sweep between runs)
    assert code == 75
    record = json.loads((out / "sw" / "r" / "run_record.json").read_text())
    assert record["phases"]["train"]["status"] == "paused"
    ack = json.loads((out / "sw" / "r" / "control" / "pause_ack_train.json").read_text())
    assert 0 < ack["step"] < 300
    assert (out / "sw" / "control" / "pause_ack_sweep.json").is_file()
    assert sweep_exit(path, out) == 0  # the rerun resumes the paused phase
    assert [r["step"] for r in read_jsonl(log).records] == list(range(5, 301, 5))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert sweep_exit(path, out, "--no-resume") == 4  # complete runs are never overwritten
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_workers_flag_reaches_the_local_executor_and_is_bounded(tmp_path, model_dir, monkeypatch):
    path = write_sweep(tmp_path, model_dir, [{"name": "a"}])
    seen = []

    def no_runs(spec, workers):
        seen.append((spec, workers))
        raise ConfigError("stop before any run")

    monkeypatch.setattr(sweep, "make_executor", no_runs)
    assert sweep_exit(path, tmp_path / "out", "--workers", "3") == 2
    assert sweep_exit(path, tmp_path / "out", "--executor", "local") == 2
    assert [w for _, w in seen] == [3, 1]  # 1: the file's default when the flag is absent
    assert sweep_exit(path, tmp_path / "out", "--workers", "0") == 2 and len(seen) == 2
