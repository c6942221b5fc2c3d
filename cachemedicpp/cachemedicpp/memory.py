"""Peak memory of one eval cell: exact on CUDA, the process high-water mark on CPU."""

from __future__ import annotations

import resource
import sys

import torch


class PeakMemory:
    """Started at construction; `read()` gives {peak_memory_mb, peak_memory_scope}.

    CUDA resets the allocator's peak so the number is this cell's own ('cell'). A CPU process
    cannot reset its resident high-water mark, so there it is the whole process's so far
    ('process'): an upper bound on the cell, comparable across cells only when it grows.
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        self.device = device

    def read(self) -> dict[str, float | str]:
        """This cell's peak in MiB and the scope it covers."""
        if self.cuda:
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            return {"peak_memory_mb": peak, "peak_memory_scope": "cell"}
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes.
        peak = rss / 2**20 if sys.platform == "darwin" else rss / 2**10
        return {"peak_memory_mb": peak, "peak_memory_scope": "process"}
