"""Trials of real processes: crashes, hangs and garbage become failed trials with reasons, never numbers."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dream.actuators import Actuation
from dream.config import REGIMES, load_config
from dream.domains import genome_spec
from dream.host import SCRIPTS_DIR, HostInfo
from dream.runner import run_trial
from dream.sensors import Reading, Sensors
from dream.workloads import WorkloadCommand, build_command

HOST = HostInfo.detect()


def _script(tmp_path: Path, name: str, body: str) -> WorkloadCommand:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return WorkloadCommand("script", (sys.executable, str(path)), 1.0)


def _run(
    cmd: WorkloadCommand, tmp_path: Path, *, timeout: float = 10, retries: int = 1, sensors=None
):
    return run_trial(
        lambda wd: cmd,
        trial=4,
        timeout_s=timeout,
        retries=retries,
        sensors=sensors or Sensors(tmp_path / "nosys", temperatures=dict, sampling_ms=50),
        probe=(1.0, 10.0),
        required=("perf", "p95_ms", "watts"),
        scratch_root=tmp_path / "scratch",
    )


def _gone(pid: int, wait_s: float = 3.0) -> bool:
    # SIGKILL lands asynchronously; a killed orphan may linger as a zombie until its new parent reaps it.
    deadline = time.monotonic() + wait_s
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X") or time.monotonic() > deadline:
            return state in ("Z", "X")
        time.sleep(0.05)


def test_a_crash_is_a_failed_trial_after_its_retries(tmp_path):
    out = _run(
        _script(tmp_path, "crash", "import sys; print('boom', file=sys.stderr); sys.exit(3)"),
        tmp_path,
    )
    assert not out.ok and out.metrics == {}
    assert out.attempts == 2
    assert out.reason == "script exited with status 3: boom"
    assert out.failure_record() == {"trial": 4, "attempts": 2, "reason": out.reason, "sensors": {}}


def test_garbage_output_is_a_failed_trial(tmp_path):
    out = _run(_script(tmp_path, "garbage", "print('perf=fast p95=low')"), tmp_path, retries=0)
    assert not out.ok and out.attempts == 1
    assert "not JSON" in out.reason


def test_a_hang_is_killed_with_its_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    body = f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "300"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        time.sleep(300)
    """
    out = _run(_script(tmp_path, "hang", body), tmp_path, timeout=1.5, retries=0)
    assert not out.ok
    assert out.reason.startswith("timed out after") and "process group killed" in out.reason
    assert out.elapsed_s < 10
    assert _gone(int(pidfile.read_text()))


def test_children_left_behind_by_a_good_trial_are_killed(tmp_path):
    pidfile = tmp_path / "stray.pid"
    body = f"""
        import json, subprocess
        child = subprocess.Popen(["sleep", "300"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print(json.dumps({{"perf": 3.0, "p95_ms": 2.0, "errors": 0}}))
    """
    out = _run(_script(tmp_path, "stray", body), tmp_path)
    assert out.ok and out.metrics["perf"] == 3.0
    assert _gone(int(pidfile.read_text()))


def test_a_retry_rescues_a_flaky_trial(tmp_path):
    marker = tmp_path / "tried"
    body = f"""
        import json, os, sys
        if not os.path.exists({str(marker)!r}):
            open({str(marker)!r}, "w").close()
            sys.exit(1)
        print(json.dumps({{"perf": 5.0, "p95_ms": 1.5}}))
    """
    cmd = _script(tmp_path, "flaky", body)
    assert not _run(cmd, tmp_path, retries=0).ok
    marker.unlink()
    out = _run(cmd, tmp_path, retries=1)
    assert out.ok and out.attempts == 2
    assert out.metrics["errors"] is None and "does not report errors" in out.reasons["errors"]
    assert out.metrics["watts"] is None and "RAPL" in out.reasons["watts"]
    assert not any((tmp_path / "scratch").iterdir())  # scratch dirs are removed


