import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import OPTConfig, OPTForCausalLM

from cachemedicpp.calibration import search_eps
from cachemedicpp.config import PROJECT, load_run_config, resolve, schema
from cachemedicpp.data import split_stream
from cachemedicpp.modeling import load_model
from cachemedicpp.ppl import perplexity, sliding_windows
from cachemedicpp.retrieval import RetrievalDocs
from cachemedicpp.train import train_run
from labkit.checkpoint import load_checkpoint
from labkit.config import validate
from labkit.control import request_pause
from labkit.errors import Paused, RunExistsError
from labkit.jsonl import read_jsonl


def config(model_dir: Path, *overrides: str) -> dict:
    raw = {
        "seed": 7,
        "threads": 1,
        "model": {"name": str(model_dir)},
        "data": {"dataset": "local:stories@test", "prefix_tokens": 48},
        "corruption": {
            "axes": {"head_mode": "all", "n_recent": 8},
            "calibrate": {"enabled": True, "window": 64, "n_windows": 2, "max_iter": 3},
        },
        "repair": {"rank": 4, "protect_layers": [0, 1]},
        "loss": {"kd_positions": 16},
        "train": {"steps": 6, "log_every": 2, "checkpoint_every": 3, "lr": 0.01},
    }
    return resolve(raw, overrides)


def phi(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / f"repair_step_{step}.pt")["phi"]


def test_train_writes_the_locked_artifacts(model_dir, tmp_path):
    run = tmp_path / "run"
    summary = train_run(config(model_dir), run)
    assert summary["steps"] == 6
    for name in (
        "run_record.json",
        "config_resolved.yaml",
        "env.json",
        "git.json",
        "checkpoints/repair_step_3.pt",
        "checkpoints/repair_step_6.pt",
        "checkpoints/train_state_latest.pt",
        "checkpoints/train_state_step_3.pt",
        "checkpoints/train_state_step_6.pt",
        "logs/train.jsonl",
        "logs/train_heartbeat.json",
        "logs/train_heartbeat.jsonl",
        "metrics/calibration.json",
    ):
        assert (run / name).is_file(), name
    record = json.loads((run / "run_record.json").read_text())
    validate(record, schema("run_record"), what="run_record")
    assert record["status"] == "complete"
    indexed = {a["relative_path"] for a in record["artifact_index"]}
    assert {
        "metrics/calibration.json",
        "logs/train.jsonl",
        "checkpoints/repair_step_6.pt",
    } <= indexed
    logs = read_jsonl(run / "logs" / "train.jsonl").records
    assert [r["step"] for r in logs] == [2, 4, 6]
    for r in logs:
        validate(r, schema("log_record"), what="train.jsonl")
    calibration = json.loads((run / "metrics" / "calibration.json").read_text())
    validate(calibration, schema("metric_record"), what="calibration.json")
    assert set(calibration["metrics"]["grids"]) >= {"gaussian", "contiguous_overwrite"}
    heartbeat = json.loads((run / "logs" / "train_heartbeat.json").read_text())
    assert heartbeat["status"] == "complete" and heartbeat["step"] == 6
    state = load_checkpoint(run / "checkpoints" / "train_state_latest.pt")
    assert state["config_hash"] == record["config_hash"] and state["step"] == 6
    assert set(phi(run, 6)) == set(state["phi"]), "repair checkpoints hold R_phi only"


def test_pause_at_step_3_then_resume_equals_six_straight_steps(model_dir, tmp_path):
    cfg = config(model_dir)
    straight, paused = tmp_path / "straight", tmp_path / "paused"
    train_run(cfg, straight)

    def pause_at_3(step: int) -> None:
        if step == 3:
            request_pause(paused, "test")

    with pytest.raises(Paused):
        train_run(cfg, paused, pause_check_s=0, on_step=pause_at_3)
    ack = json.loads((paused / "control" / "pause_ack_train.json").read_text())
    assert ack["step"] == 3
    assert json.loads((paused / "run_record.json").read_text())["status"] == "paused"
    train_run(cfg, paused)
    a, b = phi(straight, 6), phi(paused, 6)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed R_phi must be bitwise equal"
    assert [r["step"] for r in read_jsonl(paused / "logs" / "train.jsonl").records] == [2, 4, 6]


def test_a_crash_before_the_first_state_leaves_no_duplicate_log_lines(model_dir, tmp_path):
    cfg = config(model_dir, "train.log_every=1", "train.checkpoint_every=100")
    run = tmp_path / "run"

    def crash_at_3(step: int) -> None:
        if step == 3:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train_run(cfg, run, on_step=crash_at_3)
    assert not (run / "checkpoints" / "train_state_latest.pt").exists()
    assert [r["step"] for r in read_jsonl(run / "logs" / "train.jsonl").records] == [1, 2, 3]
    train_run(cfg, run)
    # training started over, and its log with it: 1..6 once each, not 1, 2, 3, 1, 2, ...
    steps = [r["step"] for r in read_jsonl(run / "logs" / "train.jsonl").records]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_calibration_that_misses_its_target_warns(model_dir, tmp_path):
    # eps_max so small that no type can reach +25 % PPL
    cfg = config(model_dir, "corruption.calibrate.eps_max=0.001", "train.steps=1")
    with pytest.warns(UserWarning, match="missed its target"):
        train_run(cfg, tmp_path / "run")
    cal = json.loads((tmp_path / "run" / "metrics" / "calibration.json").read_text())
    assert not any(t["reached"] for t in cal["metrics"]["types"].values())


