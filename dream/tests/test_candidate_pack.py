"""candidate_pack.v3: validated on write and on read; strict JSON; the v4 default of the reference fails."""

from __future__ import annotations

import copy
import json
import re

import pytest

from dream.candidate_pack import load_pack, validate_pack, write_pack
from labkit.errors import SchemaError


@pytest.fixture
def pack(evaluate) -> dict:
    return evaluate()


def test_a_written_pack_loads_back_valid(ctx, pack):
    doc = load_pack(ctx.out_root / pack["artifacts"]["pack"])
    assert doc == pack
    assert next(iter(doc)) == "schema" and doc["schema"] == "candidate_pack.v3"
    assert pack["artifacts"]["pack"] == "artifacts/candidates/cpu/gen0_00.json"


def test_schema_rejects_the_v4_defaults_of_the_reference(pack):
    with pytest.raises(SchemaError, match=r"candidate_pack\.v3"):
        validate_pack({**pack, "schema": "candidate_pack.v4"})
    with pytest.raises(SchemaError, match="schema_version"):
        validate_pack({**pack, "schema_version": 4})


def test_an_unsafe_pack_cannot_carry_a_score(pack):
    bad = copy.deepcopy(pack)
    bad["safe"] = False
    with pytest.raises(SchemaError, match="score_v2"):
        validate_pack(bad)


def test_infinities_are_never_written_and_never_read(tmp_path, pack):
    # Reference bug: unsafe packs carried score_v2 = -Infinity, which strict JSON parsers reject.
    bad = copy.deepcopy(pack)
    bad["aggregate"]["score_v2"] = float("-inf")
    with pytest.raises(ValueError, match="JSON compliant"):
        write_pack(bad, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    text = re.sub(r'"score_v2": [^,}]+', '"score_v2": -Infinity', json.dumps(pack))
    assert "-Infinity" in text
    (tmp_path / "inf.json").write_text(text)
    with pytest.raises(SchemaError, match="-Infinity"):
        load_pack(tmp_path / "inf.json")


def test_a_broken_pack_is_refused_on_write(tmp_path, pack):
    bad = copy.deepcopy(pack)
    del bad["regimes"][0]["ci95"]
    with pytest.raises(SchemaError, match="ci95"):
        write_pack(bad, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
