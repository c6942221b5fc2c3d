"""`python -m labkit.zoo list | info | build`: output, exit codes, cheap listing, forced rebuilds."""

import json
import os
import subprocess
import sys

import pytest

from labkit.cli import run_cli
from labkit.zoo.__main__ import main, parser
from labkit.zoo.catalog import known_names


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        run_cli(parser(), main, argv)
    return done.value.code


def _card_of(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{") :])


def test_list_is_instant_and_imports_nothing_heavy(isolated_zoo_home):
    probe = "import sys, labkit.zoo.__main__; print(sorted({'torch', 'datasets', 'transformers'} & set(sys.modules)))"
    env = {**os.environ, "COLUMNS": "200"}
    listed = subprocess.run(
        [sys.executable, "-m", "labkit.zoo", "list"], capture_output=True, text=True, env=env
    )
    assert listed.returncode == 0, listed.stderr
    for name in known_names():
        assert name in listed.stdout
    assert "CIFAR-10" in listed.stdout and "default, small, test" in listed.stdout
    heavy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert heavy.stdout.strip() == "[]", heavy.stderr


def test_unknown_name_exits_2_listing_known_names(capsys):
    assert _run(["info", "local:nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown zoo item 'local:nope'" in err and "local:shapes10" in err
    assert _run(["build", "shapes10", "--size", "huge"]) == 2
    assert "known sizes: default, small, test" in capsys.readouterr().err


def test_build_info_and_force(isolated_zoo_home, capsys):
    assert _run(["info", "shapes10@test"]) == 0
    assert "not built yet" in capsys.readouterr().out

    assert _run(["build", "shapes10", "--size", "test"]) == 0
    first = _card_of(capsys.readouterr().out)
    assert first["name"] == "local:shapes10" and first["splits"] == {"train": 400, "test": 200}
    path = isolated_zoo_home / "datasets" / "shapes10" / "test-s0-v1"
    assert (path / "zoo_card.json").is_file()

    assert _run(["build", "local:shapes10@test"]) == 0  # already built: no rebuild
    assert _card_of(capsys.readouterr().out) == first

    assert _run(["info", "local:shapes10@test"]) == 0
    out = capsys.readouterr().out
    assert "stands in for: CIFAR-10" in out and _card_of(out) == first

    inode = path.stat().st_ino
    assert _run(["build", "shapes10@test", "--force"]) == 0
    forced = _card_of(capsys.readouterr().out)
    assert path.stat().st_ino != inode  # a new directory was swapped in
    assert forced["built_utc"] >= first["built_utc"] and forced["splits"] == first["splits"]
    assert sorted(p.name for p in path.parent.iterdir()) == [".test-s0-v1.lock", "test-s0-v1"]

    assert _run(["build", "shapes10@test", "--seed", "3"]) == 0
    assert _card_of(capsys.readouterr().out)["seed"] == 3
    assert (path.parent / "test-s3-v1" / "zoo_card.json").is_file()
