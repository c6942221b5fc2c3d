"""SIGKILL a command at seeded random points, run it again, and compare its finals with an unbroken run.

Each `Job` is one system's smallest real command (zoo `test` sizes). A run starts the command in
its own session with its own working directory, waits until the command has written something
(past its imports and checks), sleeps a seeded fraction of the reference run's working time, and
SIGKILLs the whole process group (`kill -9 -- -PGID`). Five seconds later nothing may still run in
that session or in that directory: that would be an orphan. The same command then runs again, and
the chain's last run must end with the reference run's final artifacts (`Job.finals`: sha256 of
each, timing fields dropped).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labkit.zoo import resolve_model

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
ORPHAN_GRACE_S = 5.0
# Fields that hold wall-clock readings: they differ between any two runs, killed or not.
# cachemedicpp's train.jsonl: timestamp_utc, seconds_per_step.
TIMING_KEYS = frozenset({"timestamp_utc", "seconds_per_step"})


def sha256(data: bytes) -> str:
    """sha256 hex digest of bytes."""
    return hashlib.sha256(data).hexdigest()


def _drop_timing(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_timing(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_drop_timing(v) for v in obj]
    return obj


def json_digest(path: Path) -> str:
    """Digest of a JSON document without its timing fields."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    return sha256(json.dumps(_drop_timing(doc), sort_keys=True).encode())


def jsonl_digest(path: Path) -> str:
    """Digest of a JSON-lines log without its timing fields (order and count of lines kept)."""
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return sha256(json.dumps(_drop_timing(lines), sort_keys=True).encode())


def tensors_digest(path: Path, key: str | None = None) -> str:
    """Digest of the tensors a torch checkpoint holds (under `key`), independent of zip layout."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    obj = obj[key] if key else obj
    h = hashlib.sha256()
    for name in sorted(obj):
        h.update(name.encode())
        h.update(obj[name].contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Job:
    """One system's command and how its final artifacts are digested."""

    system: str
    argv: Callable[[Path], list[str]]  # given the trial's directory
    finals: Callable[[Path], dict[str, str]]  # artifact → digest, once the command has finished


