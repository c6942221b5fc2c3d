"""Resolving zoo names, local paths and hub ids; builder wiring, zoo cards, fixtures."""

import hashlib
import json
import os
import sys
import time
import types

import datasets
import huggingface_hub.constants
import pytest

from labkit.errors import ConfigError, MissingInputError
from labkit.zoo import known_names, load_dataset, resolve_dataset, resolve_model, weights_digest
from labkit.zoo.catalog import CATALOG, ZooItem, parse_name


@pytest.fixture
def fake_zoo(monkeypatch, isolated_zoo_home):
    """Register a fake data set and a fake model whose builders count their calls."""
    calls = []
    fakes = types.ModuleType("labkit_zoo_fakes")

    def build_data(name, size, seed, **options):
        calls.append(("data", name, size, seed, options))
        rows = 3 + seed + len(options.get("lengths", ()))
        return datasets.DatasetDict(
            train=datasets.Dataset.from_dict({"x": list(range(rows))}),
            test=datasets.Dataset.from_dict({"x": [seed]}),
        )

    def build_model(name, size, seed, out_dir, progress):
        calls.append(("model", name, size, seed))
        progress(1, 2, "training")
        (out_dir / "config.json").write_text('{"model_type": "gpt2"}')
        (out_dir / "model.safetensors").write_bytes(bytes(range(256)) * (seed + 1))
        progress(2, 2, "done")
        return {"quality": {"val_ppl": 12.5, "unigram_ppl": 80.0}}

    fakes.build_data, fakes.build_model = build_data, build_model
    monkeypatch.setitem(sys.modules, "labkit_zoo_fakes", fakes)
    common = {"stands_in_for": "nothing", "description": "test fake", "version": "7"}
    monkeypatch.setitem(
        CATALOG,
        "fakedata",
        ZooItem(
            name="fakedata",
            kind="dataset",
            builder="labkit_zoo_fakes:build_data",
            options=("lengths",),
            **common,
        ),
    )
    monkeypatch.setitem(
        CATALOG,
        "fakemodel",
        ZooItem(name="fakemodel", kind="model", builder="labkit_zoo_fakes:build_model", **common),
    )
    return calls


def test_catalogue_lists_every_item():
    assert known_names("model") == ["local:tiny-gpt2", "local:tiny-llama"]
    assert known_names("dataset") == [
        "local:stories",
        "local:sentiment",
        "local:needle",
        "local:mcq",
        "local:shapes10",
    ]
    for item in CATALOG.values():
        # replica data sets are as small as a test size already: they have one size
        sizes = {"default"} if item.replica_of and item.kind == "dataset" else {"default", "test"}
        assert sizes <= set(item.sizes) and item.stands_in_for and item.version


def test_name_errors_list_what_is_known():
    with pytest.raises(ConfigError, match=r"unknown zoo item 'local:gpt5'; known: local:tiny-gpt2"):
        parse_name("local:gpt5")
    with pytest.raises(ConfigError, match=r"known sizes: default, small, test"):
        parse_name("local:shapes10@huge")
    with pytest.raises(ConfigError, match="also given"):
        parse_name("local:shapes10@small", size="test")
    assert parse_name("local:shapes10@small")[1] == "small"
    assert parse_name("local:shapes10", size="test")[1] == "test"
    assert parse_name("local:stories")[1] == "default"
    with pytest.raises(ConfigError, match="is a dataset, not a model"):
        resolve_model("local:stories")
    with pytest.raises(ConfigError, match="is a model, not a dataset"):
        resolve_dataset("local:tiny-gpt2")
    with pytest.raises(ConfigError, match="applies to hub ids"):
        load_dataset("local:sentiment", config="sst2")


def test_local_dataset_builds_once_and_round_trips(fake_zoo, isolated_zoo_home):
    path = resolve_dataset("local:fakedata", size="test")
    assert path == isolated_zoo_home / "datasets" / "fakedata" / "test-s0-v7"
    data = load_dataset("local:fakedata@test")
    assert data["train"]["x"] == [0, 1, 2] and data["test"]["x"] == [0]
    assert fake_zoo == [("data", "fakedata", "test", 0, {})]
    card = json.loads((path / "zoo_card.json").read_text())
    assert card["splits"] == {"train": 3, "test": 1}
    assert (card["name"], card["size"], card["seed"], card["version"]) == (
        "local:fakedata",
        "test",
        0,
        "7",
    )
    assert card["build_seconds"] >= 0


