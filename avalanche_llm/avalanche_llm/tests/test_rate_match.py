"""Rate-matched thresholds on synthetic values: exact hits, an oracle, and a gate that can fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from avalanche_llm.conditions import RateTarget
from avalanche_llm.errors import GateError
from avalanche_llm.events.calibration import Calibration, fit_at_gain, taus_from_table
from avalanche_llm.events.rate_match import check_gate, fit_thresholds, layer_targets
from avalanche_llm.events.spike import spike_counts
from avalanche_llm.model.gain import apply_gain
from avalanche_llm.model.hooks import capture_u, mlp_width, n_layers
from avalanche_llm.model.loader import LoadedModel
from avalanche_llm.phases.phase4_run_nulls import tau_rows
from avalanche_llm.raster.build import extract_rasters
from avalanche_llm.tests.tiny_models import VOCAB, tiny_llama
from labkit.errors import MissingInputError

BINS, EDGE = 4096, 1e-3
TOL = {"tol_abs": 5e-4, "tol_rel": 0.05, "min_samples": 20000}


def synthetic(n_layers: int = 3, n: int = 60000, seed: int = 0) -> list[np.ndarray]:
    """Heavy-tailed float32 values per layer (Student t, 3 dof, layer-dependent scale)."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_t(3, n) * (1 + layer)).astype(np.float32) for layer in range(n_layers)]


def stream(values: list[np.ndarray], batch: int):
    """A run_pass over per-layer arrays in batches, as the model stream would deliver them."""

    def run_pass(consumer):
        n = values[0].size
        for start in range(0, n, batch):
            rows = slice(start, min(start + batch, n))
            for layer, v in enumerate(values):
                consumer(layer, {"SD": torch.from_numpy(v[rows])}, rows)

    return run_pass


def test_thresholds_equal_the_sorted_order_statistic():
    values = synthetic()
    targets = {"SD": {"a": np.array([1e-3, 4e-4, 2e-2]), "b": np.array([5e-5, 1e-4, 1.0])}}
    fits = fit_thresholds(stream(values, 7001), targets, 3, BINS, EDGE)
    for rk, target in targets["SD"].items():
        fit = fits["SD"][rk]
        for layer, v in enumerate(values):
            k = int(np.floor(target[layer] * v.size))
            assert np.count_nonzero(v > fit.tau[layer]) == k
            assert fit.achieved[layer] == k / v.size
            if k < v.size:
                assert fit.tau[layer] == np.sort(v)[::-1][k]
    check_gate(fits, **TOL, where="synthetic")


def test_batching_does_not_change_thresholds():
    values = synthetic(seed=3)
    targets = {"SD": {"a": np.array([2e-3, 2e-3, 2e-3])}}
    a = fit_thresholds(stream(values, 60000), targets, 3, BINS, EDGE)["SD"]["a"].tau
    b = fit_thresholds(stream(values, 999), targets, 3, BINS, EDGE)["SD"]["a"].tau
    assert np.array_equal(a, b)


def test_gate_fails_when_ties_make_the_target_unreachable():
    # Integer-valued v: the exceedance rate can only jump between the tail masses of whole values.
    rng = np.random.default_rng(1)
    values = [rng.integers(0, 4, 50000).astype(np.float32)]
    fits = fit_thresholds(stream(values, 5000), {"SD": {"a": np.array([0.1])}}, 1, BINS, EDGE)
    fit = fits["SD"]["a"]
    assert abs(fit.achieved[0] - 0.1) > 5e-4
    with pytest.raises(GateError, match=r"SD\|a layer 0"):
        check_gate(fits, **TOL, where="ties")