class _PowerMeterThatReadsNothing(Sensors):
    def unmeasurable(self) -> dict[str, str]:
        return {}

    def start(self):
        class Run:
            def stop(self) -> Reading:
                return Reading(values={"watts": None}, reasons={"watts": "no sample"})

        return Run()


def test_a_required_kpi_that_is_measurable_but_missing_fails_the_trial(tmp_path):
    cmd = _script(tmp_path, "ok", 'print(\'{"perf": 1.0, "p95_ms": 1.0}\')')
    out = _run(cmd, tmp_path, retries=0, sensors=_PowerMeterThatReadsNothing(tmp_path))
    assert not out.ok and "required KPI watts" in out.reason


RUNNABLE = [(d, r) for d in ("cpu", "memory", "storage", "os_scheduler") for r in REGIMES]


@pytest.mark.parametrize(("domain", "regime"), RUNNABLE)
def test_real_workloads_give_numbers(tmp_path, domain, regime):
    cfg = load_config(overrides=[f"regimes.profiles.local.durations_s.{regime}=1"])
    stock = genome_spec(domain, HOST, Actuation(rollback_path=tmp_path / "rb.json")).stock()
    out = run_trial(
        lambda wd: build_command(cfg, domain, regime, stock, HOST, scratch=wd, seed=7),
        trial=0,
        timeout_s=cfg.policy.timeout_for(1),
        retries=0,
        sensors=Sensors(sampling_ms=100),
        probe=cfg.probe,
        required=cfg.required_kpis,
        scratch_root=tmp_path / "scratch",
    )
    assert out.ok, out.reason
    assert out.metrics["perf"] > 0 and out.metrics["p95_ms"] > 0
    assert out.metrics["errors"] == 0
    assert out.elapsed_s < 6


def test_stress_ng_command_carries_genes_and_measurement_flags(tmp_path):
    cfg = load_config()
    host = HostInfo(cpus=(0, 1, 2, 3))
    spec = genome_spec("cpu", host, Actuation(rollback_path=tmp_path / "rb.json"))
    genome = spec.decode([0.3, 0.0, 0.9])  # 2 of 4 CPUs, 1 worker, hugepages
    cmd = build_command(cfg, "cpu", "mixed", genome, host, scratch=tmp_path, seed=9)
    # Exactly these: nothing that reaches debugfs, sysfs or host files (no --ignite-cpu, no
    # --klog-check, no sysfs/procfs stressors), files only in the scratch dir it runs in.
    assert " ".join(cmd.argv) == (
        "stress-ng --cpu 1 --cpu-method matrixprod --vm 1 --vm-bytes 10% --vm-madvise hugepage"
        " --switch 1 --timeout 1s --metrics --yaml metrics.yaml --temp-path . --oomable"
        " --seed 9 --taskset 0,1"
    )
    assert cmd.yaml_path == tmp_path / "metrics.yaml"
    fio = build_command(
        cfg,
        "storage",
        "stress",
        genome_spec("storage", host, Actuation(rollback_path=tmp_path / "rb.json")).stock(),
        host,
        scratch=tmp_path,
        seed=9,
    ).argv
    assert "--size=32M" in fio and "--iodepth=32" in fio and "--output-format=json" in fio
    assert any(a.startswith("--direct=") for a in fio) and "--randseed=9" in fio
    assert os.path.basename(fio[0]) == "fio"


@pytest.mark.parametrize("mode", ["idle", "infer"])
def test_gpu_script_runs_its_fixed_work_on_any_torch_device(tmp_path, mode):
    argv = (sys.executable, str(SCRIPTS_DIR / "gpu_work.py"), "--duration", "0.5", "--scratch", str(tmp_path),
            "--seed", "1", "--mode", mode, "--batch", "2", "--context", "512", "--streams", "2", "--device", "cpu")  # fmt: skip
    out = _run(WorkloadCommand("script", argv, 0.5), tmp_path, timeout=60, retries=0)
    assert out.ok, out.reason
    assert out.metrics["perf"] > 0 and out.metrics["p95_ms"] > 0
