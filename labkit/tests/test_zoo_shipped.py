"""Shipped zoo models: loaded without a build, verified against their card, rebuilt and compared."""

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from labkit.cli import run_cli
from labkit.zoo import resolve_model
from labkit.zoo import shipped as shipped_mod
from labkit.zoo.__main__ import main, parser
from labkit.zoo.catalog import CATALOG
from labkit.zoo.fingerprint import file_digests
from labkit.zoo.models import MODELS
from labkit.zoo.shipped import SHIPPED_ROOT, ShippedBuildError, ship, shipped_dir
from labkit.zoo.store import cache_key, read_card


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        run_cli(parser(), main, argv)
    return done.value.code


def _default_key(name: str) -> str:
    item = CATALOG[name]
    return cache_key("default", item.default_seed, item.version, {})


def test_every_default_model_is_shipped_at_its_current_version_and_nothing_stale():
    for name in MODELS:
        assert shipped_dir(CATALOG[name], _default_key(name)) is not None, name
    current = {f"models/{n}/{_default_key(n)}" for n in MODELS}
    on_disk = {
        p.parent.relative_to(SHIPPED_ROOT).as_posix() for p in SHIPPED_ROOT.rglob("shipped.json")
    }
    assert on_disk == current  # a version bump must re-ship (python -m labkit.zoo ship NAME)


def test_default_models_load_the_shipped_weights_without_building(isolated_zoo_home):
    for name in MODELS:
        path = resolve_model(f"local:{name}")
        assert path == SHIPPED_ROOT / "models" / name / _default_key(name)
        card = read_card(path)
        assert card["name"] == f"local:{name}" and card["size"] == "default"
        assert file_digests(path) == card["weights_sha256"]
    assert not (isolated_zoo_home / "models").exists()  # nothing was built


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """The shipped tree copied aside and made the one labkit reads."""
    root = shutil.copytree(SHIPPED_ROOT, tmp_path / "shipped")
    monkeypatch.setattr(shipped_mod, "SHIPPED_ROOT", root)
    return root / "models" / "tiny-gpt2" / _default_key("tiny-gpt2")


def test_a_truncated_or_edited_shipped_file_fails_with_a_clear_error(shipped_copy, capsys):
    assert resolve_model("local:tiny-gpt2") == shipped_copy  # control: the intact copy loads

    weights = shipped_copy / "model.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(ShippedBuildError, match=r"model\.safetensors does not match its card"):
        resolve_model("local:tiny-gpt2")
    assert _run(["build", "local:tiny-gpt2"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "truncated or edited" in err and "git checkout" in err

    flipped = bytearray(intact)
    flipped[-1] ^= 1
    weights.write_bytes(bytes(flipped))
    with pytest.raises(ShippedBuildError, match="does not match its card"):
        resolve_model("local:tiny-gpt2")

    weights.write_bytes(intact)
    (shipped_copy / "tokenizer.json").write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(
        ShippedBuildError, match=r"tokenizer\.json does not match its shipped\.json"
    ):
        resolve_model("local:tiny-gpt2")


def test_force_never_rebuilds_over_a_shipped_model(shipped_copy, capsys):
    assert _run(["build", "local:tiny-gpt2", "--force"]) == 2
    assert "--verify" in capsys.readouterr().err


def test_verify_rebuilds_byte_for_byte_and_says_when_a_rebuild_differs(
    isolated_zoo_home, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(shipped_mod, "SHIPPED_ROOT", tmp_path / "shipped")
    item, key = CATALOG["tiny-gpt2"], cache_key("test", 0, CATALOG["tiny-gpt2"].version, {})
    assert _run(["build", "local:tiny-gpt2@test", "--verify"]) == 3  # nothing to compare with
    capsys.readouterr()

    assert _run(["ship", "local:tiny-gpt2@test"]) == 0
    shipped = shipped_dir(item, key)
    assert shipped is not None and resolve_model("local:tiny-gpt2@test") == shipped
    assert _run(["build", "local:tiny-gpt2@test", "--verify"]) == 0
    assert "byte-identical to the shipped weights" in capsys.readouterr().out

    # Control: shipped weights this machine does not build (as another CPU's would be), shipped consistently.
    fake = shutil.copytree(shipped, tmp_path / "other")
    tensors = load_file(fake / "model.safetensors")
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 1e-3
    save_file(tensors, fake / "model.safetensors", metadata={"format": "pt"})
    card = read_card(fake)
    card["weights_sha256"] = file_digests(fake)
    (fake / "zoo_card.json").write_text(json.dumps(card))
    ship(fake, item, key)
    manifest = shipped / "shipped.json"
    manifest.write_text(manifest.read_text().replace(shipped_mod.cpu_name(), "Another CPU"))
    assert _run(["build", "local:tiny-gpt2@test", "--verify"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "DIFFERS from the shipped weights" in out and "Another CPU" in out
    assert "not byte-identical across CPUs" in out and "stay canonical" in out
    assert read_card(resolve_model("local:tiny-gpt2@test")) == card  # not replaced