def _stat(pid: str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _left(root: Path, sid: int) -> list[int]:
    out = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat(p)
        if fields is None or fields[0] in ("Z", "X"):
            continue
        try:
            cwd = os.readlink(f"/proc/{p}/cwd").removesuffix(" (deleted)")
        except OSError:
            cwd = ""
        if int(fields[3]) == sid or cwd == str(root) or cwd.startswith(f"{root}{os.sep}"):
            out.append(int(p))
    return out


def orphans(root: Path, sid: int, grace_s: float = ORPHAN_GRACE_S) -> list[int]:
    """Processes alive `grace_s` after a kill, in the killed session or working under `root`."""
    deadline = time.monotonic() + grace_s
    while (left := _left(root, sid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _start(job: Job, root: Path) -> subprocess.Popen:
    root.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        job.argv(root),
        cwd=root,  # every child inherits it: what still works in `root` after a kill is an orphan
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _wrote_since(root: Path, since: float) -> bool:
    # The command got past its imports and checks: it has written under its directory.
    for path in root.rglob("*"):
        try:
            if path.stat().st_mtime > since:
                return True
        except OSError:
            continue
    return False


def _await_work(proc: subprocess.Popen, root: Path, since: float) -> None:
    while proc.poll() is None and not _wrote_since(root, since):
        time.sleep(0.02)


def run_through(job: Job, root: Path, timeout_s: float = 600) -> tuple[int, str]:
    """Run the command to its end; (exit status, last stderr line)."""
    proc = _start(job, root)
    _, err = proc.communicate(timeout=timeout_s)
    lines = err.decode(errors="replace").strip().splitlines()
    return proc.returncode, lines[-1] if lines else ""


def reference(job: Job, root: Path) -> tuple[dict[str, str], float]:
    """An unbroken run's finals, and how long its work took after its first write (kills aim there)."""
    since = time.time()
    proc = _start(job, root)
    _await_work(proc, root, since)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=600)
    span = time.monotonic() - t0
    assert proc.returncode == 0, f"{job.system} reference failed: {err.decode()[-2000:]}"
    return finals(job, root), span


@dataclass
class Tally:
    """What the harness saw for one system."""

    kills: int = 0
    finished_first: int = 0  # runs that ended before their kill landed: not kills
    identical: int = 0  # chains whose final artifacts equal the reference's
    different: list[str] = field(default_factory=list)
    orphans: list[int] = field(default_factory=list)


def finals(job: Job, root: Path) -> dict[str, str]:
    """The job's final digests, and the temp files that atomic writes left (none, in a good run)."""
    temps = sorted(p.relative_to(root).as_posix() for p in root.rglob(".*.tmp"))
    return {**job.finals(root), "stray temp files": ",".join(temps)}


def _compare(job: Job, root: Path, want: dict[str, str], rc: int, last: str, tally: Tally) -> None:
    if rc not in (0, 4):  # 4: the last kill landed after the final write; the run is complete
        tally.different.append(f"{root.name}: the run exited {rc}: {last}")
        return
    got = finals(job, root)
    if got == want:
        tally.identical += 1
    else:
        diff = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
        tally.different.append(f"{root.name}: {diff}")


def harness(job: Job, tmp: Path, *, kills: int, seed: int, max_runs: int) -> Tally:
    """`kills` SIGKILLs of `job` at seeded random points, each followed by the same command again.

    The kills fall in a chain on one directory (the re-run after a kill is itself killed), and the
    chain's last run goes to the end; its finals must equal an unbroken reference run's. A run that
    ends before its kill closes the chain (compared too), and the next kill starts a new one.
    """
    want, span = reference(job, tmp / "reference")
    rng = random.Random(f"{seed}:{job.system}")
    tally = Tally()
    chain, open_chain = 0, False
    for _ in range(max_runs):
        if tally.kills >= kills:
            break
        root = tmp / f"chain{chain}"
        since = time.time()
        proc = _start(job, root)
        _await_work(proc, root, since)
        time.sleep(rng.uniform(0.05, 0.95) * span / kills)
        if proc.poll() is not None:
            _, err = proc.communicate()
            tally.finished_first += 1
            lines = err.decode(errors="replace").strip().splitlines()
            _compare(job, root, want, proc.returncode, lines[-1] if lines else "", tally)
            chain, open_chain = chain + 1, False
            continue
        os.killpg(proc.pid, signal.SIGKILL)  # kill -9 -- -PGID
        proc.communicate()
        tally.kills += 1
        tally.orphans += orphans(root, proc.pid)
        open_chain = True
    if open_chain:
        root = tmp / f"chain{chain}"
        _compare(job, root, want, *run_through(job, root), tally)
    return tally


# --- the five systems, each at its smallest real size -------------------------------------------


def _zoo(name: str) -> str:
    return str(resolve_model(f"local:{name}", size="test"))


def labkit_job() -> Job:
    """labkit's self-check: 12 steps, a checkpoint every 2."""
    outputs = ("weights.safetensors", "metrics.json", "logs/loss.jsonl")
    flags = ["--steps", "12", "--pause_at", "0", "--step_sleep", "0.05", "train.checkpoint_every=2"]
    return Job(
        "labkit selfcheck",
        lambda root: [PY, "-m", "labkit.selfcheck", "--run_dir", str(root / "run"), *flags],
        lambda root: {n: sha256((root / "run" / n).read_bytes()) for n in outputs},
    )


def cachemedicpp_job() -> Job:
    """CacheMedic++ train on the zoo's test tiny-gpt2: calibration and 12 repair steps."""
    config = REPO / "cachemedicpp" / "configs" / "mve_local.yaml"
    args = ["-m", "cachemedicpp.train", "--config", str(config)]
    overrides = [
        f"model.name={_zoo('tiny-gpt2')}",
        "data.dataset=local:stories@test",
        "repair.protect_layers=[0, 1]",
        "corruption.calibrate.n_windows=2",
        "train.steps=12",
        "train.log_every=2",
        "train.checkpoint_every=3",
    ]

    def finals(root: Path) -> dict[str, str]:
        run = root / "run"
        return {
            "repair_step_12.pt": tensors_digest(run / "checkpoints/repair_step_12.pt", "phi"),
            "train.jsonl": jsonl_digest(run / "logs/train.jsonl"),
            "calibration.json": json_digest(run / "metrics/calibration.json"),
        }

    return Job(
        "cachemedicpp train",
        lambda root: [PY, *args, "--run_dir", str(root / "run"), *overrides],
        finals,
    )


def esper_job() -> Job:
    """Esper train-host on 16-px test-size images, a 4-4-4 host, two episodes."""
    config = REPO / "esper" / "configs" / "cifar10_local.yaml"
    args = ["-m", "esper", "train-host", "--config", str(config)]
    overrides = ["data.size=test", "data.image_size=16", "data.batch_size=64"]
    overrides += ["host.widths=[4,4,4]", "episodes=2"]
    logs = ("episodes.jsonl", "steps.jsonl", "events.jsonl")
    return Job(
        "esper train-host",
        lambda root: [PY, *args, "--run_dir", str(root / "run"), *overrides],
        lambda root: {n: jsonl_digest(root / "run" / n) for n in logs},
    )


def avalanche_job() -> Job:
    """AvalancheLLM phase1_calibrate on the zoo's test models and data."""
    config = REPO / "avalanche_llm" / "configs" / "pipeline_local.yaml"
    sets = [
        f"models.INSTRUCT.hf_id={_zoo('tiny-llama')}",
        f"models.BASE.hf_id={_zoo('tiny-gpt2')}",
        "datasets.A.id=local:stories@test",
        "datasets.B.id=local:stories@test",
        "datasets.ARC_MCQ.id=local:mcq@test",
        "pipeline.gain_grid=[0.8,1.0,1.2]",
        "pipeline.target_events_per_site=[0.38,1.52]",
        "pipeline.bootstrap_reps=50",
    ]
    args = ["-m", "avalanche_llm", "phase1_calibrate", "--config", str(config)]
    args += [x for s in sets for x in ("--set", s)]

    def finals(root: Path) -> dict[str, str]:
        out = root / "run"
        return {
            p.relative_to(out).as_posix(): sha256(p.read_bytes())
            for p in sorted(out.glob("RUN_*/results/**/*"))
            if p.is_file()
        }

    return Job(
        "avalanche phase1_calibrate",
        lambda root: [PY, *args, "--out_root", str(root / "run"), "--allow_resume"],
        finals,
    )


DREAM_IDENTITY = ("schema", "domain", "cand_id", "generation", "stage", "profile", "actuation")


def dream_job() -> Job:
    """D-REAM evaluate on cpu, screen stage, 1-s trials, two blocks.

    Its numbers are measurements of a live host and differ between any two runs, killed or not;
    what must match is the pack's identity (genome, seed, stage, regimes), which baselines exist,
    and that exactly one valid pack was written.
    """
    args = ["-m", "dream", "evaluate", "--profile", "local", "--domain", "cpu"]
    args += ["--genome", '{"thread_count": 1}', "--stage", "screen", "--cand-id", "k"]
    for o in ("trials=2", "min_trials=2", "min_successful_trials=2", "max_trial_failures=2"):
        args += ["-o", f"regimes.profiles.local.execution.{o}"]

    def finals(root: Path) -> dict[str, str]:
        from dream.candidate_pack import load_pack

        art = root / "run" / "artifacts"
        pack = load_pack(art / "candidates" / "cpu" / "k.json")
        ident = {k: pack[k] for k in DREAM_IDENTITY}
        ident |= {"genome": pack["genome"], "seed": pack["seed"]}
        ident["regimes"] = [r["regime"] for r in pack["regimes"]]
        baselines = json.loads((art / "baselines.json").read_text())
        return {
            "pack identity": sha256(json.dumps(ident, sort_keys=True).encode()),
            "packs": ",".join(sorted(p.name for p in art.glob("candidates/*/*.json"))),
            "baseline regimes": sha256(json.dumps(_shape(baselines), sort_keys=True).encode()),
        }

    return Job("dream evaluate", lambda root: [PY, *args, "--out_root", str(root / "run")], finals)


def _shape(obj: Any) -> Any:
    # Keys only: which (domain, regime) baselines exist, not what they measured.
    return {k: _shape(v) for k, v in obj.items()} if isinstance(obj, dict) else None


JOBS: dict[str, Callable[[], Job]] = {
    "labkit": labkit_job,
    "cachemedicpp": cachemedicpp_job,
    "esper": esper_job,
    "avalanche": avalanche_job,
    "dream": dream_job,
}
