"""Calibrate on dataset A at g=1: per-unit mu and sigma, baseline layer rates at tau0, target rates."""

from __future__ import annotations

import numpy as np

from avalanche_llm import canon
from avalanche_llm.conditions import condition_key, rate_targets
from avalanche_llm.events.rate_match import layer_targets
from avalanche_llm.events.spike import spike_counts
from avalanche_llm.events.standardize import MomentAccumulator
from avalanche_llm.events.stream import stream_spike_values
from avalanche_llm.model.forward import forward_windows
from avalanche_llm.runs import PhaseContext

STAGE = "S01"
NEEDS: tuple[str, ...] = ()
PRODUCES_RUN = True


def check(ctx: PhaseContext) -> None:
    """The model and dataset A resolve (offline hub ids fail here, before a run directory exists)."""
    ctx.require_inputs("A")


def run(ctx: PhaseContext) -> None:
    """Two passes over the calibration slice: moments, then exceedances of tau0."""
    run = ctx.run
    lm = ctx.model()
    sl = ctx.slice("A_cal", anchor=ctx.run_id)
    batch = ctx.cfg["runtime"]["batch_size"]
    spike_defs = ctx.const("SPIKE_DEFS")
    tau0 = ctx.const("TAU0_BASELINE")
    run.update(model=lm.describe(), dataset={"A": sl.describe()})
    run.set_slice_hash(sl.sha256)
    n_windows = sl.windows.shape[0]
    with ctx.heartbeat(2 * n_windows) as hb:
        moments = MomentAccumulator(lm.n_layers, lm.d_ff)
        forward_windows(
            lm,
            sl.windows,
            batch,
            u_sink=lambda layer, u, _rows: moments.add(layer, u),
            on_batch=hb.beat,
        )
        mu, sigma = moments.finalize()
        counts = {sd: np.zeros(lm.n_layers, np.int64) for sd in spike_defs}

        def count(layer: int, vs: dict, _rows: slice) -> None:
            for sd in spike_defs:
                counts[sd][layer] += int(spike_counts(vs[sd], [tau0]).sum())

        stream_spike_values(
            lm,
            sl.windows,
            batch_size=batch,
            mu=mu,
            sigma=sigma,
            eps=ctx.const("EPS"),
            spike_defs=spike_defs,
            gain=ctx.const("GAIN_BASELINE"),
            consumer=count,
        )
        hb.beat(2 * n_windows)
    sites = float(moments.counts[0]) * lm.d_ff
    r_base = {sd: counts[sd] / sites for sd in spike_defs}
    rates = rate_targets(ctx.pipeline, lm.d_ff)
    r_star = {sd: {r.key: layer_targets(r_base[sd], r.rho) for r in rates} for sd in spike_defs}
    run.write_npz(
        canon.output("CALIBRATION_STATS_NPZ"),
        {"mu": mu, "sigma": sigma, "n_samples": moments.counts},
        name="CALIBRATION_STATS_NPZ",
    )
    run.write_json(
        canon.output("RATE_TARGETS_JSON"),
        {
            "tau0": tau0,
            "spike_defs": spike_defs,
            "rates": [{"key": r.key, "rho": r.rho, "spec": r.spec} for r in rates],
            "n_layers": lm.n_layers,
            "d_ff": lm.d_ff,
            "samples_per_layer": int(sites),
            "r_base_l": {sd: v.tolist() for sd, v in r_base.items()},
            "r_star_l": {sd: {k: v.tolist() for k, v in per.items()} for sd, per in r_star.items()},
        },
        name="RATE_TARGETS_JSON",
    )
    run.write_json(canon.output("SLICE_JSON"), {sl.name: sl.describe()}, name="SLICE_JSON")
    run.update(
        conditions=[
            {"key": condition_key(sd, r.key), "spike_def": sd, "rate_key": r.key, "rho": r.rho}
            for sd in spike_defs
            for r in rates
        ]
    )
    ctx.log("calibrated", r_base_mean={sd: float(v.mean()) for sd, v in r_base.items()})
