"""Shared fixtures: configs, a host with every quantity known, and synthetic trial outcomes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dream.config import DreamConfig, load_config
from dream.host import HostInfo
from dream.runner import TrialOutcome


@pytest.fixture
def refuse_write(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """`refuse_write(name, text)`: writing `text` to any file called `name` fails as a kernel refusal."""
    real_write = Path.write_text

    def arm(name: str, text: str) -> None:
        def refuse(self: Path, value: str, *a: Any, **kw: Any) -> int:
            if self.name == name and value == text:
                raise PermissionError("Operation not permitted")
            return real_write(self, value, *a, **kw)

        monkeypatch.setattr(Path, "write_text", refuse)

    return arm


@pytest.fixture
def sysfs(tmp_path) -> Path:
    """A fake root with a block queue (vda) and vm sysctls at their code defaults."""
    root = tmp_path / "root"
    queue = root / "sys/block/vda/queue"
    queue.mkdir(parents=True)
    (queue / "scheduler").write_text("none [mq-deadline] kyber bfq\n")
    (queue / "read_ahead_kb").write_text("128\n")
    vm = root / "proc/sys/vm"
    vm.mkdir(parents=True)
    (vm / "dirty_ratio").write_text("20\n")
    (vm / "dirty_background_ratio").write_text("10\n")
    return root


@pytest.fixture
def cfg() -> DreamConfig:
    """The shipped regimes.yaml + caps.yaml under the local profile."""
    return load_config(profile="local")


@pytest.fixture
def full_host() -> HostInfo:
    """A 4-CPU host with a 65 W package limit, so every domain's genes resolve."""
    return HostInfo(cpus=(0, 1, 2, 3), tdp_w=65.0)


@pytest.fixture
def outcome() -> Callable[..., TrialOutcome]:
    """Factory for a successful trial with the given metrics (unset KPIs unmeasured)."""

    def make(trial: int = 0, **metrics: float | None) -> TrialOutcome:
        base: dict[str, float | None] = {
            "perf": None,
            "p95_ms": None,
            "watts": None,
            "temp_peak_c": None,
            "errors": 0.0,
            "oom": 0.0,
        }
        base.update(metrics)
        reasons = {k: "not measurable on this test host" for k, v in base.items() if v is None}
        return TrialOutcome(trial, True, 1, 0.01, base, reasons)

    return make


@pytest.fixture
def ctx(tmp_path, cfg):
    """An evaluation context writing under tmp_path, with a sensor-less fake sysfs root."""
    from dream.evaluator import EvalContext
    from dream.sensors import Sensors

    return EvalContext(
        cfg,
        tmp_path / "run",
        run_id="2025-01-01T00-00-00_r001",
        seed=11,
        sensors=Sensors(tmp_path / "nosys", temperatures=dict, sampling_ms=50),
        sleep=lambda s: None,
    )


@pytest.fixture
def baseline_record() -> Callable[..., dict]:
    """Factory for a stored-baseline-shaped record from KPI samples."""
    import numpy as np

    def make(domain: str, regime: str, samples: dict[str, list[float] | None]) -> dict:
        means = {k: None if v is None else float(np.mean(v)) for k, v in samples.items()}
        return {
            "baseline_id": f"{domain}_{regime}_2025-01-01T00-00-00",
            "kpis": means,
            "samples": samples,
        }

    return make


STOCK_PERF = [100.0, 101.0, 99.0, 100.5, 99.5]
STOCK_P95 = [2.0, 2.1, 1.9, 2.05, 1.95]
STOCK_WATTS = [50.0, 51.0, 49.0, 50.5, 49.5]
# The paired stock trial of block k reads STOCK[k] x PAIR_NOISE[k]: blocks differ a little, as on a
# real host, and the noise multiplies to exactly 1, so a candidate equal to STOCK has ratio 1.
PAIR_NOISE = [1.004, 1 / 1.004, 1.002, 1 / 1.002, 1.0]


def paired_series(outcome, cand: list[dict], stock: list[dict], failed=()):
    """A TrialSeries of ABBA blocks pairing candidate trial k with stock trial k."""
    from dream.evaluator import Block, TrialSeries

    series = TrialSeries([outcome(i, **m) for i, m in enumerate(cand)], "synthetic")
    series.stock = [outcome(i, **m) for i, m in enumerate(stock)]
    for i in failed:
        series.outcomes.append(
            TrialOutcome(len(cand) + i, False, 2, 0.1, reason="fio exited with status 1")
        )
    n = min(len(cand), len(stock))
    series.blocks = [Block("AB" if k % 2 == 0 else "BA", k, k) for k in range(n)]
    return series


