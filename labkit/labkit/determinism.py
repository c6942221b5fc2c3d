"""Seeding and deterministic-algorithm switches, returned as flags for the run record."""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, *, deterministic: bool = True) -> dict[str, Any]:
    """Seed python, numpy and torch; switch torch to deterministic kernels; return the flags set."""
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    # PYTHONHASHSEED only reaches child processes; recorded so they hash like this one would.
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic GEMMs; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return determinism_flags(seed)


def determinism_flags(seed: int | None = None) -> dict[str, Any]:
    """Describe the current determinism settings for a run record."""
    return {
        "seed": seed,
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
        "torch_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "torch_num_threads": torch.get_num_threads(),
    }


def derive_seed(*parts: object) -> int:
    """Derive a stable 63-bit seed from any parts (e.g. seed, phase, step, layer); same parts, same seed."""
    text = "\x1f".join(repr(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def generator(*parts: object) -> torch.Generator:
    """A CPU torch.Generator seeded from `derive_seed(*parts)`."""
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed(*parts))
    return g
