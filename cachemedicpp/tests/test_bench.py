"""The benchmark scripts run end to end at a tiny size and report consistent ratios."""

import importlib.util

import pytest

from cachemedicpp.config import PROJECT, load_run_config, resolve


def bench(name):
    spec = importlib.util.spec_from_file_location(name, PROJECT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_decode_overhead_reports_the_three_variants(gpt2):
    rep_cfg = resolve(
        {
            "model": {"name": "x"},
            "data": {"dataset": "x"},
            "repair": {"rank": 4, "protect_layers": [0, 1]},
        }
    )["repair"]
    out = bench("decode_overhead").measure(
        gpt2(n_layer=2, n_embd=32), rep_cfg, prompt_tokens=8, new_tokens=3, repeats=1
    )
    tps = out["tokens_per_s"]
    assert set(tps) == {"stock_eager", "patched_none", "patched_r_phi"}
    assert all(v > 0 for v in tps.values())
    assert out["ratio_r_phi_to_stock"] == pytest.approx(tps["patched_r_phi"] / tps["stock_eager"])
    d, r = 8, 4
    assert out["repair_params"] == 2 * (6 * d * r + 2 * r * r + 4 * r)  # design §5, option A


def small_config(model_dir, **extra):
    return resolve(
        {
            "threads": 1,
            "model": {"name": str(model_dir)},
            "data": {"dataset": "local:stories@test", "prefix_tokens": 32},
            "corruption": {"axes": {"head_mode": "all", "n_recent": 8}},
            "repair": {"rank": 4, "protect_layers": [0, 1]},
            "loss": {"kd_positions": 8},
            **extra,
        }
    )


def test_train_step_times_steps_against_teacher_forwards(model_dir):
    out = bench("train_step").measure(small_config(model_dir), steps=2)
    assert out["steps"] == 2 and out["train_step_s"] > 0 and out["teacher_forward_s"] > 0
    assert out["ratio_step_to_forward"] == pytest.approx(
        out["train_step_s"] / out["teacher_forward_s"]
    )


def test_identity_gate_holds_on_the_zoo_llama_and_fails_on_damage(zoo_test_model):
    cfg = load_run_config(
        PROJECT / "configs" / "mve_llama_local.yaml",
        [
            f"model.name={zoo_test_model('tiny-llama')}",
            "data.dataset=local:stories@test",
            "eval.wikitext2_ppl.dataset=local:stories@test",
            "repair.protect_layers=[0, 1]",  # the test size has 2 layers
        ],
    )
    gate = bench("identity_gate").measure(cfg, windows=2, decode=6)
    assert gate["prompt_tokens"] == 122 and gate["decode_steps"] == 6
    assert gate["max_abs_logit_diff_all"] <= 1e-4
    damaged = bench("identity_gate").measure(cfg, windows=2, decode=6, eps=0.5)
    assert damaged["max_abs_logit_diff"]["prefill"] > 1e-2
    assert damaged["max_abs_logit_diff"]["decode"] > 1e-2


def test_eval_scoring_paths_give_the_same_bits_and_report_ratios(model_dir):
    sst2 = {"dataset": "local:sentiment", "dataset_config": None, "filler_tokens": 8}
    cfg = small_config(model_dir, eval={"sst2_prompted": sst2})
    mod = bench("eval_scoring")
    for out in (mod.bench_sst2(cfg, 3, 1), mod.bench_quant_fit(2), mod.bench_progress(3)):
        assert out["same"] is True
        assert out["speedup"] == pytest.approx(out["old_s"] / out["new_s"])
