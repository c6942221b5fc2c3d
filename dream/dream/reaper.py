"""Workload processes never outlive dream: a parent-death signal, a pid file, and a start-up sweep."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pwd
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from labkit.atomic import atomic_write_json

PIDFILE = "workloads.json"  # in the scratch root: the workloads running now, with their identity
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, never in the forked child


def _die_with(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        # Runs in the child after fork and after the uid change (which would clear the signal).
        # The kernel then SIGKILLs the workload when dream dies, however it dies; stress-ng's and
        # fio's own workers end when their parent does.
        if _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:  # dream died between fork and prctl: no signal will come
            os._exit(126)

    return preexec


def unprivileged_ids() -> tuple[int, int]:
    """(uid, gid) of `nobody`, whom root-started stress-ng runs as (65534 where no such user exists)."""
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def spawn(
    argv: Sequence[str], *, cwd: Path, stdout: IO[bytes], stderr: IO[bytes], drop_root: bool
) -> subprocess.Popen[bytes]:
    """Start argv in its own session, tied to this process by PR_SET_PDEATHSIG=SIGKILL.

    With `drop_root` and euid 0 it runs as `nobody` in `cwd` (chowned to it): stress-ng writes
    /sys/kernel/debug/clear_warn_once whenever its euid is 0, and no option turns that off.
    The kernel sends the signal when the *thread* that forked exits: call it from the thread that
    waits for the workload (dream runs trials on its main thread).
    """
    ids: dict[str, Any] = {}
    if drop_root and os.geteuid() == 0:
        uid, gid = unprivileged_ids()
        os.chown(cwd, uid, gid)
        ids = {"user": uid, "group": gid, "extra_groups": []}
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with(os.getpid()),
        **ids,
    )


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name may hold spaces


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
    except OSError:
        return None


class Registry:
    """The pid file of the workloads running now, so that a later run can kill what a dead one left."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def records(self) -> list[dict[str, Any]]:
        """The workloads the pid file names (empty when there is none)."""
        if not self.path.is_file():
            return []
        return json.loads(self.path.read_text(encoding="utf-8"))

    def _write(self, records: list[dict[str, Any]]) -> None:
        if records:
            atomic_write_json(self.path, records)
        else:
            self.path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def running(self, proc: subprocess.Popen[bytes], cwd: Path) -> Iterator[None]:
        """Record `proc` (pid, start time, boot, argv, its private workdir) while the block runs."""
        rec = {
            "pid": proc.pid,
            "start_ticks": start_ticks(proc.pid),
            "boot_id": _boot_id(),
            "argv": [str(a) for a in proc.args],
            "cwd": str(Path(cwd).resolve()),
        }
        self._write([*self.records(), rec])
        try:
            yield
        finally:
            self._write([r for r in self.records() if r != rec])


def sweep(path: Path) -> list[int]:
    """Kill what a dead run's pid file names and what still runs in its workdirs; the pids killed.

    A process is that run's only if it started in this boot, no earlier than the recorded workload,
    and its working directory is the workload's private mkdtemp dir (its children inherit it); a
    reused pid fails those checks and is left alone.
    """
    boot = _boot_id()
    records = [r for r in Registry(path).records() if r["boot_id"] == boot and r["start_ticks"]]
    killed: list[int] = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit() and records):
        start, cwd = start_ticks(pid), _cwd(pid)
        if pid == os.getpid() or start is None or cwd is None:
            continue
        for rec in records:
            if start < rec["start_ticks"]:
                continue
            if cwd == rec["cwd"] or cwd.startswith(rec["cwd"] + os.sep):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                break
    Path(path).unlink(missing_ok=True)
    return killed
