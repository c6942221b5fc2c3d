"""Pass a pause request from an outer folder (a sweep) down to the run working inside it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from labkit.control import REQUEST, request_pause


@contextmanager
def relay_pause(
    outer_dir: str | os.PathLike, run_dir: str | os.PathLike, *, interval_s: float = 0.5
) -> Iterator[threading.Event]:
    """While the block runs, copy a pause request of `outer_dir` into `run_dir` (once).

    The run's phases already stop at their own safe points when `run_dir/control/pause.request`
    appears, so a sweep-level request pauses the phase in flight instead of waiting for the run
    to end. The outer request stays in place for the sweep to acknowledge. If the block ends
    normally after the relay fired, no phase took the copy, and it is removed so that it cannot
    pause a later, unrelated start of the run. The yielded event is set once the relay fired.
    """
    outer, copy = Path(outer_dir) / REQUEST, Path(run_dir) / REQUEST
    stop, fired = threading.Event(), threading.Event()

    def watch() -> None:
        while not stop.wait(interval_s):
            if outer.exists():
                request_pause(run_dir, f"relayed from {outer}")
                fired.set()
                return

    thread = threading.Thread(target=watch, name="pause-relay", daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        stop.set()
        thread.join()
    if fired.is_set():
        copy.unlink(missing_ok=True)
