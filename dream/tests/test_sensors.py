"""Sensors on fake sysfs trees: RAPL wrap-around, temperatures, OOM kills; unmeasurable means None + reason."""

from __future__ import annotations

import time
from collections import namedtuple

from dream.sensors import Rapl, Sensors

Temp = namedtuple("Temp", "label current high critical")


def _rapl(root, energy: int, rng: int = 1_000_000) -> None:
    zone = root / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{rng}\n")
    sub = root / "sys/class/powercap/intel-rapl:0:0"  # a sub-zone: already inside the package
    sub.mkdir(exist_ok=True)
    (sub / "energy_uj").write_text("7\n")
    (sub / "max_energy_range_uj").write_text(f"{rng}\n")


def test_rapl_delta_adds_the_range_when_the_counter_wraps(tmp_path):
    _rapl(tmp_path, 0)
    rapl = Rapl(tmp_path)
    assert [z.name for z in rapl.zones] == ["intel-rapl:0"]
    assert rapl.delta_uj([999_900], [50]) == 150
    assert rapl.delta_uj([100], [400]) == 300


def test_watts_integrate_across_a_wrap_during_the_trial(tmp_path):
    _rapl(tmp_path, 990_000)
    run = Sensors(tmp_path, temperatures=dict, sampling_ms=10).start()
    time.sleep(0.05)
    (tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj").write_text("500000\n")
    time.sleep(0.05)
    reading = run.stop()
    assert run.energy_uj == 510_000
    assert 0.51 / 1.0 < reading.values["watts"] < 0.51 / 0.09
    assert reading.values["package_power_w"] >= reading.values["watts"]


def test_a_host_without_sensors_reports_none_with_reasons_never_a_made_up_number(tmp_path):
    reading = Sensors(tmp_path, temperatures=dict, sampling_ms=10).start().stop()
    for metric in ("watts", "temp_peak_c", "oom", "package_power_w", "ecc_errors", "cpu_temp_c"):
        assert reading.values[metric] is None
        assert reading.reasons[metric]
    assert "RAPL" in reading.reasons["watts"]
    assert "sensors_temperatures" in reading.reasons["temp_peak_c"]


def test_fake_temperatures_reach_peak_and_component_metrics(tmp_path):
    temps = {"coretemp": [Temp("Package id 0", 95.0, 100.0, 100.0)], "nvme": [Temp("", 41.0, 0, 0)]}
    reading = Sensors(tmp_path, temperatures=lambda: temps, sampling_ms=10).start().stop()
    assert reading.values["temp_peak_c"] == 95.0
    assert reading.values["cpu_temp_c"] == 95.0
    assert reading.values["nvme_temp_c"] == 41.0
    assert reading.values["dimm_temp_c"] is None


def test_oom_kills_are_the_change_in_the_cgroup_counter(tmp_path):
    events = tmp_path / "sys/fs/cgroup/memory.events"
    events.parent.mkdir(parents=True)
    events.write_text("low 0\noom 1\noom_kill 2\n")
    run = Sensors(tmp_path, temperatures=dict, sampling_ms=10).start()
    events.write_text("low 0\noom 2\noom_kill 3\n")
    assert run.stop().values["oom"] == 1.0