def test_seed_and_options_are_part_of_the_key(fake_zoo, isolated_zoo_home):
    plain = resolve_dataset("local:fakedata")
    seeded = resolve_dataset("local:fakedata", seed=2)
    with_opts = resolve_dataset("local:fakedata", lengths=[64, 128])
    assert len({plain, seeded, with_opts}) == 3
    assert seeded.name == "default-s2-v7" and with_opts.name.startswith("default-s0-v7-")
    assert load_dataset("local:fakedata", lengths=(64, 128))["train"].num_rows == 5
    assert len(fake_zoo) == 3  # the tuple spelling hit the list-spelling cache
    with pytest.raises(ConfigError, match="takes no option"):
        resolve_dataset("local:fakedata", depth=0.5)
    with pytest.raises(ConfigError, match="must be an integer"):
        resolve_dataset("local:fakedata", seed="1")
    assert len(fake_zoo) == 3


def test_local_model_gets_a_zoo_card_with_weight_hash(fake_zoo, isolated_zoo_home):
    path = resolve_model("local:fakemodel", size="test", seed=1)
    assert path == isolated_zoo_home / "models" / "fakemodel" / "test-s1-v7"
    assert resolve_model("local:fakemodel@test", seed=1) == path
    assert fake_zoo == [("model", "fakemodel", "test", 1)]
    card = json.loads((path / "zoo_card.json").read_text())
    weights = (path / "model.safetensors").read_bytes()
    assert card["weights_sha256"] == {"model.safetensors": hashlib.sha256(weights).hexdigest()}
    assert card["quality"] == {"val_ppl": 12.5, "unigram_ppl": 80.0}
    assert (card["seed"], card["size"], card["version"], card["kind"]) == (1, "test", "7", "model")


def test_weights_digest_reads_the_card_or_hashes_the_files(fake_zoo, isolated_zoo_home, tmp_path):
    path = resolve_model("local:fakemodel", size="test", seed=1)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    assert weights_digest(path) == weights_digest(copy)  # card and hashing agree
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "model.safetensors").write_bytes(b"other weights")
    assert weights_digest(changed) != weights_digest(copy)
    with pytest.raises(MissingInputError, match="holds no"):
        weights_digest(tmp_path)