def test_a_tie_group_at_the_target_spikes_when_that_lands_nearer():
    # k* = 1000: 950 distinct values above a group of 60 equal ones (as bf16 puts a unit's tail on a
    # grid). Silent, the group leaves the rate 5 % short; spiking, it is 1 % over: tau goes below it.
    rng = np.random.default_rng(4)
    top = 10.0 + rng.random(950)
    values = [np.concatenate([top, np.full(60, 5.0), rng.normal(size=48990)]).astype(np.float32)]
    fit = fit_thresholds(stream(values, 5000), {"SD": {"a": np.array([0.02])}}, 1, BINS, EDGE)["SD"]
    assert fit["a"].tau[0] < 5.0 and fit["a"].tied[0] == 60
    assert np.count_nonzero(values[0] > fit["a"].tau[0]) == 1010 == fit["a"].achieved[0] * 50000
    check_gate({"SD": fit}, **TOL, where="a tie group")
    # With 100 of them the group misses either way (950 or 1050 of 1000), and the gate says why.
    values = [np.concatenate([top, np.full(100, 5.0), rng.normal(size=48950)]).astype(np.float32)]
    fits = fit_thresholds(stream(values, 5000), {"SD": {"a": np.array([0.02])}}, 1, BINS, EDGE)
    assert fits["SD"]["a"].tau[0] == 5.0  # equally far: the group stays silent
    with pytest.raises(GateError, match="100 values tied at tau"):
        check_gate(fits, **TOL, where="a large tie group")


def test_relative_tolerance_fails_where_the_absolute_one_cannot():
    # At r* = 1e-4 a threshold that fires nowhere misses by 1e-4 < 5e-4 absolute, yet by 100%.
    rng = np.random.default_rng(2)
    values = [np.concatenate([rng.normal(size=49990), np.full(10, 50.0)]).astype(np.float32)]
    fits = fit_thresholds(stream(values, 5000), {"SD": {"a": np.array([1e-4])}}, 1, BINS, EDGE)
    fit = fits["SD"]["a"]
    assert fit.achieved[0] == 0.0 and fit.abs_err[0] <= 5e-4
    with pytest.raises(GateError, match="rate gate failed"):
        check_gate(fits, **TOL, where="ties at the top")
    check_gate(fits, tol_abs=5e-4, tol_rel=np.inf, min_samples=20000, where="absolute only")


def test_gate_fails_on_too_few_samples():
    values = synthetic(n_layers=1, n=5000)
    fits = fit_thresholds(stream(values, 5000), {"SD": {"a": np.array([1e-2])}}, 1, BINS, EDGE)
    with pytest.raises(GateError, match="n=5000"):
        check_gate(fits, **TOL, where="small")


def test_layer_targets_keep_the_profile_and_mean():
    r_base = np.array([0.01, 0.03, 0.02])
    r = layer_targets(r_base, 1e-3)
    assert r.mean() == pytest.approx(1e-3)
    assert np.allclose(r / r_base, r[0] / r_base[0])
    assert layer_targets(np.array([0.5, 0.0]), 1.5).tolist() == [1.0, 0.0]
    with pytest.raises(GateError):
        layer_targets(np.zeros(3), 1e-3)


def test_spike_counts_are_a_strict_comparison_even_at_ties():
    v = torch.randn(3, 5, 40, generator=torch.Generator().manual_seed(0))
    taus = [float(v[0, 0, 0]), float(v[2, 4, 39]), 0.0, -1.5]  # two equal an observed value
    got = spike_counts(v, taus)
    assert got.dtype == torch.int32 and got.shape == (4, 3, 5)
    for k, tau in enumerate(taus):
        assert torch.equal(got[k], (v > tau).sum(dim=-1, dtype=torch.int32))


def test_rasters_of_several_rates_equal_counts_from_the_captured_u():
    model = tiny_llama(layers=2)
    lm = LoadedModel(
        model, None, "tiny", None, "gated", n_layers(model), mlp_width(model), torch.device("cpu")
    )
    rng = np.random.default_rng(2)
    windows = rng.integers(0, VOCAB, (6, 16))
    mu, sigma = rng.normal(0, 0.1, (2, lm.d_ff)), rng.uniform(0.05, 0.2, (2, lm.d_ff))
    taus = {
        (sd, rk): rng.uniform(0.5, 3.0, 2)
        for rk in ("b", "a", "c")
        for sd in ("SPIKE_TWO_SIDED_ABS", "SPIKE_ONE_SIDED_POS")
    }
    rasters = extract_rasters(
        lm, windows, taus, batch_size=6, mu=mu, sigma=sigma, eps=1e-6, gain=1.2
    )
    assert list(rasters) == list(taus)
    us: dict[int, torch.Tensor] = {}
    ids = torch.as_tensor(windows)
    keep = lambda layer, u: us.__setitem__(layer, u.clone())  # noqa: E731
    with torch.inference_mode(), apply_gain(model, 1.2), capture_u(model, keep):
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    for (sd, rk), tau in taus.items():
        for layer in range(2):
            z = (us[layer] - torch.as_tensor(mu[layer], dtype=torch.float32)) / (
                torch.as_tensor(sigma[layer], dtype=torch.float32) + 1e-6
            )
            v = z.abs() if sd == "SPIKE_TWO_SIDED_ABS" else z
            expected = (v > float(tau[layer])).sum(dim=-1).numpy()
            assert np.array_equal(rasters[sd, rk][:, layer, :], expected), (sd, rk, layer)
        assert rasters[sd, rk].dtype == np.uint16 and rasters[sd, rk].any()


