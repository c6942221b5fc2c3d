"""Shared fixtures: configs, a host with every quantity known, and synthetic trial outcomes."""

from __future__ import annotations

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


@pytest.fixture
def evaluate(ctx, monkeypatch, outcome, baseline_record) -> Callable[..., dict]:
    """evaluate_candidate on cpu with synthetic trials; baselines default to the stock samples."""
    from dream import evaluator
    from dream.config import REGIMES
    from dream.evaluator import TrialSeries

    def run(*, perf=STOCK_PERF, p95=STOCK_P95, watts=STOCK_WATTS, extra=None, failed=(),
            baselines=None, stage="full", cand_id="gen0_00") -> dict:  # fmt: skip
        def fake_measure(ctx_, domain, regime, genome, policy, prior=()):
            runs = []
            for i in range(len(perf)):
                metrics = {
                    "perf": perf[i],
                    "p95_ms": p95[i],
                    "watts": None if watts is None else watts[i],
                }
                metrics |= (extra or {}).get((regime, i), {})
                runs.append(outcome(i, **metrics))
            for i in failed:
                runs.append(
                    TrialOutcome(len(perf) + i, False, 2, 0.1, reason="fio exited with status 1")
                )
            return TrialSeries(runs, "synthetic")

        monkeypatch.setattr(evaluator, "measure_regime", fake_measure)
        if baselines is None:
            samples = {
                "perf": STOCK_PERF,
                "p95_ms": STOCK_P95,
                "watts": None if watts is None else STOCK_WATTS,
            }
            baselines = {r: baseline_record("cpu", r, samples) for r in REGIMES}
        genome = ctx.spec("cpu").stock()
        pack = evaluator.evaluate_candidate(
            ctx, "cpu", genome, generation=0, cand_id=cand_id, stage=stage, baselines=baselines
        )
        return pack.to_dict()

    run.stock = (STOCK_PERF, STOCK_P95, STOCK_WATTS)
    return run


class SyntheticHost:
    """Stands in for the workloads: perf rises 5% with hugepages, temperature exceeds the cap at 1 CPU."""

    def __init__(self, outcome: Callable[..., TrialOutcome]) -> None:
        self.outcome = outcome
        self.scale = 1.0  # multiplies every perf: lets a test move the host under its baselines
        self.calls: list[tuple[str, str, dict, int]] = []

    def measure(self, ctx, domain, regime, genome, policy, prior=()):
        from dream.evaluator import TrialSeries

        self.calls.append((domain, regime, dict(genome), len(prior)))
        n = max(policy.min_trials, policy.min_successful_trials)
        gain = 1.05 if genome.get("hugepages_mb", 0) > 0 else 1.0
        hot = 95.0 if genome.get("core_utilization") == 0.25 else None
        runs = [
            self.outcome(
                i,
                perf=100.0 * gain * self.scale * (1 + 0.01 * (i % 3 - 1)),
                p95_ms=2.0 * (1 + 0.01 * (i % 2)),
                temp_peak_c=hot,
            )
            for i in range(len(prior), max(n, len(prior)))
        ]
        return TrialSeries([*prior, *runs], "synthetic")


@pytest.fixture
def synthetic(monkeypatch, outcome) -> SyntheticHost:
    """Every trial (baselines, candidates, drift reruns) comes from SyntheticHost, instantly."""
    from dream import baseline, evaluator, service

    host = SyntheticHost(outcome)
    for module in (evaluator, baseline, service):
        monkeypatch.setattr(module, "measure_regime", host.measure)
    return host
