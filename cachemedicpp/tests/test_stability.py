import json
import shutil

import pytest
import torch

from cachemedicpp.config import resolve, schema
from cachemedicpp.eval import eval_run
from cachemedicpp.modeling import load_model
from cachemedicpp.stability import Probe, prompt_unit, region_mask, stability_run
from cachemedicpp.train import train_run
from labkit.config import validate
from labkit.control import request_pause
from labkit.errors import MissingInputError, Paused

STABILITY = [
    "stability.prompts=3",
    "stability.prompt_tokens=40",
    "stability.delta_norms=[0.0,0.5,1.0]",
    "stability.directions=2",
    "stability.top_k=50",
]


def cfg_of(model_dir):
    raw = {
        "seed": 7,
        "threads": 1,
        "model": {"name": str(model_dir)},
        "data": {"dataset": "local:stories@test", "prefix_tokens": 48},
        "corruption": {"axes": {"head_mode": "all", "n_recent": 8}},
        "repair": {"rank": 4, "protect_layers": [0, 1]},
        "loss": {"kd_positions": 16},
        "train": {"steps": 2, "log_every": 1, "checkpoint_every": 2, "lr": 0.01},
        "eval": {
            "tasks": ["wikitext2_ppl"],
            "corruption_eval": ["gaussian"],
            "eps": [0.0, 0.08],
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
    }
    return resolve(raw, STABILITY)


@pytest.fixture(scope="module")
def evaluated(model_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("stab") / "run"
    cfg = cfg_of(model_dir)
    train_run(cfg, run)
    eval_run(cfg, run)
    return run


def test_delta_has_the_relative_norm_and_stays_in_its_support(model_dir):
    cfg = cfg_of(model_dir)
    model, _ = load_model(cfg)
    ids = torch.arange(2, 42)[None]
    probe = Probe(model, ids, [0, 1])
    mask = region_mask(cfg, 39)
    assert mask.sum() == 39 - 8  # old_only with n_recent 8
    for head in (None, 2):
        delta = probe.direction((1, "t"), mask, head=head)
        for layer, (dk, dv) in delta.items():
            k, v = probe.clean[layer]
            m = mask[None, None, :, None].float().expand_as(k).clone()
            if head is not None:
                m[:, [h for h in range(k.shape[1]) if h != head]] = 0
            target = torch.sqrt((k * m).pow(2).sum() + (v * m).pow(2).sum())
            assert torch.sqrt(dk.pow(2).sum() + dv.pow(2).sum()) == pytest.approx(
                target.item(), rel=1e-5
            )
            assert torch.all(dk[m == 0] == 0) and torch.all(dv[m == 0] == 0)
    assert torch.equal(probe.direction((1, "t"), mask)[0][0], probe.direction((1, "t"), mask)[0][0])
    z = probe.logits(None)
    with torch.no_grad():
        stock = model(ids).logits[0, -1]
    assert torch.allclose(z, stock, atol=1e-4)  # S is the clean cache: the stock last-token logits


def test_stability_metrics_and_resume(model_dir, evaluated, tmp_path):
    cfg = cfg_of(model_dir)
    straight = tmp_path / "a"
    shutil.copytree(evaluated, straight)
    record = stability_run(cfg, straight)
    validate(record, schema("metric_record"))
    st = record["metrics"]["stability"]
    curves = st["logit_sensitivity"]
    assert [c["delta_norm"] for c in curves] == [0.0, 0.5, 1.0]
    assert curves[0]["baseline"] == 0 and curves[0]["baseline_drift"] == 0
    assert curves[2]["baseline"] > curves[1]["baseline"] > 0
    assert {"heuristics", "cachemedic", "cachemedic_drift"} <= set(curves[0])
    amp = st["amplification_map"]
    assert amp["layers"] == [0, 1] and len(amp["baseline"]) == 2 and len(amp["baseline"][0]) == 4
    assert all(g > 0 for row in amp["cachemedic"] for g in row)
    assert (straight / "metrics" / "stability_progress.json").is_file()

    paused = tmp_path / "b"
    shutil.copytree(evaluated, paused)
    request_pause(paused)
    with pytest.raises(Paused):
        stability_run(cfg, paused, pause_check_s=0)
    progress = json.loads((paused / "metrics" / "stability_progress.json").read_text())
    assert len(progress["prompts"]) == 1
    assert stability_run(cfg, paused)["metrics"] == record["metrics"]


def test_stability_needs_the_eval_metrics(model_dir, tmp_path):
    cfg = cfg_of(model_dir)
    run = tmp_path / "run"
    train_run(cfg, run)
    with pytest.raises(MissingInputError):
        stability_run(cfg, run)


def test_gamma_follows_delta_scale(model_dir):
    model, _ = load_model(cfg_of(model_dir))
    ids = torch.arange(2, 42)[None]
    gamma = {}
    for scale in ("relative", "rms"):
        cfg = resolve(cfg_of(model_dir), [f"stability.delta_scale={scale}"])
        unit = prompt_unit(cfg, model, ids, 0, {"baseline": None}, [0, 1])
        gamma[scale] = torch.tensor(unit["gamma"]["baseline"])
    # γ is read at δn = 1 in the configured scale, so the two scales give different gains
    assert not torch.allclose(gamma["relative"], gamma["rms"])
