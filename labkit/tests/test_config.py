from pathlib import Path

import pytest

from labkit.config import (
    apply_overrides,
    canonical_yaml,
    config_hash,
    get_by_path,
    load_config,
    load_yaml,
    parse_override,
    validate,
)
from labkit.errors import ConfigError, MissingInputError, SchemaError

BASE = {
    "seed": 1,
    "train": {"lr": 1e-4, "steps": 10, "layers": [8, 9]},
    "name": "mve",
    "flag": False,
}


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_override_types_scalars_lists_booleans_null():
    out = apply_overrides(
        BASE,
        ["train.lr=3e-4", "train.layers=[1, 2, 3]", "flag=true", "name=null", "train.steps=20"],
    )
    assert out["train"] == {"lr": 3e-4, "steps": 20, "layers": [1, 2, 3]}
    assert out["flag"] is True and out["name"] is None
    assert BASE["train"]["lr"] == 1e-4, "overrides must not mutate the input"


def test_override_list_index_and_string_value():
    out = apply_overrides(BASE, ["train.layers.1=11", "name=hello world"])
    assert out["train"]["layers"] == [8, 11]
    assert out["name"] == "hello world"


def test_unknown_key_is_named_with_its_siblings():
    with pytest.raises(ConfigError) as err:
        apply_overrides(BASE, ["train.lrr=1"])
    msg = str(err.value)
    assert "'train.lrr'" in msg and "lr, steps, layers" in msg


def test_new_key_allowed_only_when_asked():
    out = apply_overrides(BASE, ["train.extra.depth=2"], allow_new=True)
    assert out["train"]["extra"] == {"depth": 2}
    with pytest.raises(ConfigError):
        apply_overrides(BASE, ["train.extra.depth=2"])


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1", "train.layers.5=1", "seed.x=1"])
def test_malformed_overrides(bad):
    with pytest.raises(ConfigError):
        apply_overrides(BASE, [bad])


def test_parse_override_scientific_float():
    assert parse_override("a.b=1e-4") == (["a", "b"], 1e-4)


def test_yaml_reads_scientific_floats(tmp_path):
    cfg = load_yaml(write(tmp_path, "lr: 1e-4\nn: 3\nx: 1_000\ns: '1e-4'\n"))
    assert cfg == {"lr": 1e-4, "n": 3, "x": 1000, "s": "1e-4"}


def test_canonical_bytes_and_hash_are_stable(tmp_path):
    p = write(tmp_path, "b: 1\na:\n  z: [1, 2]\n  y: ünïcode\n")
    one = load_config(p, ["a.z=[3]"])
    two = load_config(p, ["a.z=[3]"])
    text = canonical_yaml(one)
    assert text == canonical_yaml(two)
    assert config_hash(one) == config_hash(two)
    assert text.index("b:") < text.index("a:"), "key order is kept"
    assert "\r" not in text and "ünïcode" in text
    assert config_hash(one) != config_hash(load_config(p))
    assert load_yaml(write(tmp_path, text, "round.yaml")) == one, "canonical text round-trips"


def test_hash_differs_for_int_and_float():
    assert config_hash({"a": 1}) != config_hash({"a": 1.0})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(MissingInputError):
        load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"malformed YAML at .*bad.yaml:\d+:\d+: expected"):
        load_yaml(write(tmp_path, "a: 1\nb: [1, 2\nc: 3\n", "bad.yaml"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml(write(tmp_path, "- 1\n- 2\n", "list.yaml"))


SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "seed": {"type": "integer"},
        "train": {
            "type": "object",
            "properties": {"lr": {"type": "number", "exclusiveMinimum": 0}},
        },
    },
}


def test_schema_error_names_path_and_rule():
    validate({"seed": 1, "train": {"lr": 0.1}}, SCHEMA)
    with pytest.raises(SchemaError) as err:
        validate({"seed": 1, "train": {"lr": -1}}, SCHEMA)
    assert "train.lr" in str(err.value) and "exclusiveMinimum" in str(err.value)
    with pytest.raises(SchemaError, match="additionalProperties"):
        validate({"seed": 1, "oops": 2}, SCHEMA)


def test_schema_from_file(tmp_path):
    import json

    path = tmp_path / "s.json"
    path.write_text(json.dumps(SCHEMA))
    with pytest.raises(SchemaError, match="seed"):
        load_config(write(tmp_path, "seed: x\n"), schema=path)


def test_get_by_path():
    assert get_by_path(BASE, "train.layers.1") == 9
    assert get_by_path(BASE, "train.nope", None) is None
    with pytest.raises(ConfigError):
        get_by_path(BASE, "train.nope")
