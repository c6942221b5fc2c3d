import re
from pathlib import Path

import pytest
import yaml

from cachemedicpp.config import PROJECT, fragment_overrides, load_run_config, resolve
from labkit.config import config_hash, load_yaml
from labkit.errors import ConfigError, SchemaError

CONFIGS = PROJECT / "configs"
MINIMAL = {
    "model": {"name": "local:tiny-gpt2"},
    "data": {"dataset": "local:stories"},
    "repair": {"protect_layers": [0, 1]},
}


def write(tmp_path: Path, doc: dict, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name", ["mve.yaml", "mve_local.yaml", "mve_qwen.yaml", "mve_llama_local.yaml"]
)
def test_shipped_configs_resolve_and_inline_the_mixture(name):
    cfg = load_run_config(CONFIGS / name)
    assert cfg["corruption"]["mix"] == load_yaml(CONFIGS / "corruption" / "default_mix.yaml")
    assert resolve(cfg) == cfg, "resolving a resolved config must change nothing"


def test_defaults_fill_every_section():
    cfg = resolve(MINIMAL)
    assert cfg["train"]["steps"] == 12000 and cfg["loss"]["alpha_contr"] == 0.8
    assert cfg["corruption"]["axes"]["n_recent"] == 32
    assert cfg["repair"] == {
        "option": "A",
        "rank": 8,
        "protect_layers": [0, 1],
        "apply_to": "KV",
        "share_across_heads": True,
        "alpha_max": 0.9,
        "head_embedding": False,
    }


def test_unknown_key_is_named(tmp_path):
    doc = {**MINIMAL, "train": {"stepz": 5}}
    with pytest.raises(SchemaError, match="stepz"):
        load_run_config(write(tmp_path, doc))


def test_unknown_override_is_named():
    with pytest.raises(ConfigError, match=r"train\.nope"):
        resolve(MINIMAL, ["train.nope=1"])


def test_overrides_reach_keys_the_file_leaves_to_defaults(tmp_path):
    cfg = load_run_config(write(tmp_path, MINIMAL), ["loss.lambda_contr=0", "repair.rank=16"])
    assert cfg["loss"]["lambda_contr"] == 0 and cfg["repair"]["rank"] == 16


def test_bad_value_fails_with_its_path():
    with pytest.raises(SchemaError, match=r"corruption\.axes\.p_head"):
        resolve(MINIMAL, ["corruption.axes.p_head=1.5"])


def test_hash_is_stable_and_ignores_key_order(tmp_path):
    a = load_run_config(write(tmp_path, MINIMAL, "a.yaml"))
    b = load_run_config(write(tmp_path, dict(reversed(list(MINIMAL.items()))), "b.yaml"))
    assert config_hash(a) == config_hash(b) == config_hash(resolve(MINIMAL))
    assert config_hash(resolve(MINIMAL, ["seed=1"])) != config_hash(a)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["corruption.eps_mode=reference", "corruption.calibrate.enabled=true"], "matched"),
        (["loss.kd_positions=96"], "kd_positions"),
        (["corruption.axes.layer_mode=targeted", "corruption.axes.layers=[5]"], "subset"),
        (["corruption.axes.time_mode=window"], "axes.window"),
        (["corruption.params.overwrite_window=[9, 3]"], "start < end"),
        (["repair.head_embedding=true"], "option C"),
        (
            ["corruption.calibrate.window=64", "corruption.calibrate.stride=65"],
            "exceeds its window",
        ),
        (["corruption.mix={gaussian: 0}"], "must not all be zero"),
    ],
)
def test_cross_key_rules(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(MINIMAL, overrides)


@pytest.mark.parametrize("option", ["A", "B", "C"])
def test_operator_fragments_apply_as_overrides(option):
    path = CONFIGS / "operators" / f"option{option}_default.yaml"
    cfg = load_run_config(CONFIGS / "mve.yaml", fragment_overrides(path))
    assert cfg["repair"]["option"] == option
    assert cfg["repair"]["protect_layers"] == [8, 9, 10, 11]


def test_readme_links_stay_inside_the_repository():
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)", text)
    assert "docs/DESIGN.md" in targets
    for target in targets:
        assert "://" not in target, target
        path = (PROJECT / target).resolve()
        # every link names a file of this repository that exists
        assert path.is_file() and PROJECT.parent in path.parents, target
    assert "shared/" not in text
