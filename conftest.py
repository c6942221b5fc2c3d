"""Root conftest: import the packages first so pytest's importlib mode cannot shadow them.

Each folder holds a package of the same name (`labkit/labkit`) beside its tests (`labkit/tests`);
importlib mode names a test module `labkit.tests.test_x` and would otherwise insert an empty
`labkit` module for the missing parents. The MLflow fixtures serve every system's tracking tests.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import avalanche_llm  # noqa: F401
import cachemedicpp  # noqa: F401
import dream  # noqa: F401
import esper  # noqa: F401
import labkit  # noqa: F401


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite MLflow store for the session's tracking tests: making one runs migrations (seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlruns.db'}"


@pytest.fixture
def tracked(mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], Any]:
    """Tracking on (MLFLOW_TRACKING_URI) for this test; `tracked(record)` gives (client, MLflow run)
    of the run that `record` (a run record, manifest or sweep summary) says it was mirrored to."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)

    def mirrored(record: Path) -> tuple[Any, Any]:
        state = json.loads(record.read_text(encoding="utf-8"))["tracking"]
        assert state["status"] == "ok" and state["uri"] == mlflow_store, state
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=mlflow_store)
        return client, client.get_run(state["run_id"])

    return mirrored