def test_local_paths(tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    with pytest.raises(MissingInputError, match=r"no config\.json"):
        resolve_model(str(model_dir))
    (model_dir / "config.json").write_text("{}")
    assert resolve_model(str(model_dir)) == model_dir
    with pytest.raises(ConfigError, match="apply only to local: zoo names"):
        resolve_model(str(model_dir), size="test")
    with pytest.raises(MissingInputError, match="no such file"):
        resolve_model("./no/such/model")
    with pytest.raises(MissingInputError, match="no such file"):
        load_dataset("missing.jsonl")

    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n')
    assert resolve_dataset(str(jsonl)) == jsonl
    assert load_dataset(str(jsonl))["train"]["text"] == ["a", "b"]
    csv = tmp_path / "d.csv"
    csv.write_text("sentence,label\nfine,1\n")
    assert load_dataset(str(csv))["train"]["sentence"] == ["fine"]

    saved = datasets.DatasetDict(validation=datasets.Dataset.from_dict({"x": [1, 2]}))
    saved.save_to_disk(str(tmp_path / "saved_dict"))
    assert load_dataset(str(tmp_path / "saved_dict"))["validation"]["x"] == [1, 2]
    datasets.Dataset.from_dict({"x": [3]}).save_to_disk(str(tmp_path / "saved_one"))
    assert load_dataset(str(tmp_path / "saved_one"))["train"]["x"] == [3]
    with pytest.raises(ConfigError, match="applies to hub ids"):
        load_dataset(str(tmp_path / "saved_one"), config="sst2")

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "train.jsonl").write_text('{"y": 5}\n')
    assert load_dataset(str(raw))["train"]["y"] == [5]
    odd = tmp_path / "d.xyz"
    odd.write_text("?")
    with pytest.raises(ConfigError, match="unknown data file type"):
        load_dataset(str(odd))


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """Empty HF caches and an endpoint that refuses connections."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    return tmp_path / "hub"


@pytest.mark.parametrize("offline", ["1", None])
def test_hub_model_without_network_fails_fast_naming_the_alternative(no_hub, monkeypatch, offline):
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    with pytest.raises(MissingInputError) as err:
        resolve_model("gpt2-medium")
    assert time.monotonic() - started < 10
    message = str(err.value)
    assert "'gpt2-medium'" in message and "local:tiny-gpt2" in message
    assert ("HF_HUB_OFFLINE" if offline else "cannot connect to http://127.0.0.1:9") in message
    with pytest.raises(MissingInputError, match=r"use configs/mve_local\.yaml"):
        resolve_model("gpt2-medium", local_hint="use configs/mve_local.yaml")
    with pytest.raises(ConfigError, match="not a local: name, an existing directory, or a hub id"):
        resolve_model("not an/id/at all")


def test_hub_dataset_without_network_fails_fast(no_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(MissingInputError, match=r"'nyu-mll/glue'.*local:sentiment"):
        load_dataset("nyu-mll/glue", config="sst2")
    with pytest.raises(MissingInputError, match=r"use configs/x_local\.yaml"):
        resolve_dataset("allenai/ai2_arc", config="ARC-Easy", local_hint="use configs/x_local.yaml")
    assert time.monotonic() - started < 10


def test_hub_model_in_local_cache_resolves_offline(no_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "a" * 40
    repo = no_hub / "models--someorg--tiny"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    assert resolve_model("someorg/tiny") == snapshot


def test_hub_dataset_in_local_cache_loads_offline(no_hub, tmp_path, monkeypatch):
    # Fill the (isolated) datasets cache the way a first online load would, then go offline.
    source = tmp_path / "src" / "toyset"
    source.mkdir(parents=True)
    (source / "train.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    datasets.load_dataset(str(source))
    monkeypatch.chdir(tmp_path)  # so "toyset" is not also a local path
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_dataset("toyset")["train"]["a"] == [1, 2]
    assert resolve_dataset("toyset").is_relative_to(tmp_path / "datasets" / "toyset")


def test_shared_fixtures(zoo_test_model, zoo_test_dataset, fake_zoo, isolated_zoo_home):
    assert str(isolated_zoo_home) == os.environ["LABKIT_HOME"]
    model = zoo_test_model("fakemodel")
    assert model == isolated_zoo_home / "models" / "fakemodel" / "test-s0-v7"
    assert zoo_test_model("local:fakemodel") == model
    data = zoo_test_dataset("shapes10")
    assert zoo_test_dataset("local:shapes10") is data
    assert (data["train"].num_rows, data["test"].num_rows) == (400, 200)
    assert [call[0] for call in fake_zoo] == ["model"]  # each built once


def test_tokenizer_only_resolve_asks_the_hub_for_tokenizer_files_only(no_hub, monkeypatch):
    import huggingface_hub

    asked = []

    def fake_snapshot(repo_id, **kwargs):
        asked.append(kwargs)
        if kwargs.get("local_files_only"):
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        return str(no_hub / "snap")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    monkeypatch.setattr("labkit.zoo.hub.hub_unreachable_reason", lambda: None)
    assert resolve_model("gpt2", tokenizer_only=True) == no_hub / "snap"
    assert [a.get("local_files_only", False) for a in asked] == [True, False]
    for kwargs in asked:
        allowed = kwargs["allow_patterns"]
        assert "ignore_patterns" not in kwargs
        assert "config.json" in allowed and "merges.txt" in allowed
        assert not any(p.endswith((".safetensors", ".bin")) or p == "*" for p in allowed)
    asked.clear()
    resolve_model("gpt2")  # a model resolve still takes every PyTorch file
    assert all("allow_patterns" not in kwargs for kwargs in asked)


def test_tokenizer_only_resolve_offline_fails_fast_naming_the_local_config(no_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(MissingInputError, match=r"'gpt2'.*use configs/tinystories_local\.yaml"):
        resolve_model("gpt2", tokenizer_only=True, local_hint="use configs/tinystories_local.yaml")
    assert time.monotonic() - started < 10
