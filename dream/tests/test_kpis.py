"""KPI parsers on real tool output, and the garbage they must refuse rather than turn into numbers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dream.kpis import BadOutput, WakeupProbe, parse_fio, parse_script, parse_stress_ng

FIX = Path(__file__).parent / "fixtures"


def test_stress_ng_yaml_gives_the_primary_stressors_real_time_rate():
    text = (FIX / "stress_ng_0.15.06.yaml").read_text()
    assert parse_stress_ng(text, "cpu") == 1223.274593
    assert parse_stress_ng(text, "vm") == 21169.143269
    with pytest.raises(BadOutput, match="no row for stressor stream"):
        parse_stress_ng(text, "stream")


@pytest.mark.parametrize(
    "text",
    ["", "metrics: 3", "metrics:\n  - stressor: cpu\n    bogo-ops-per-second-real-time: .nan\n",
     "metrics:\n  - stressor: cpu\n    bogo-ops-per-second-real-time: 0.0\n", ": : :\n  -"],
)  # fmt: skip
def test_stress_ng_garbage_is_refused(text):
    with pytest.raises(BadOutput):
        parse_stress_ng(text, "cpu")


def test_fio_json_sums_bandwidth_and_takes_the_worst_p95():
    text = (FIX / "fio_3.33_randrw.json").read_text()
    got = parse_fio("fio: note: some notice before the JSON\n" + text)
    assert got["perf"] == pytest.approx((330212891 + 330626173) / 1e6)
    assert got["p95_ms"] == pytest.approx(49408 / 1e6)
    assert got["errors"] == 0


def test_fio_without_io_or_json_is_refused():
    doc = json.loads((FIX / "fio_3.33_randrw.json").read_text())
    for rw in ("read", "write"):
        doc["jobs"][0][rw]["total_ios"] = 0
    with pytest.raises(BadOutput, match="no I/O"):
        parse_fio(json.dumps(doc))
    with pytest.raises(BadOutput, match="no JSON"):
        parse_fio("fio: engine libaio not loadable\n")
    with pytest.raises(BadOutput, match="does not parse"):
        parse_fio('{"jobs": [')


def test_script_output_is_its_last_json_line():
    got = parse_script('warming up\n{"perf": 2.5, "p95_ms": 1.0, "errors": 0, "watts": null}\n\n')
    assert got == {"perf": 2.5, "p95_ms": 1.0, "errors": 0.0}


@pytest.mark.parametrize(
    "stdout",
    ["", "done", '{"perf": 1.0}', '{"perf": NaN, "p95_ms": 1}', '{"perf": "fast", "p95_ms": 1}',
     "[1, 2]", '{"perf": 0, "p95_ms": 1}', '{"perf": 1, "p95_ms": Infinity}'],
)  # fmt: skip
def test_script_garbage_is_refused(stdout):
    with pytest.raises(BadOutput):
        parse_script(stdout)


def test_wakeup_probe_reports_a_p95_overshoot():
    probe = WakeupProbe(sleep_ms=1, period_ms=5).start()
    time.sleep(0.3)
    p95 = probe.stop()
    assert len(probe.overshoot_ms) >= 20
    assert p95 is not None and 0 <= p95 < 1000
