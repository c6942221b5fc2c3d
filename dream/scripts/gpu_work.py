"""gpu regimes: fixed torch work on one device, shaped by precision, batch, streams, context and CUDA graphs.

Modes: idle (a small matmul every 50 ms), infer (transformer-layer forward; perf = tokens/s), matmul
(square GEMMs; perf = TFLOP/s), mixed (an infer step then a matmul step; perf = pairs/s).
Prints one JSON object: perf, p95_ms (per-step latency), and watts, power_draw_w (mean, peak) and
temp_peak_c from NVML through torch when the device and pynvml allow it (omitted otherwise).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
D_MODEL, N_HEAD, GEMM_N = 512, 8, 4096


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _on_streams(device: torch.device, parts: list[Callable[[], None]]) -> Callable[[], None]:
    # Independent slices of one step go to their own CUDA streams so they may overlap.
    if device.type != "cuda" or len(parts) == 1:

        def serial() -> None:
            for p in parts:
                p()

        return serial
    streams = [torch.cuda.Stream(device) for _ in parts]

    def step() -> None:
        main = torch.cuda.current_stream(device)
        for s, p in zip(streams, parts, strict=True):
            s.wait_stream(main)
            with torch.cuda.stream(s):
                p()
        for s in streams:
            main.wait_stream(s)

    return step


def _matmul(a: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        torch.matmul(a, a)

    return run


def _forward(layer: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        layer(x)

    return run


def _graphed(device: torch.device, step: Callable[[], None]) -> Callable[[], None]:
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def build(args: argparse.Namespace, device: torch.device) -> tuple[Callable[[], None], float]:
    """The step function of a mode and the work one step does (in perf units)."""
    dtype = DTYPES[args.precision]
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    if args.mode == "idle":
        a = torch.randn(256, 256, generator=gen).to(device, dtype)
        return _matmul(a), 1.0
    infer = gemm = None
    if args.mode in ("infer", "mixed"):
        layer = torch.nn.TransformerEncoderLayer(D_MODEL, N_HEAD, 4 * D_MODEL, batch_first=True)
        layer = layer.to(device, dtype).eval()
        x = torch.randn(args.batch, args.context, D_MODEL, generator=gen).to(device, dtype)
        infer = _on_streams(device, [_forward(layer, c) for c in x.chunk(args.streams)])
    if args.mode in ("matmul", "mixed"):
        mats = [
            torch.randn(GEMM_N, GEMM_N, generator=gen).to(device, dtype)
            for _ in range(args.streams)
        ]
        gemm = _on_streams(device, [_matmul(m) for m in mats])

    def both() -> None:
        infer()
        gemm()

    if args.mode == "infer":
        step, work = infer, float(args.batch * args.context)
    elif args.mode == "matmul":
        step, work = gemm, args.streams * 2 * GEMM_N**3 / 1e12
    else:
        step, work = both, 1.0
    if args.cuda_graphs and device.type == "cuda":
        step = _graphed(device, step)
    return step, work


def _nvml(device: torch.device) -> tuple[float, float] | None:
    if device.type != "cuda":
        return None
    try:
        return torch.cuda.power_draw(device) / 1e3, float(torch.cuda.temperature(device))
    except (ModuleNotFoundError, RuntimeError):
        return None


def main() -> None:
    """Run the mode for --duration seconds and print its KPIs."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--mode", choices=("idle", "infer", "matmul", "mixed"), required=True)
    ap.add_argument("--precision", choices=tuple(DTYPES), default="fp32")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--cuda-graphs", action="store_true")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    device = torch.device(args.device)
    args.streams = max(1, min(args.streams, args.batch))
    with torch.inference_mode():
        step, work = build(args, device)
        step()  # warm-up: kernel selection and allocation are not part of the measurement
        _sync(device)
        lat_ms, power, temps, busy = [], [], [], 0.0
        end = time.monotonic() + args.duration
        while time.monotonic() < end:
            t0 = time.perf_counter()
            step()
            _sync(device)
            dt = time.perf_counter() - t0
            lat_ms.append(dt * 1e3)
            busy += dt
            if (sample := _nvml(device)) is not None:
                power.append(sample[0])
                temps.append(sample[1])
            if args.mode == "idle":
                time.sleep(0.05)
    out = {"perf": len(lat_ms) * work / busy, "p95_ms": float(np.percentile(lat_ms, 95))}
    if power:
        out |= {
            "watts": float(np.mean(power)),
            "power_draw_w": max(power),
            "temp_peak_c": max(temps),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
