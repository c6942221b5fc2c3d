"""Zoo cache: keys, atomic builds, crash leftovers, forced rebuilds and the cross-process lock."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit.zoo.store import (
    CARD_NAME,
    build_atomically,
    cache_key,
    is_built,
    item_dir,
    options_hash,
    read_card,
    zoo_home,
)


def test_zoo_home_follows_labkit_home(monkeypatch, tmp_path):
    monkeypatch.delenv("LABKIT_HOME", raising=False)
    assert zoo_home() == Path.home() / ".cache" / "labkit"
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    assert zoo_home() == tmp_path
    assert (
        item_dir("dataset", "shapes10", "test-s0-v1") == tmp_path / "datasets/shapes10/test-s0-v1"
    )


def test_cache_key_names_size_seed_version_and_hashes_options():
    assert cache_key("test", 3, "2", {}) == "test-s3-v2"
    key = cache_key("default", 0, "1", {"lengths": [64, 128], "depth": 0.5})
    assert key == f"default-s0-v1-{options_hash({'depth': 0.5, 'lengths': (64, 128)})}"
    assert len(key.rsplit("-", 1)[1]) == 10
    assert options_hash({"lengths": [64, 128]}) != options_hash({"lengths": [64, 192]})


def _counting_builder(calls: list, content: str = "data"):
    def build(out: Path) -> dict:
        calls.append(out)
        (out / "payload.txt").write_text(content)
        return {"content": content}

    return build


def test_builds_once_then_reuses(tmp_path):
    target, calls = tmp_path / "item" / "test-s0-v1", []
    assert build_atomically(target, _counting_builder(calls)) == target
    assert build_atomically(target, _counting_builder(calls)) == target
    assert len(calls) == 1
    assert calls[0] != target  # built in a temp sibling, then renamed
    assert read_card(target) == {"content": "data"}
    assert (target / "payload.txt").read_text() == "data"
    assert sorted(p.name for p in target.parent.iterdir()) == [".test-s0-v1.lock", "test-s0-v1"]


def test_failed_build_leaves_nothing_that_loads(tmp_path):
    target = tmp_path / "item" / "test-s0-v1"

    def crash(out: Path) -> dict:
        (out / "half_written.bin").write_bytes(b"\0" * 100)
        raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError, match="killed midway"):
        build_atomically(target, crash)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == [".test-s0-v1.lock"]
    calls = []
    build_atomically(target, _counting_builder(calls))
    assert len(calls) == 1 and is_built(target)


def test_stale_temp_dirs_are_ignored_and_cleaned(tmp_path):
    target = tmp_path / "item" / "test-s0-v1"
    for stale in (".test-s0-v1.tmp-99999", ".test-s0-v1.old-99999"):
        (target.parent / stale).mkdir(parents=True)
        (target.parent / stale / "payload.txt").write_text("from a killed build")
    # A different key whose name merely starts alike must survive.
    other = target.parent / ".test-s0-v1.2.tmp-5"
    other.mkdir()
    assert not is_built(target)
    calls = []
    build_atomically(target, _counting_builder(calls, "fresh"))
    assert len(calls) == 1
    assert (target / "payload.txt").read_text() == "fresh"
    assert sorted(p.name for p in target.parent.iterdir()) == [
        ".test-s0-v1.2.tmp-5",
        ".test-s0-v1.lock",
        "test-s0-v1",
    ]


def test_dir_without_card_is_not_built_and_gets_replaced(tmp_path):
    target = tmp_path / "item" / "test-s0-v1"
    target.mkdir(parents=True)
    (target / "payload.txt").write_text("junk")
    assert not is_built(target)
    build_atomically(target, _counting_builder([], "good"))
    assert (target / "payload.txt").read_text() == "good" and is_built(target)


def test_force_rebuilds_and_a_failed_force_keeps_the_old_build(tmp_path):
    target = tmp_path / "item" / "test-s0-v1"
    build_atomically(target, _counting_builder([], "v-old"))
    calls = []
    build_atomically(target, _counting_builder(calls, "v-new"), force=True)
    assert len(calls) == 1 and read_card(target) == {"content": "v-new"}

    def crash(out: Path) -> dict:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        build_atomically(target, crash, force=True)
    assert read_card(target) == {"content": "v-new"}
    assert sorted(p.name for p in target.parent.iterdir()) == [".test-s0-v1.lock", "test-s0-v1"]


_RACER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from labkit.zoo.store import build_atomically

    target, counter = Path(sys.argv[1]), Path(sys.argv[2])

    def build(out):
        with counter.open("a") as fh:
            fh.write(f"{os.getpid()}\\n")
        time.sleep(1.5)  # long enough that the other process arrives while this one builds
        (out / "payload.txt").write_text(str(os.getpid()))
        return {"builder_pid": os.getpid()}

    print(build_atomically(target, build))
    """
)


def test_second_process_waits_for_the_first_build(tmp_path):
    target, counter = tmp_path / "item" / "test-s0-v1", tmp_path / "builds.txt"
    cmd = [sys.executable, "-c", _RACER, str(target), str(counter)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == [str(target), str(target)]
    builders = counter.read_text().split()
    assert len(builders) == 1
    card = json.loads((target / CARD_NAME).read_text())
    assert str(card["builder_pid"]) == builders[0] == (target / "payload.txt").read_text()
    assert sorted(os.listdir(target.parent)) == [".test-s0-v1.lock", "test-s0-v1"]