@pytest.fixture
def evaluate(ctx, monkeypatch, outcome, baseline_record) -> Callable[..., dict]:
    """evaluate_candidate on cpu with synthetic ABBA blocks against the stock samples.

    The default genome moves thread_count, a gene every cpu regime declares.
    """
    from dream import evaluator
    from dream.config import REGIMES

    def run(*, perf=STOCK_PERF, p95=STOCK_P95, watts=STOCK_WATTS, extra=None, failed=(),
            stock=None, baselines=None, stage="full", cand_id="gen0_00",
            genome=None) -> dict:  # fmt: skip
        sp, sq, sw = stock or (STOCK_PERF, STOCK_P95, STOCK_WATTS)

        def fake_paired(ctx_, domain, regime, genome_, policy):
            cand = []
            for i in range(len(perf)):
                m = {
                    "perf": perf[i],
                    "p95_ms": p95[i],
                    "watts": None if watts is None else watts[i],
                }
                cand.append(m | (extra or {}).get((regime, i), {}))
            base = [
                {
                    "perf": sp[k] * f,
                    "p95_ms": sq[k] * f,
                    "watts": None if watts is None else sw[k] * f,
                }
                for k, f in enumerate(PAIR_NOISE[: len(sp)])
            ]
            return paired_series(outcome, cand, base, failed)

        monkeypatch.setattr(evaluator, "measure_paired", fake_paired)
        if baselines is None:
            samples = {"perf": sp, "p95_ms": sq, "watts": None if watts is None else sw}
            baselines = {r: baseline_record("cpu", r, samples) for r in REGIMES}
        spec = ctx.spec("cpu")
        g = {**spec.stock(), **(genome if genome is not None else {"thread_count": 1})}
        pack = evaluator.evaluate_candidate(
            ctx, "cpu", g, generation=0, cand_id=cand_id, stage=stage, baselines=baselines
        )
        return pack.to_dict()

    run.stock = (STOCK_PERF, STOCK_P95, STOCK_WATTS)
    run.noise = PAIR_NOISE
    return run


class SyntheticHost:
    """Stands in for the workloads: perf rises 5% with hugepages, temperature exceeds the cap at 1 CPU."""

    def __init__(self, outcome: Callable[..., TrialOutcome]) -> None:
        self.outcome = outcome
        self.scale = 1.0  # multiplies every perf: lets a test move the host under its baselines
        self.calls: list[tuple[str, str, dict]] = []

    def _trials(self, regime: str, genome: dict, n: int) -> list[dict]:
        gain = 1.05 if genome.get("hugepages_mb", 0) > 0 and regime == "mixed" else 1.0
        hot = 95.0 if genome.get("core_utilization") == 0.25 else None
        return [
            {
                "perf": 100.0 * gain * self.scale * (1 + 0.01 * (i % 3 - 1)),
                "p95_ms": 2.0 * (1 + 0.01 * (i % 2)),
                "temp_peak_c": hot,
            }
            for i in range(n)
        ]

    def measure(self, ctx, domain, regime, genome, policy):
        from dream.evaluator import TrialSeries

        self.calls.append((domain, regime, dict(genome)))
        n = max(policy.min_trials, policy.min_successful_trials)
        runs = [self.outcome(i, **m) for i, m in enumerate(self._trials(regime, genome, n))]
        return TrialSeries(runs, "synthetic")

    def paired(self, ctx, domain, regime, genome, policy):
        self.calls.append((domain, regime, dict(genome)))
        n = max(policy.min_trials, policy.min_successful_trials)
        noise = PAIR_NOISE * (n // len(PAIR_NOISE) + 1)
        stock = [
            m | {"perf": m["perf"] * noise[i]} for i, m in enumerate(self._trials(regime, {}, n))
        ]
        return paired_series(self.outcome, self._trials(regime, genome, n), stock)


@pytest.fixture
def synthetic(monkeypatch, outcome) -> SyntheticHost:
    """Every trial (baselines, candidates, drift reruns) comes from SyntheticHost, instantly."""
    from dream import baseline, evaluator, service

    host = SyntheticHost(outcome)
    for module in (evaluator, baseline, service):
        monkeypatch.setattr(module, "measure_regime", host.measure)
    monkeypatch.setattr(evaluator, "measure_paired", host.paired)
    return host


PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A PostgreSQL that answers: $DREAM_TEST_PG_URL (set by `make test`) or the machine's own.

    Outside CI a missing server skips the fleet tests with the reason; in CI (CI=true) it fails them,
    so a green CI always means the fleet ran against a real PostgreSQL.
    """
    import sqlalchemy

    url = os.environ.get("DREAM_TEST_PG_URL") or PG_DEFAULT
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        why = f"no PostgreSQL at {url} ({type(exc).__name__}); `make pg` starts one"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the fleet tests: {why}")
        pytest.skip(why)
    return url
