"""regimes.yaml / caps.yaml: validation fails early, and every execution and global key is read."""

from __future__ import annotations

import pytest
import yaml

from dream.config import DEFAULT_CAPS, DEFAULT_REGIMES, REGIMES, load_config
from dream.domains import DOMAINS
from dream.host import HostInfo
from labkit.errors import ConfigError, SchemaError


def test_shipped_files_cover_nine_domains_by_four_regimes():
    cfg = load_config(profile="full")
    assert set(cfg.regimes["domains"]) == set(DOMAINS)
    assert all(set(cfg.regimes["domains"][d]) == set(REGIMES) for d in DOMAINS)
    assert [cfg.duration_s(r) for r in REGIMES] == [20, 30, 120, 90]
    assert cfg.policy.trials == 10 and cfg.policy.trial_delay_s == 2.0


def test_profile_execution_overrides_global_caps_and_full_reads_them():
    full, local = load_config(profile="full"), load_config(profile="local")
    assert (full.policy.min_successful_trials, full.policy.max_trial_failures) == (7, 3)
    assert (local.policy.min_successful_trials, local.policy.max_trial_failures) == (3, 1)
    changed = load_config(
        profile="full",
        overrides=["caps.global.min_successful_trials=8", "caps.global.max_trial_failures=2"],
    )
    assert (changed.policy.min_successful_trials, changed.policy.max_trial_failures) == (8, 2)


def test_timeout_is_multiplier_times_duration_plus_extra_capped_by_global():
    cfg = load_config(profile="full")
    assert cfg.policy.timeout_for(30) == 50.0
    assert cfg.policy.timeout_for(120) == 185.0
    capped = load_config(profile="full", overrides=["caps.global.max_trial_duration_seconds=100"])
    assert capped.policy.timeout_for(120) == 100.0


def _write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_unknown_cap_name_fails_at_load(tmp_path):
    # Reference bug: caps named cpu_temp_c while the KPI is temp_peak_c were silently never checked.
    caps = yaml.safe_load(DEFAULT_CAPS.read_text())
    caps["domains"]["os_scheduler"] = {"cpu_temp_c": 90}
    with pytest.raises(ConfigError, match="unknown cap 'cpu_temp_c' for os_scheduler"):
        load_config(DEFAULT_REGIMES, _write(tmp_path, "caps.yaml", caps))


def test_unknown_keys_and_kpis_fail_at_load(tmp_path):
    regimes = yaml.safe_load(DEFAULT_REGIMES.read_text())
    regimes["profiles"]["local"]["execution"]["trails"] = 3
    with pytest.raises(SchemaError, match="trails"):
        load_config(_write(tmp_path, "r.yaml", regimes))
    regimes = yaml.safe_load(DEFAULT_REGIMES.read_text())
    regimes["kpis"]["optional"].append("fps")
    with pytest.raises(ConfigError, match="unknown KPI 'fps'"):
        load_config(_write(tmp_path, "r.yaml", regimes))
    caps = yaml.safe_load(DEFAULT_CAPS.read_text())
    caps["tolerance"]["latency_pct"] = 5
    with pytest.raises(SchemaError, match="latency_pct"):
        load_config(caps_path=_write(tmp_path, "c.yaml", caps))


def test_bad_profile_allowlist_and_trial_bounds_fail(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        load_config(profile="fast")
    with pytest.raises(ConfigError, match="min_trials 6 exceeds trials 3"):
        load_config(overrides=["regimes.profiles.local.execution.min_trials=6"])
    caps = yaml.safe_load(DEFAULT_CAPS.read_text())
    caps["real_allowlist"] = ["cpu.thread_count"]
    with pytest.raises(ConfigError, match="not a gene with a real setting"):
        load_config(caps_path=_write(tmp_path, "c.yaml", caps))


def test_caps_resolve_host_multiples_and_need_a_value(tmp_path):
    cfg = load_config(overrides=["caps.domains.cpu.package_power_w=2*ncpu"])
    assert cfg.domain_caps("cpu", HostInfo(cpus=(0, 1, 2)))["package_power_w"] == 6.0
    caps = yaml.safe_load(DEFAULT_CAPS.read_text())
    caps["domains"]["cpu"]["errors"] = None
    with pytest.raises(SchemaError):
        load_config(caps_path=_write(tmp_path, "c.yaml", caps))
