"""Terminal dashboard over a run's heartbeats (or a sweep's runs): `python -m labkit.watch --run_dir D [--follow]`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from labkit.cli import run_cli
from labkit.control import REQUEST
from labkit.errors import ConfigError, MissingInputError
from labkit.heartbeat import TERMINAL
from labkit.jsonl import read_jsonl
from labkit.rundir import RECORD
from labkit.tables import add_json_flag, table_console

STATUS_STYLE = {"running": "cyan", "paused": "yellow", "complete": "green", "failed": "bold red"}


@dataclass
class PhaseView:
    """The newest readable heartbeat of one phase (`beat` is None when nothing could be read)."""

    phase: str
    beat: dict[str, Any] | None
    note: str = ""


def read_phase(snapshot: Path) -> PhaseView:
    """Read a phase's snapshot, falling back to its timeline's last whole line if it is unreadable."""
    phase = snapshot.name.removesuffix("_heartbeat.json")
    try:
        beat = json.loads(snapshot.read_text(encoding="utf-8"))
        if isinstance(beat, dict):
            return PhaseView(phase, beat)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    timeline = read_jsonl(snapshot.with_suffix(".jsonl")).records
    if timeline:
        return PhaseView(phase, timeline[-1], "snapshot unreadable; from timeline")
    return PhaseView(phase, None, "heartbeat unreadable")


def read_phases(run_dir: Path) -> list[PhaseView]:
    """Every phase heartbeat found under `run_dir/logs`, by phase name."""
    return [read_phase(p) for p in sorted((run_dir / "logs").glob("*_heartbeat.json"))]


def all_terminal(views: list[PhaseView]) -> bool:
    """True when at least one phase exists and every phase is paused, complete or failed."""
    return bool(views) and all(v.beat and v.beat.get("status") in TERMINAL for v in views)


def _parse_utc(text: Any) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _process_gone(beat: dict[str, Any]) -> bool:
    if beat.get("hostname") != socket.gethostname() or not isinstance(beat.get("pid"), int):
        return False
    try:
        os.kill(beat["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def health(beat: dict[str, Any], now: datetime, stale_after_s: float) -> str:
    """'' when fine; otherwise why a 'running' heartbeat looks dead (stale, or its process is gone)."""
    if beat.get("status") != "running":
        return ""
    if _process_gone(beat):
        return "process gone"
    updated = _parse_utc(beat.get("updated_utc"))
    if updated is not None and (now - updated).total_seconds() > stale_after_s:
        return "stale"
    return ""


def render(run_dir: Path, views: list[PhaseView], stale_after_s: float) -> Group:
    """The dashboard: a line about the run, a row per phase, then checkpoints and read problems."""
    now = datetime.now(UTC)
    header = Text(f"run {run_dir}\n", style="bold")
    try:
        record = json.loads((run_dir / RECORD).read_text(encoding="utf-8"))
        header.append(f"record: {record.get('status')}")
    except (OSError, ValueError):
        header.append("record: unreadable")
    if (run_dir / REQUEST).exists():
        header.append("  pause requested", style="yellow")
    table = Table(show_edge=False, pad_edge=False)
    for name in ("phase", "progress", "status", "step", "ETA", "steps/s", "updated"):
        table.add_column(name, no_wrap=True)
    lines: list[Text] = []
    for view in views:
        if view.note:
            lines.append(Text(f"{view.phase}: {view.note}", style="red"))
        b = view.beat
        if b is None:
            table.add_row(view.phase, "", Text("unreadable", style="red"), *[""] * 4)
            continue
        status = str(b.get("status"))
        step, total = b.get("step") or 0, b.get("total")
        updated = _parse_utc(b.get("updated_utc"))
        age = None if updated is None else (now - updated).total_seconds()
        problem = health(b, now, stale_after_s)
        status_text = Text(status, style=STATUS_STYLE.get(status, ""))
        if problem:
            status_text.append(f" ({problem})", style="bold red")
        rate = b.get("throughput_steps_per_s")
        table.add_row(
            view.phase,
            ProgressBar(total=total, completed=step, width=16),
            status_text,
            f"{step}/{total if total is not None else '?'}",
            _duration(b.get("eta_s")),
            "-" if rate is None else f"{rate:.3g}",
            "-" if age is None else f"{_duration(age)} ago",
        )
        for key in ("latest_checkpoint", "latest_state"):
            if b.get(key):
                lines.append(Text(f"{view.phase} {key.removeprefix('latest_')}: {b[key]}"))
    if not views:
        return Group(header, Text("no heartbeats yet under logs/"))
    return Group(header, table, *lines)


def as_json(
    run_dir: Path, views: list[PhaseView], summaries: list[Path], stale_after_s: float
) -> dict[str, Any]:
    """What the dashboard shows, as data: each phase's heartbeat and health, and each sweep summary."""
    now = datetime.now(UTC)
    sweeps = []
    for path in summaries:
        try:
            sweeps.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            sweeps.append({"summary": str(path), "error": "unreadable"})
    phases = [
        {
            "phase": v.phase,
            "health": "unreadable" if v.beat is None else health(v.beat, now, stale_after_s),
            "note": v.note,
            "heartbeat": v.beat,
        }
        for v in views
    ]
    return {"run_dir": str(run_dir), "phases": phases, "sweeps": sweeps}


