"""Progress of long work on stderr: one live rich display on a terminal, one line per finished stage off it.

Heartbeats and zoo builds open a `Stage` each, so every phase that beats shows progress with no code of
its own. `LABKIT_PROGRESS=bar|lines|off` overrides the choice made from whether stderr is a terminal.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

ENV = "LABKIT_PROGRESS"
MODES = ("auto", "bar", "lines", "off")
DETAIL_ITEMS = 4

_lock = threading.Lock()
_live: Progress | None = None
_open = 0


def mode() -> str:
    """`bar`, `lines` or `off`: the environment's choice, else `bar` exactly when stderr is a terminal."""
    chosen = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if chosen not in MODES:
        chosen = "auto"
    if chosen == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return chosen


def describe(metrics: Mapping[str, Any]) -> str:
    """The first few scalar metrics as `name value` pairs, for a progress line."""
    parts = []
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            continue
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{name} {text}")
        if len(parts) == DETAIL_ITEMS:
            break
    return " · ".join(parts)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        redirect_stdout=True,
        redirect_stderr=True,
    )


class Stage:
    """One stage of long work; `update` it as it goes and `close` it once, with its final status
    (as a context manager: complete, or failed on an exception)."""

    def __init__(self, title: str, total: int | None, *, done: int = 0, end_line: bool = True):
        self.title = title
        self.total = total
        self.done = done
        self.end_line = end_line
        self.started = time.monotonic()
        self.mode = mode()
        self.closed = False
        self._task = None
        if self.mode == "bar":
            self._task = _attach(title, total, done)

    def update(self, done: int, *, total: int | None = None, detail: str = "") -> None:
        """Show `done` of `total` (unchanged if None), with `detail` after the title."""
        self.done = done
        if total is not None:
            self.total = total
        if self._task is not None and not self.closed and _live is not None:
            title = f"{self.title}: {detail}" if detail else self.title
            _live.update(self._task, completed=done, total=self.total, description=title)

    def close(self, status: str = "complete") -> None:
        """End the stage: the bar stays on screen; off a terminal a completed stage prints one line."""
        if self.closed:
            return
        self.closed = True
        if self._task is not None:
            _detach(self._task, self.done, self.total)
        elif self.mode == "lines" and self.end_line and status == "complete":
            of = "" if self.total is None else f"/{self.total}"
            seconds = time.monotonic() - self.started
            print(f"{self.title}: complete, {self.done}{of} in {seconds:.1f} s", file=sys.stderr)

    def __enter__(self) -> Stage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close("complete" if exc_type is None else "failed")


def _attach(title: str, total: int | None, done: int) -> Any:
    global _live, _open
    with _lock:
        if _live is None:
            _live = _progress()
            _live.start()
        _open += 1
        return _live.add_task(title, total=total, completed=done)


def _detach(task: Any, done: int, total: int | None) -> None:
    global _live, _open
    with _lock:
        if _live is None:
            return
        _live.update(task, completed=total if total is not None and done >= total else done)
        _live.stop_task(task)
        _open -= 1
        if _open == 0:
            _live.stop()
            _live = None


@atexit.register
def _stop_display() -> None:
    """Leave the terminal as found (cursor shown) when a stage was never closed."""
    global _live
    with _lock:
        if _live is not None:
            _live.stop()
            _live = None