def test_complete_run_is_immutable_even_with_no_resume(model_dir, tmp_path):
    run = tmp_path / "run"
    train_run(config(model_dir), run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(RunExistsError, match="config hash"):
        train_run(config(model_dir, "train.lr=0.02"), run)
    with pytest.raises(RunExistsError, match="complete"):
        train_run(config(model_dir), run)
    with pytest.raises(RunExistsError, match="never overwritten"):
        train_run(config(model_dir), run, resume=False)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cachemedicpp.train", *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_fails_closed_before_any_work(model_dir, tmp_path):
    opt_dir = tmp_path / "opt"
    OPTForCausalLM(
        OPTConfig(
            hidden_size=32,
            ffn_dim=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            vocab_size=50,
            word_embed_proj_dim=32,
        )
    ).save_pretrained(opt_dir)
    cfg = config(model_dir)
    cfg["model"]["name"] = str(opt_dir)
    path = tmp_path / "opt.yaml"
    path.write_text(yaml.safe_dump(cfg))
    done = cli("--config", str(path), "--run_dir", str(tmp_path / "run_opt"))
    assert done.returncode == 2, done.stderr
    assert "supports GPT-2, Llama, Qwen2 and Mistral" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run_opt").exists()
    done = cli("--config", str(path), "--run_dir", str(tmp_path / "run_bad"), "train.stepz=3")
    assert done.returncode == 2 and "train.stepz" in done.stderr


def test_cli_trains_and_resumes_by_rerunning(model_dir, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config(model_dir, "train.steps=2", "train.log_every=1")))
    run = tmp_path / "run"
    done = cli("--config", str(path), "--run_dir", str(run))
    assert done.returncode == 0, done.stderr
    assert "2 steps" in done.stdout
    again = cli("--config", str(path), "--run_dir", str(run))
    assert again.returncode == 4 and "complete" in again.stderr


def test_mve_local_runs_on_the_zoo_test_model(zoo_test_model, tmp_path):
    cfg = load_run_config(
        PROJECT / "configs" / "mve_local.yaml",
        [
            f"model.name={zoo_test_model('tiny-gpt2')}",
            "data.dataset=local:stories@test",
            "repair.protect_layers=[0, 1]",  # the test size has 2 layers
            "corruption.calibrate.n_windows=2",
            "train.steps=4",
        ],
    )
    run = tmp_path / "run"
    assert train_run(cfg, run)["steps"] == 4
    calibration = json.loads((run / "metrics" / "calibration.json").read_text())["metrics"]
    for kind, found in calibration["types"].items():
        assert calibration["grids"][kind] == [found["eps_star"] * m for m in (0, 0.25, 0.5, 1, 2)]
    # Calibration scores like the PPL eval: stride-64 windows, only their new tokens.
    model, tok = load_model(cfg)
    windows = sliding_windows(split_stream(cfg, tok, "calibration_split"), 128, 64, 2)
    assert windows[1].score_from == 64
    assert calibration["ppl_clean"] == pytest.approx(perplexity(model, windows), rel=1e-9)


@pytest.mark.parametrize(("power", "eps_max", "reached"), [(2, 2.0, True), (1, 0.1, False)])
def test_calibration_search_brackets_the_target(power, eps_max, reached):
    calls = []

    def increase(eps: float) -> float:
        calls.append(eps)
        return eps**power

    eps, inc = search_eps(increase, 0.25, 0.02, eps_max, 14)
    assert (abs(inc - 0.25) <= 0.02) is reached
    assert eps == (pytest.approx(0.5, abs=0.03) if reached else eps_max)
    assert len(calls) <= 15


def test_retrieval_term_trains_on_needle_answers_and_is_off_by_default(model_dir, tmp_path):
    cfg = config(model_dir)
    assert cfg["loss"]["retrieval"]["prob"] == 0  # off unless asked for: the ablation
    _, tok = load_model(cfg)
    spec = {**cfg["loss"]["retrieval"], "prob": 0.5}
    docs = RetrievalDocs(tok, spec, seed=7, max_len=256)
    draws = [docs.draw(s) for s in range(200)]
    assert [d is None for d in draws] == [docs.draw(s) is None for s in range(200)]  # seeded
    assert 60 < sum(d is not None for d in draws) < 140
    doc = next(d for d in draws if d is not None)
    assert doc.ids.shape[1] <= 256 and doc.answer_tokens >= 1
    # every step a needle document: training runs, and its KD reads the answer positions
    run = tmp_path / "run"
    train_run(config(model_dir, "loss.retrieval.prob=1.0", "train.steps=2"), run)
    logs = read_jsonl(run / "logs" / "train.jsonl").records
    assert [r["step"] for r in logs] == [2] and logs[0]["losses"]["kd"] >= 0