def test_model_thresholds_reproduce_their_rate_in_the_rasters():
    model = tiny_llama()
    lm = LoadedModel(
        model, None, "tiny", None, "gated", n_layers(model), mlp_width(model), torch.device("cpu")
    )
    rng = np.random.default_rng(0)
    windows = rng.integers(0, VOCAB, (24, 32))
    L, d = lm.n_layers, lm.d_ff
    targets = {sd: {"r": np.full(L, 4e-3)} for sd in ("SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS")}
    cal = Calibration(
        mu=np.zeros((L, d)),
        sigma=np.ones((L, d)),
        spike_defs=sorted(targets),
        rates=[RateTarget("r", 4e-3, "layer_rate")],
        r_base={},
        targets=targets,
    )
    pipeline = {
        "eps": 1e-6,
        "rate_match_hist_bins": BINS,
        "rate_match_edge_round_abs": EDGE,
        "rate_match_tol_abs": 5e-4,
        "rate_match_tol_rel": 0.05,
        "rate_match_min_cal_samples": 20000,
    }
    for gain in (1.0, 1.3):
        fits = fit_at_gain(lm, windows, cal, pipeline, gain=gain, batch_size=5)
        taus = {(sd, "r"): fits[sd]["r"].tau for sd in targets}
        rasters = extract_rasters(
            lm, windows, taus, batch_size=7, mu=cal.mu, sigma=cal.sigma, eps=1e-6, gain=gain
        )
        for sd in targets:
            per_layer = rasters[sd, "r"].sum(axis=(0, 2)) / (windows.size * d)
            assert np.array_equal(per_layer, fits[sd]["r"].achieved)


def test_tau_table_round_trip_and_logits_in_the_raster_pass():
    model = tiny_llama(layers=2)
    lm = LoadedModel(
        model, None, "tiny", None, "gated", n_layers(model), mlp_width(model), torch.device("cpu")
    )
    windows = np.random.default_rng(1).integers(0, VOCAB, (30, 32))
    targets = {"SPIKE_TWO_SIDED_ABS": {"r": np.full(2, 1e-2)}}
    cal = Calibration(
        mu=np.zeros((2, 48)),
        sigma=np.ones((2, 48)),
        spike_defs=["SPIKE_TWO_SIDED_ABS"],
        rates=[RateTarget("r", 1e-2, "layer_rate")],
        r_base={},
        targets=targets,
    )
    pipeline = {
        "eps": 1e-6,
        "rate_match_hist_bins": BINS,
        "rate_match_edge_round_abs": EDGE,
        "rate_match_tol_abs": 5e-4,
        "rate_match_tol_rel": 0.05,
        "rate_match_min_cal_samples": 20000,
    }
    fits = fit_at_gain(lm, windows, cal, pipeline, gain=1.1, batch_size=8)
    table = pd.DataFrame(tau_rows(fits, 1.1, pipeline) + tau_rows(fits, 0.9, pipeline))
    taus = taus_from_table(table, 1.1)
    assert np.array_equal(taus["SPIKE_TWO_SIDED_ABS", "r"], fits["SPIKE_TWO_SIDED_ABS"]["r"].tau)
    with pytest.raises(MissingInputError):
        taus_from_table(table, 1.3)
    logits = torch.zeros(30, 32, VOCAB)
    extract_rasters(
        lm,
        windows,
        taus,
        batch_size=8,
        mu=cal.mu,
        sigma=cal.sigma,
        eps=1e-6,
        gain=1.1,
        logits_sink=lambda out, rows: logits.__setitem__(rows, out),
    )
    with torch.inference_mode(), apply_gain(model, 1.1):
        expected = model(input_ids=torch.as_tensor(windows)).logits
    assert torch.allclose(logits, expected, atol=1e-5)
