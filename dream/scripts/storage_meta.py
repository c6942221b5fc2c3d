"""storage idle regime: every --interval seconds, create, stat and unlink a burst of small files.

Prints one JSON object: perf (metadata cycles per second of busy time), p95_ms (per-cycle latency), errors.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    """Run the metadata loop for --duration seconds and print its KPIs."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--scratch", type=Path, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--burst", type=int, default=32)
    args = ap.parse_args()
    payload = np.random.default_rng(args.seed).bytes(512)
    lat_ms, errors, busy = [], 0, 0.0
    end = time.monotonic() + args.duration
    tick = 0
    while time.monotonic() < end:
        t_burst = time.perf_counter()
        for i in range(args.burst):
            path = args.scratch / f"meta_{tick}_{i}"
            t0 = time.perf_counter()
            try:
                fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
                os.write(fd, payload)
                os.close(fd)
                os.stat(path)
                os.unlink(path)
            except OSError:
                errors += 1
                continue
            lat_ms.append((time.perf_counter() - t0) * 1e3)
        busy += time.perf_counter() - t_burst
        tick += 1
        time.sleep(max(0.0, min(args.interval, end - time.monotonic())))
    if not lat_ms:
        raise SystemExit("no metadata cycle completed")
    print(
        json.dumps(
            {
                "perf": len(lat_ms) / busy,
                "p95_ms": float(np.percentile(lat_ms, 95)),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
