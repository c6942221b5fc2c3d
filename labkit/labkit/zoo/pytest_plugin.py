"""Pytest fixtures shared by every test suite: zoo items at their `test` size, built once and cached."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from labkit.rehearsal import ENV as REHEARSAL_ENV
from labkit.rehearsal import forget_profile
from labkit.zoo.catalog import as_zoo_name
from labkit.zoo.resolve import load_dataset, resolve_model

if TYPE_CHECKING:
    from datasets import DatasetDict


@pytest.fixture(autouse=True)
def no_ambient_rehearsal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with rehearsal off whatever the shell says (tests of it turn it on), and a
    test that turns it on (`--rehearse` sets the variable) leaves it off for the next; nor does
    one test's rehearsal profile reach the next one's run records."""
    monkeypatch.setenv(REHEARSAL_ENV, "0")
    forget_profile()


@pytest.fixture(scope="session")
def zoo_test_model() -> Callable[[str], Path]:
    """Factory: `zoo_test_model("tiny-gpt2")` -> directory of that model's `test` size."""
    build = cache(lambda name: resolve_model(name, size="test"))
    return lambda name: build(as_zoo_name(name))


@pytest.fixture(scope="session")
def zoo_test_dataset() -> Callable[[str], DatasetDict]:
    """Factory: `zoo_test_dataset("stories")` -> that data set's `test` size as a DatasetDict."""
    load = cache(lambda name: load_dataset(name, size="test"))
    return lambda name: load(as_zoo_name(name))


@pytest.fixture
def isolated_zoo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point LABKIT_HOME at an empty directory, for tests that must build from scratch."""
    home = tmp_path / "labkit_home"
    monkeypatch.setenv("LABKIT_HOME", str(home))
    return home
