"""Genes reach both ends of their ranges with equal bins; stock genomes; frozen genes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dream.actuators import Actuation
from dream.domains import DOMAINS, domain_module, genome_spec
from dream.genome import gene, resolve_number
from dream.host import HostInfo
from labkit.errors import ConfigError


@pytest.mark.parametrize("domain", DOMAINS)
def test_decode_reaches_min_and_max_of_every_gene(domain, full_host):
    # Reference bug: (tanh(g)+1)/2 spans [0.119, 0.881] of a range, so no gene could ever reach its ends.
    for g in domain_module(domain).genes(full_host):
        assert g.decode(0.0) == g.levels()[0] == g.lo
        assert math.isclose(g.decode(1.0), g.hi)


def test_levels_are_equal_width_bins_and_off_grid_max_is_kept(full_host):
    g = gene("core_utilization", "0.25..1/0.25", 1.0, full_host)
    assert g.levels() == [0.25, 0.5, 0.75, 1.0]
    assert [g.decode(u) for u in (0.0, 0.24, 0.25, 0.49, 0.5, 0.74, 0.75, 1.0)] == [
        0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0,
    ]  # fmt: skip
    trefi = gene("trefi", "7800..15600/1000", 7800, full_host)
    assert trefi.levels()[-2:] == [14800, 15600]
    assert trefi.decode(1.0) == 15600


@given(u=st.floats(0.0, 1.0))
def test_encode_inverts_decode(u):
    g = gene("epp_value", "0..255/15", 120, HostInfo(cpus=(0,)))
    assert g.decode(g.encode(g.decode(u))) == g.decode(u)


def test_host_tokens_resolve(full_host):
    assert resolve_number("ncpu", full_host) == 4
    assert resolve_number("2*ncpu", full_host) == 8
    assert resolve_number("1.5tdp", full_host) == 97.5
    with pytest.raises(ConfigError, match="tdp"):
        resolve_number("tdp", HostInfo(cpus=(0,)))
    with pytest.raises(ConfigError):
        resolve_number("lots", full_host)


def test_stock_value_must_be_on_the_grid(full_host):
    with pytest.raises(ConfigError, match="not on its grid"):
        gene("tcl", "28..40/2", 33, full_host)


def test_shadow_mode_freezes_every_gene_without_a_workload_actuator(tmp_path, full_host):
    spec = genome_spec("cpu", full_host, Actuation(rollback_path=tmp_path / "rb.json"))
    assert [g.name for g in spec.active] == ["core_utilization", "thread_count", "hugepages_mb"]
    assert set(spec.frozen) == {"governor_idx", "smt_enabled", "epp_value", "turbo_enabled"}
    assert all("shadow mode" in why for why in spec.frozen.values())
    genome = spec.decode([0.0, 1.0, 1.0])
    assert genome["core_utilization"] == 0.25 and genome["thread_count"] == 4
    assert genome["hugepages_mb"] == 2048 and genome["governor_idx"] == 2
    with pytest.raises(ConfigError, match="frozen"):
        spec.check({**genome, "governor_idx": 0})
    with pytest.raises(ConfigError, match="unknown genes"):
        spec.check({"turbo": 1})
    memory = genome_spec("memory", full_host, Actuation(rollback_path=tmp_path / "rb.json"))
    assert memory.frozen["tcl"] == "no actuator (firmware setting)"
