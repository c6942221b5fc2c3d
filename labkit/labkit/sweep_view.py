"""A sweep at a glance: one line per run (status, phase, step, node), read from the files on disk.

The view needs only the sweep's summary and its runs' heartbeats, so it works the same for runs
in this process, in local worker processes or on any node of a Ray cluster (shared storage).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from labkit.progress import ENV as PROGRESS_ENV
from labkit.tables import table_console
from labkit.watch import STATUS_STYLE, read_phases

SUMMARY_SUFFIX = "_summary.json"
# Sweep statuses after which nothing more happens until someone reruns the sweep.
ENDED = ("complete", "failed", "paused", "interrupted")
NOTE_WIDTH = 48


def sweep_summaries(path: str | os.PathLike) -> list[Path]:
    """The sweep summaries `path` shows: those in an out root, or the one of a sweep folder."""
    path = Path(path)
    found = sorted(path.glob(f"*{SUMMARY_SUFFIX}"))
    if found:
        return found
    own = path.parent / f"{path.name}{SUMMARY_SUFFIX}"
    return [own] if own.is_file() else []


def sweeps_terminal(summaries: list[Path]) -> bool:
    """True when every summary says its sweep has ended (complete, failed, paused, interrupted)."""
    for path in summaries:
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("status") not in ENDED:
                return False
        except (OSError, ValueError):
            return False
    return True


def _latest_beat(run_dir: Path) -> dict[str, Any] | None:
    beats = [v.beat for v in read_phases(run_dir) if v.beat]
    return max(beats, key=lambda b: str(b.get("updated_utc")), default=None)


def _where(run: dict[str, Any], beat: dict[str, Any] | None) -> str:
    node = run.get("node") or {}
    host = node.get("hostname") or (beat or {}).get("hostname") or ""
    return f"{host} {node['node_ip']}" if node.get("node_ip") else host


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_sweep(summary_file: Path) -> RenderableType:
    """One header line for the sweep and one row per run."""
    try:
        doc = json.loads(summary_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Text(f"{summary_file}: unreadable (being rewritten?)", style="red")
    counts = "  ".join(f"{k} {v}" for k, v in doc.get("counts", {}).items() if v)
    header = Text(f"sweep {doc.get('sweep_name')}: {doc.get('status')}  {counts}", style="bold")
    table = Table(show_edge=False, pad_edge=False)
    runs = doc.get("runs", [])
    table.add_column("run", no_wrap=True, min_width=max((len(r["name"]) for r in runs), default=3))
    table.add_column("status", no_wrap=True, min_width=len("complete"))
    for name in ("phase", "progress", "step", "node"):
        table.add_column(name, no_wrap=True, min_width=len(name))
    # The only column that may wrap, so that a long error never squeezes the ones before it.
    table.add_column("note")
    for run in runs:
        beat = _latest_beat(summary_file.parent / run["run_dir"])
        step, total = (beat or {}).get("step") or 0, (beat or {}).get("total")
        status = str(run["status"])
        table.add_row(
            run["name"],
            Text(status, style=STATUS_STYLE.get(status, "")),
            (beat or {}).get("phase", ""),
            ProgressBar(total=total, completed=step, width=16) if beat else "",
            f"{step}/{total if total is not None else '?'}" if beat else "",
            _where(run, beat),
            _cut(run.get("error") or "", NOTE_WIDTH),
        )
    return Group(header, table)


class _SweepRenderable:
    """Re-read on every refresh, so a live display follows the files."""

    def __init__(self, summary_file: Path):
        self.summary_file = summary_file

    def __rich__(self) -> RenderableType:
        if not self.summary_file.is_file():
            return Text(f"waiting for {self.summary_file}")
        return render_sweep(self.summary_file)


@contextlib.contextmanager
def live_sweep(
    summary_file: str | os.PathLike, console: Console | None = None, refresh_s: float = 1.0
) -> Iterator[None]:
    """Show the sweep's run lines live while the block runs (on a terminal; else once at the end)."""
    view = _SweepRenderable(Path(summary_file))
    console = console or table_console()
    # The view shows every run's phase and step, so runs (in this process or spawned from it) draw no
    # progress of their own over it.
    previous = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "off"
    try:
        with Live(view, console=console, refresh_per_second=1 / refresh_s, transient=False):
            yield
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = previous
        if not console.is_terminal:
            console.line()  # off a terminal, Live leaves its last line open for the next print
