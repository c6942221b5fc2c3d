"""scripts/gpu_check.sh, everything but the CUDA device: steps under their own time limits (a hang costs
only its step), the benches, and at most 8 flat files in OUTDIR with a per-step summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from labkit.zoo.store import zoo_home

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def gpu_check(outdir: Path, **env: str) -> subprocess.CompletedProcess:
    """Run the script as the lent machine would, with `env` added."""
    return subprocess.run(
        ["bash", str(SCRIPT), str(outdir)],
        env={**os.environ, "PY": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_every_step_runs_under_its_limit_and_the_outputs_come_back_flat(tmp_path, zoo_test_model):
    out = tmp_path / "out"
    done = gpu_check(
        out,
        DEVICE="cpu",
        LABKIT_HOME=str(zoo_home()),
        STEPS="env avalanche_llm bench_raster bench_decode",
        # the rehearsal cannot finish in 4 s: the step is killed, the benches still run
        LIMIT_AVALANCHE_LLM="4",
        # generous limits for the others: a loaded CI machine can take a minute to import torch
        LIMIT_ENV="300",
        LIMIT_BENCH_RASTER="300",
        LIMIT_BENCH_DECODE="300",
        BENCH_RASTER_ARGS=f"--models local --local_model {zoo_test_model('tiny-llama')} "
        "--windows 2 --seq_len 16 --batch 2 --repeats 1",
        BENCH_DECODE_ARGS=f"--shape local --model {zoo_test_model('tiny-gpt2')} "
        "--prompt_tokens 8 --new_tokens 2 --repeats 1",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads((out / "gpu_check_summary.json").read_text())
    exits = {s["step"]: s["exit"] for s in summary["steps"]}
    assert exits == {"env": 0, "avalanche_llm": 124, "bench_raster": 0, "bench_decode": 0}
    assert summary["passed"] is False and summary["device"] == "cpu"
    assert {s["step"]: s["limit"] for s in summary["steps"]}["avalanche_llm"] == 4

    files = list(out.iterdir())
    assert len(files) <= 8 and all(f.is_file() for f in files)
    assert {"gpu_check.log", "gpu_check_summary.json", "env.txt", "runs.tar.gz"} <= {
        f.name for f in files
    }
    assert "torch" in (out / "env.txt").read_text()
    assert "ratio" in (out / "bench_raster.txt").read_text()
    decode = json.loads((out / "bench_decode.txt").read_text().strip().splitlines()[-1])
    assert decode["device"] == "cpu" and decode["ratio_r_phi_to_stock"] > 0
    with tarfile.open(out / "runs.tar.gz") as tar:
        assert any(n.startswith("runs/avalanche_llm") for n in tar.getnames())
    log = (out / "gpu_check.log").read_text()
    assert log.index("=== gpu_check: env") < log.index("=== gpu_check: bench_decode")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_stops_before_any_step(tmp_path):
    done = gpu_check(tmp_path / "out")
    assert done.returncode == 3
    assert "DEVICE=cuda but torch.cuda.is_available() is false" in done.stderr
    assert not (tmp_path / "out" / "gpu_check_summary.json").exists()
