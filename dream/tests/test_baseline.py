"""Baselines come from the stock genome, are pinned by hashes, reused, refreshed, and checked for drift."""

from __future__ import annotations

import re

import pytest

from dream import baseline as baseline_mod
from dream.baseline import BaselineError, BaselineStore, detect_drift, ensure_baselines
from dream.config import REGIMES, load_config
from dream.evaluator import TrialSeries
from dream.runner import TrialOutcome
from labkit.errors import SchemaError


@pytest.fixture
def measured(monkeypatch, outcome):
    calls = []

    def fake_measure(ctx, domain, regime, genome, policy):
        calls.append((regime, dict(genome)))
        runs = [outcome(i, perf=100.0 + i, p95_ms=1.0 + 0.1 * i) for i in range(4)]
        return TrialSeries(runs, "synthetic")

    monkeypatch.setattr(baseline_mod, "measure_regime", fake_measure)
    return calls


def test_baselines_are_measured_from_the_stock_genome(ctx, measured):
    store = BaselineStore(ctx.artifacts / "baselines.json")
    records = ensure_baselines(ctx, store, "cpu")
    stock = ctx.spec("cpu").stock()
    assert [r for r, _ in measured] == list(REGIMES)
    assert all(genome == stock for _, genome in measured)
    rec = records["mixed"]
    assert re.fullmatch(r"cpu_mixed_\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d", rec["baseline_id"])
    assert rec["genome"] == stock and rec["kpis"]["perf"] == 101.5
    assert rec["samples"]["perf"] == [100.0, 101.0, 102.0, 103.0]
    assert rec["kpis"]["watts"] is None and rec["unavailable"]["watts"]
    reread = BaselineStore(ctx.artifacts / "baselines.json")
    assert set(reread.data["cpu"]) == set(REGIMES) and reread.data["schema"] == "baselines.v2"


def test_current_baselines_are_reused_until_refreshed_or_invalidated(ctx, measured):
    store = BaselineStore(ctx.artifacts / "baselines.json")
    ensure_baselines(ctx, store, "cpu")
    ensure_baselines(ctx, store, "cpu")
    assert len(measured) == 4
    ensure_baselines(ctx, store, "cpu", regimes=["idle"], refresh=True)
    assert len(measured) == 5
    ctx.cfg = load_config(overrides=["regimes.profiles.local.durations_s.stress=3"])
    ensure_baselines(ctx, store, "cpu")
    assert [r for r, _ in measured[5:]] == ["stress"]  # only the regime whose definition changed


def test_a_stock_genome_that_cannot_be_measured_is_an_error_not_a_baseline(ctx, monkeypatch):
    def broken(ctx_, domain, regime, genome, policy):
        runs = [TrialOutcome(i, False, 2, 0.1, reason="stress-ng wrote no --yaml metrics file")
                for i in range(2)]  # fmt: skip
        return TrialSeries(runs, "2 failed trials > max_trial_failures")

    monkeypatch.setattr(baseline_mod, "measure_regime", broken)
    store = BaselineStore(ctx.artifacts / "baselines.json")
    with pytest.raises(BaselineError, match=r"cpu/idle: 0 of 2 trials succeeded, 3 needed; first "
                       r"failure: stress-ng wrote no --yaml"):  # fmt: skip
        ensure_baselines(ctx, store, "cpu")
    assert not (ctx.artifacts / "baselines.json").exists()


def test_a_corrupt_baselines_file_is_refused(tmp_path):
    path = tmp_path / "baselines.json"
    path.write_text('{"schema": "baselines.v1"}')
    with pytest.raises(SchemaError, match=r"baselines\.v2"):
        BaselineStore(path)
    path.write_text("{")
    with pytest.raises(SchemaError, match="not valid JSON"):
        BaselineStore(path)


def test_drift_needs_a_significant_and_large_change():
    record = {"samples": {"perf": [100.0, 101.0, 99.0, 100.5, 99.5]}}
    assert detect_drift(record, [90.0, 91.0, 89.5])["drift"] is True
    assert detect_drift(record, [98.0, 98.5, 97.5])["drift"] is False  # significant but < 5 %
    assert detect_drift(record, [90.0])["drift"] is None