def _fingerprint(views: list[PhaseView]) -> tuple:
    return tuple(
        (v.phase, v.note, *(v.beat.get(k) for k in ("updated_utc", "status", "step")))
        if v.beat
        else (v.phase, v.note)
        for v in views
    )


def main(args: argparse.Namespace) -> int:
    """Show the heartbeats once, or follow them until interrupted or every phase is terminal."""
    # Imported here: labkit.sweep_view builds on this module's readers.
    from labkit.sweep_view import render_sweep, sweep_summaries, sweeps_terminal

    if args.interval <= 0 or args.stale_after <= 0:
        raise ConfigError("--interval and --stale_after must be positive")
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise MissingInputError(f"run directory not found: {run_dir}")
    console = table_console()
    # A sweep's out root (or sweep folder) also gets one line per run of each sweep in it.
    summaries = sweep_summaries(run_dir)
    views = read_phases(run_dir)

    def draw() -> Group:
        own = [render(run_dir, views, args.stale_after)] if views or not summaries else []
        return Group(*own, *(render_sweep(s) for s in summaries))

    def fingerprint() -> tuple:
        stamps = tuple(s.stat().st_mtime_ns if s.exists() else None for s in summaries)
        return _fingerprint(views), stamps

    def finished() -> bool:
        return all_terminal(views) if views else bool(summaries) and sweeps_terminal(summaries)

    def show() -> None:
        if args.json:  # one JSON document per line, so --follow writes JSON Lines
            print(json.dumps(as_json(run_dir, views, summaries, args.stale_after)), flush=True)
        else:
            console.print(draw())

    if not args.follow:
        show()
        return 0
    # A terminal gets a live view; a pipe, a file or --json gets a new block each time something changes.
    live = (
        Live(console=console, auto_refresh=False) if console.is_terminal and not args.json else None
    )
    seen = None
    with live or contextlib.nullcontext():
        while True:
            if live is not None:
                live.update(draw(), refresh=True)
            elif fingerprint() != seen:
                seen = fingerprint()
                show()
            if args.stop_on_terminal and finished():
                return 0
            time.sleep(args.interval)
            views = read_phases(run_dir)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m labkit.watch`."""
    p = argparse.ArgumentParser(prog="labkit.watch", description=__doc__.splitlines()[0])
    p.add_argument(
        "--run_dir",
        required=True,
        help="run directory to watch; a sweep's out root or sweep folder shows a line per run",
    )
    p.add_argument("--follow", action="store_true", help="keep refreshing until interrupted")
    p.add_argument(
        "--stop_on_terminal",
        action="store_true",
        help="with --follow: exit 0 once every phase is paused, complete or failed",
    )
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    p.add_argument(
        "--stale_after",
        type=float,
        default=120.0,
        help="flag a running phase whose heartbeat is older than this many seconds",
    )
    add_json_flag(p)
    return p


if __name__ == "__main__":
    run_cli(build_parser(), main)
