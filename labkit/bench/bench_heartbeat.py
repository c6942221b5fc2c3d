"""Heartbeat overhead: a small MLP training step with and without heartbeat + pause checks.

Run: `python labkit/bench/bench_heartbeat.py`. Three arms alternate step by step in one process:
a plain step, a plain step again (the A/A noise floor), and a step followed by `Heartbeat.beat`
and `PauseControl.requested` with their default throttles. Steps are timed in thread CPU time on
one torch thread, so other processes on a shared machine do not blur a sub-1% difference. A
heartbeat write waits on the disk rather than the CPU, so its wall time is measured on its own
and added, amortised over the steps between two writes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from torch import nn

from labkit.control import PauseControl
from labkit.heartbeat import Heartbeat


def make_step(batch: int, width: int) -> Callable[[], float]:
    """A closure doing one forward/backward/Adam step of a 3-layer MLP; returns the loss."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, width, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)

    def step() -> float:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def mean_ns(fn: Callable[[int], object], n: int) -> float:
    """Mean wall nanoseconds of `fn(i)` over `n` calls."""
    t0 = time.perf_counter_ns()
    for i in range(n):
        fn(i)
    return (time.perf_counter_ns() - t0) / n


def main() -> None:
    """Measure and print the overhead ratio and the per-call costs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000, help="timed steps per arm")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=256)
    args = p.parse_args()

    torch.set_num_threads(1)
    step = make_step(args.batch, args.width)
    with tempfile.TemporaryDirectory() as run_dir:
        hb = Heartbeat(run_dir, "bench", total=args.steps)
        pause = PauseControl(run_dir, "bench", heartbeat=hb)

        def plain(k: int) -> float:
            t0 = time.thread_time()
            step()
            return time.thread_time() - t0

        def with_heartbeat(k: int) -> float:
            t0 = time.thread_time()
            hb.beat(k, metrics={"loss": step()})
            if pause.requested():
                raise SystemExit("unexpected pause request in the bench directory")
            return time.thread_time() - t0

        arms = {"plain": plain, "plain (A/A)": plain, "heartbeat": with_heartbeat}
        times: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(50):  # warm-up: allocator, kernels, page cache
            step()
        wall0 = time.perf_counter()
        for k in range(1, args.steps + 1):
            # Rotate the order so no arm always runs right after another.
            names = list(arms)[k % 3 :] + list(arms)[: k % 3]
            for name in names:
                times[name].append(arms[name](k))
        step_wall = (time.perf_counter() - wall0) / (3 * args.steps)

        beat_ns = mean_ns(lambda i: hb.beat(args.steps + i, metrics={"loss": 0.5}), 200_000)
        check_ns = mean_ns(lambda i: pause.requested(), 200_000)
        stat_ns = mean_ns(lambda i: pause.request.exists(), 200_000)
        write_ns = mean_ns(lambda i: hb.beat(args.steps, force=True), 30)

    base = statistics.median(times["plain"])
    cpu = statistics.median(times["heartbeat"]) / base - 1
    noise = statistics.median(times["plain (A/A)"]) / base - 1
    writes = write_ns / 1e9 / max(hb.min_interval_s, step_wall)
    print(f"torch {torch.__version__}, 1 thread; step: MLP width {args.width}, batch {args.batch}")
    print(
        f"step: median {base * 1e3:.3f} ms CPU, {step_wall * 1e3:.3f} ms wall "
        f"({args.steps} steps per arm)"
    )
    print(
        f"A/B CPU overhead of beat + pause check: {cpu * 100:+.3f}% (A/A noise {noise * 100:+.3f}%)"
    )
    print(
        f"heartbeat write (json atomic + jsonl): {write_ns / 1e6:.2f} ms wall, one per "
        f"{hb.min_interval_s:g} s -> {writes * 100:.3f}% of wall time"
    )
    print(f"overhead ratio (CPU A/B + amortised writes): {(cpu + writes) * 100:.3f}% of a step")
    print(
        f"per call: beat {beat_ns:.0f} ns (throttled), pause check {check_ns:.0f} ns "
        f"(throttled to every {pause.min_interval_s:g} s; the stat itself {stat_ns:.0f} ns)"
    )


if __name__ == "__main__":
    main()
