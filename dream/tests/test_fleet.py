"""The fleet on a real PostgreSQL: two `python -m dream worker` processes share one Optuna study.

They bring it to exactly N evaluated trials, none lost and none evaluated twice; a worker SIGKILLed
mid-trial has that trial failed by the heartbeat and retried by the other worker, whose own trials
all complete; one killed after attaching its pack has that pack adopted, not measured again; a
paused worker stops at a trial boundary (exit 75) and its rerun finishes the study as an
uninterrupted worker would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial
from sqlalchemy.pool import NullPool

from dream.candidate_pack import load_pack
from dream.fleet import WorkerOptions, claims, evaluated, superseded
from dream.host import DREAM_ROOT
from labkit.control import request_pause
from labkit.errors import EXIT_PAUSED, ConfigError

HEARTBEAT, GRACE = 1, 4


@pytest.fixture
def study_name(pg_url: str) -> Iterator[str]:
    """A study name of its own in the shared database, deleted afterwards."""
    name = f"test_fleet_{uuid.uuid4().hex[:12]}"
    yield name
    _delete_studies(pg_url, name, f"{name}_full")


def _worker(
    pg_url: str, study: str, out: Path, index: int, n: int, population: int = 2
) -> subprocess.Popen:
    argv = [sys.executable, "-m", "dream", "worker", "--profile", "local", "--domain", "cpu",
            "--storage", pg_url, "--study", study, "--n-trials", str(n),
            "--population", str(population),
            "--worker", str(index), "--heartbeat-interval", str(HEARTBEAT),
            "--grace-period", str(GRACE), "--out_root", str(out)]  # fmt: skip
    # Its own session, so SIGKILL takes the worker as a crashed host would lose it.
    return subprocess.Popen(argv, cwd=DREAM_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip


@contextlib.contextmanager
def _storage(pg_url: str) -> Iterator[RDBStorage]:
    """A storage that closes its connections on the way out.

    `storage=url` would build a pooled engine per call that keeps a connection open until garbage
    collection; a test that polls every 0.2 s then runs PostgreSQL out of client slots.
    """
    storage = RDBStorage(pg_url, engine_kwargs={"poolclass": NullPool})
    try:
        yield storage
    finally:
        storage.engine.dispose()


def _trials(pg_url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    with _storage(pg_url) as storage:
        try:
            return optuna.load_study(study_name=study, storage=storage).get_trials()
        except KeyError:  # not created yet
            return []


def _delete_studies(pg_url: str, *names: str) -> None:
    with _storage(pg_url) as storage:
        for name in names:
            with contextlib.suppress(KeyError):  # a test that failed before creating it
                optuna.delete_study(study_name=name, storage=storage)


def _packs(outs: list[Path]) -> dict[str, list[dict]]:
    """cand_id -> every pack of that name over the workers' trees."""
    found: dict[str, list[dict]] = {}
    for out in outs:
        for path in sorted((out / "artifacts/candidates/cpu").glob("*.json")):
            found.setdefault(path.stem, []).append(load_pack(path))
    return found


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def test_two_workers_finish_exactly_n_trials(pg_url, study_name, tmp_path):
    n = 4
    outs = [tmp_path / "hostA", tmp_path / "hostB"]
    procs = [_worker(pg_url, study_name, out, i, n) for i, out in enumerate(outs)]
    for p in procs:
        _finish(p)
    trials = _trials(pg_url, study_name)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n
    # Nothing left running or queued, nothing failed; any other trial is a surplus pruned unevaluated.
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert all("pack" not in t.user_attrs for t in trials if t.state == TrialState.PRUNED)
    assert len({t.number for t in trials}) == len(trials)
    packs = _packs(outs)
    # Each completed trial has exactly one pack, in the tree of the worker that ran it; no other pack.
    assert sorted(packs) == sorted(t.user_attrs["cand_id"] for t in complete)
    assert all(len(v) == 1 for v in packs.values())
    for t in complete:
        (pack,) = packs[t.user_attrs["cand_id"]]
        assert pack["stage"] == "screen" and pack["host"]["hostname"] == t.user_attrs["host"]
        assert t.user_attrs["pack"] == pack["artifacts"]["pack"]
        assert (outs[t.user_attrs["worker"]] / t.user_attrs["pack"]).is_file()
    # Both workers took part, each against its own stock baseline; report reads both trees.
    assert {t.user_attrs["worker"] for t in complete} == {0, 1}
    assert all((out / "artifacts/baselines.json").is_file() for out in outs)
    argv = [
        sys.executable,
        "-m",
        "dream",
        "report",
        "--out_root",
        str(outs[0]),
        "--out_root",
        str(outs[1]),
    ]
    res = subprocess.run(argv, cwd=DREAM_ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert all(t.user_attrs["cand_id"] in res.stdout for t in complete)


def test_sigkilled_workers_trial_is_failed_and_retried(pg_url, study_name, tmp_path):
    n = 4
    outs = [tmp_path / "hostA", tmp_path / "hostB"]
    a = _worker(pg_url, study_name, outs[0], 0, n)
    b = _worker(pg_url, study_name, outs[1], 1, n)
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and a.poll() is None:
        running = {
            t.user_attrs.get("worker"): t
            for t in _trials(pg_url, study_name)
            if t.state == TrialState.RUNNING
        }
        # Both mid-trial, A's params already suggested (else the snapshot holds none): kill A;
        # B must carry on untouched.
        if 0 in running and 1 in running and running[0].params:
            os.killpg(a.pid, signal.SIGKILL)
            a.wait()
            killed = running[0]
        time.sleep(0.2)
    a.stdout.close()
    assert killed is not None, "the two workers were never mid-trial at the same moment"
    _finish(b)
    trials = {t.number: t for t in _trials(pg_url, study_name)}
    assert trials[killed.number].state == TrialState.FAIL
    assert "pack" not in trials[killed.number].user_attrs  # died before its pack
    retries = [t for t in trials.values() if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1
    (retry,) = retries
    assert retry.state == TrialState.COMPLETE
    # The retry runs the dead trial's parameters: all it had suggested when it died (a snapshot
    # may predate some), and fresh ones for any it had not reached.
    assert (
        trials[killed.number].params
        and trials[killed.number].params.items() <= retry.params.items()
    )
    assert retry.user_attrs["worker"] == 1
    # Only the dead worker's trial failed; the study still has exactly n evaluated trials.
    assert [t.number for t in trials.values() if t.state == TrialState.FAIL] == [killed.number]
    assert sum(t.state == TrialState.COMPLETE for t in trials.values()) == n
    assert all(t.state != TrialState.RUNNING for t in trials.values())
    packs = _packs(outs)
    assert all(len(v) == 1 for v in packs.values())
    assert killed.user_attrs["cand_id"] not in packs
    assert retry.user_attrs["cand_id"] in packs


def test_a_worker_started_after_the_fleet_died_retries_its_last_trial(pg_url, study_name, tmp_path):
    n = 2
    outs = [tmp_path / "hostA", tmp_path / "hostB"]
    a = _worker(pg_url, study_name, outs[0], 0, n)
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and a.poll() is None:
        trials = _trials(pg_url, study_name)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        # In the study's last trial, its params already suggested (else the snapshot holds none).
        if (
            running
            and running[0].params
            and sum(t.state == TrialState.COMPLETE for t in trials) == n - 1
        ):
            os.killpg(a.pid, signal.SIGKILL)
            a.wait()
            (killed,) = running
        time.sleep(0.2)
    a.stdout.close()
    assert killed is not None, "worker 0 was never in the study's last trial"
    # The study now holds n - 1 results and a dead RUNNING trial: a new worker must not wait for
    # it forever, but fail it after the grace period and run its queued retry.
    _finish(_worker(pg_url, study_name, outs[1], 1, n))
    trials = _trials(pg_url, study_name)
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [killed.number]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    (dead,) = [t for t in trials if t.number == killed.number]
    assert retry.state == TrialState.COMPLETE
    assert dead.params and dead.params.items() <= retry.params.items()  # see the SIGKILL test
    assert sum(t.state == TrialState.COMPLETE for t in trials) == n


def test_a_paused_worker_stops_at_a_trial_boundary_and_its_rerun_finishes_the_study(
    pg_url, study_name, tmp_path
):
    n, population = 3, 4  # one NSGA-II generation: proposals depend on the seeds alone
    out = tmp_path / "host"
    proc = _worker(pg_url, study_name, out, 0, n, population)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if any(t.state == TrialState.RUNNING for t in _trials(pg_url, study_name)):
            request_pause(out / "artifacts", "test")  # while its first trial runs
            break
        time.sleep(0.2)
    text, _ = proc.communicate(timeout=600)
    assert proc.returncode == EXIT_PAUSED, text
    trials = _trials(pg_url, study_name)
    # The trial that was running finished and was told; nothing is left running, queued or failed.
    assert [t.state for t in trials] == [TrialState.COMPLETE]
    ack = json.loads((out / "artifacts/control/pause_ack_worker.json").read_text())
    assert ack["evaluated"] == 1 and ack["study"] == study_name
    _finish(_worker(pg_url, study_name, out, 0, n, population))
    trials = _trials(pg_url, study_name)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * n
    packs = _packs([out])
    assert sorted(packs) == sorted(t.user_attrs["cand_id"] for t in trials)
    assert all(len(v) == 1 for v in packs.values())
    # Paused and rerun, it asked what an uninterrupted worker with the same seed asks.
    other = f"{study_name}_whole"
    try:
        _finish(_worker(pg_url, other, tmp_path / "whole", 0, n, population))
        assert [t.params for t in _trials(pg_url, other)] == [t.params for t in trials]
    finally:
        _delete_studies(pg_url, other, f"{other}_full")


# A worker's own steps up to the moment after it attached its pack, then SIGKILL: the study is
# never told. (A kill from outside cannot hit that window of a few database writes reliably.)
_DIE_AFTER_ATTACHING = """
import os, signal, sys
from pathlib import Path
from dream.baseline import BaselineStore, ensure_baselines
from dream.config import load_config
from dream.evaluator import EvalContext
from dream.fleet import WorkerOptions, attach
from dream.search import SearchEngine, fleet_storage

url, study, out = sys.argv[1:4]
opts = WorkerOptions("cpu", url, study, 1, 2, 0, heartbeat_interval=1, grace_period=4)
ctx = EvalContext(load_config(profile="local"), Path(out), run_id="2026-01-01T00-00-00_r001")
storage = fleet_storage(url, heartbeat_interval=1, grace_period=4, max_retry=2)
engine = SearchEngine(ctx.artifacts / "studies", ctx.spec("cpu"), population=2, seed=0,
                      watts=False, storage=storage, study_name=study)
baselines = ensure_baselines(ctx, BaselineStore(ctx.artifacts / "baselines.json"), "cpu",
                             regimes=("normal",))
engine.study.sampler = engine.fleet_sampler(0, 0)

def objective(trial):
    attach(ctx, engine, opts, baselines, trial, {})
    os.kill(os.getpid(), signal.SIGKILL)

engine.study.optimize(objective, n_trials=1)
"""


def test_a_pack_attached_by_a_worker_killed_before_telling_is_adopted_once(
    pg_url, study_name, tmp_path
):
    outs = [tmp_path / "hostA", tmp_path / "hostB"]
    argv = [sys.executable, "-c", _DIE_AFTER_ATTACHING, pg_url, study_name, str(outs[0])]
    dead = subprocess.run(argv, cwd=DREAM_ROOT, capture_output=True, text=True, timeout=600)
    assert dead.returncode == -signal.SIGKILL, dead.stderr
    (killed,) = _trials(pg_url, study_name)
    assert killed.state == TrialState.RUNNING and "values" in killed.user_attrs
    # Another worker fails the stale trial; its queued retry adopts the attached pack.
    _finish(_worker(pg_url, study_name, outs[1], 1, 1))
    trials = {t.number: t for t in _trials(pg_url, study_name)}
    assert trials[killed.number].state == TrialState.FAIL
    (retry,) = [t for t in trials.values() if t.number != killed.number]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["retry_of"] == killed.number
    assert retry.values == killed.user_attrs["values"] and retry.params == killed.params
    assert retry.user_attrs["pack"] == killed.user_attrs["pack"]
    assert retry.user_attrs["worker"] == 0 and retry.user_attrs["adopted_by"]["worker"] == 1
    # The genome was measured once: one pack, in the dead worker's tree; none in the adopter's.
    assert sorted(_packs(outs)) == [killed.user_attrs["cand_id"]]
    assert (outs[0] / killed.user_attrs["pack"]).is_file()


def test_a_trial_a_retry_took_over_never_counts_and_a_told_unscorable_one_does():
    study = optuna.create_study(directions=["maximize"])
    u = {"params": {"u_x": 0.5}, "distributions": {"u_x": FloatDistribution(0.0, 1.0)}}
    failed = TrialState.FAIL
    study.add_trial(create_trial(state=failed, user_attrs={"pack": "p0", "values": [1.0]}, **u))
    retry = {"failed_trial": 0, "retry_history": [0]}  # what Optuna's retry callback writes
    study.add_trial(create_trial(state=TrialState.WAITING, system_attrs=retry, **u))
    study.add_trial(create_trial(state=failed, user_attrs={"pack": "p2", "values": None}, **u))
    study.add_trial(create_trial(state=failed, user_attrs={"pack": "p3"}, **u))  # died mid-attach
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=1.0, **u))
    trials = study.get_trials()
    taken_over = superseded(trials)
    assert taken_over == {0}
    assert [evaluated(t, taken_over) for t in trials] == [False, False, True, False, True]
    # The dead trial's genome is claimed once, by its queued retry.
    assert [t.number for t in claims(trials)] == [1, 2, 4]


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"n_trials": 0}, "--n-trials"),
        ({"grace_period": 1}, "--grace-period"),
        ({"max_retry": -1}, "--max-retry"),
    ],
)
def test_worker_options_refuse_bad_values(kw, match):
    args = {"domain": "cpu", "storage": "sqlite://", "study": "s", "n_trials": 2, "population": 2}
    with pytest.raises(ConfigError, match=match):
        WorkerOptions(**{**args, **kw})


def test_worker_refuses_an_unreachable_storage_with_exit_3(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "dream", "worker", "--domain", "cpu", "--n-trials", "1",
         "--storage", "postgresql+psycopg://nobody@127.0.0.1:1/none", "--out_root", str(tmp_path)],
        cwd=DREAM_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
    assert "does not answer" in res.stderr and not (tmp_path / "artifacts/candidates").exists()
