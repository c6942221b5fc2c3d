"""storage mixed regime: cycle through file sizes, each written, fdatasync'ed, dropped from cache and read back.

Prints one JSON object: perf (MB moved per second, writes plus reads), p95_ms (per-file latency), errors.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def _cycle(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fdatasync(fd)
        # Clean pages can be dropped, so the read below goes to the device, not the page cache.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        got = os.read(fd, len(data))
    finally:
        os.close(fd)
    os.unlink(path)
    if len(got) != len(data):
        raise OSError(f"short read: {len(got)} of {len(data)} bytes")


def main() -> None:
    """Run the write/sync/read cycle for --duration seconds and print its KPIs."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--scratch", type=Path, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--sizes-kb", default="4,64,1024")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    blobs = [rng.bytes(int(kb) * 1024) for kb in args.sizes_kb.split(",")]
    lat_ms, errors, moved, busy = [], 0, 0, 0.0
    end = time.monotonic() + args.duration
    i = 0
    while time.monotonic() < end:
        data = blobs[i % len(blobs)]
        t0 = time.perf_counter()
        try:
            _cycle(args.scratch / f"mixed_{i}", data)
        except OSError:
            errors += 1
        else:
            dt = time.perf_counter() - t0
            lat_ms.append(dt * 1e3)
            moved += 2 * len(data)
            busy += dt
        i += 1
    if not lat_ms:
        raise SystemExit("no file cycle completed")
    print(
        json.dumps(
            {
                "perf": moved / 1e6 / busy,
                "p95_ms": float(np.percentile(lat_ms, 95)),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
