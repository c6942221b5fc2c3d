"""`esper train-tamiyo --seeds`: one run per seed on the executor (here a local Ray cluster), each
the same bytes as the single-seed run with that seed, with a summary of them all."""

from __future__ import annotations

import json

import ray

from esper.simic.train import LOGS

from .test_train_tamiyo import PPO_CONFIG, SMALL, esper, tamiyo


def test_seeds_on_ray_write_what_single_seed_runs_write(tmp_path):
    assert tamiyo(tmp_path / "single1", "seed=1") == 0
    many = tmp_path / "many"
    argv = ["train-tamiyo", "--config", PPO_CONFIG, "--run_dir", many, "--seeds", "0,1"]
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        assert esper(*argv, "--executor", "ray", *SMALL) == 0
    finally:
        ray.shutdown()
    seed0, seed1 = many / "seeds" / "seed0", many / "seeds" / "seed1"
    for name in (*LOGS, "policy.pt"):
        assert (seed1 / name).read_bytes() == (tmp_path / "single1" / name).read_bytes(), name
    # The control: the other seed trained differently, so equal bytes above mean something.
    assert (seed0 / "steps.jsonl").read_bytes() != (seed1 / "steps.jsonl").read_bytes()
    summary = json.loads((many / "seeds_summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "complete"
    runs = {r["name"]: r for r in summary["runs"]}
    assert set(runs) == {"seed0", "seed1"}
    assert all(r["status"] == "complete" and r["node"]["node_id"] for r in runs.values())
    single = json.loads((tmp_path / "single1" / "summary.json").read_text(encoding="utf-8"))
    assert runs["seed1"]["result"]["heldout_ppo_minus_random"] == single["heldout_ppo_minus_random"]
    # Rerunning resumes: both seeds are complete, nothing is trained again.
    assert esper(*argv, *SMALL) == 0
    assert (seed1 / "policy.pt").read_bytes() == (tmp_path / "single1" / "policy.pt").read_bytes()


def test_bad_seed_lists_and_flags_are_refused_before_any_run_dir(tmp_path):
    run = tmp_path / "r"
    base = ["train-tamiyo", "--config", PPO_CONFIG, "--run_dir", run]
    assert esper(*base, "--seeds", "0,0", *SMALL) == 2  # a seed twice
    assert esper(*base, "--seeds", "0,x", *SMALL) == 2
    assert esper(*base, "--seeds", "0,1", "--pause_at", "1", *SMALL) == 2
    assert esper(*base, "--executor", "ray", *SMALL) == 2  # an executor needs --seeds
    assert esper(*base, "--seed_workers", "2", *SMALL) == 2
    assert esper(*base, "--seeds", "0,1", "--ray_address", "auto", *SMALL) == 2
    assert not run.exists()
