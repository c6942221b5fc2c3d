"""Per-unit mean and standard deviation of u from float64 sums, and z = (u - mu) / (sigma + eps)."""

from __future__ import annotations

import numpy as np
import torch


class MomentAccumulator:
    """Running float64 sums of u and u^2 per (layer, unit), on the device where u lives."""

    def __init__(self, n_layers: int, d_ff: int):
        self.n_layers, self.d_ff = n_layers, d_ff
        self.sums: list[torch.Tensor | None] = [None] * n_layers
        self.squares: list[torch.Tensor | None] = [None] * n_layers
        self.counts = np.zeros(n_layers, dtype=np.int64)

    def add(self, layer: int, u: torch.Tensor) -> None:
        """Accumulate one batch u [..., d_ff] of `layer`."""
        x = u.detach().reshape(-1, self.d_ff).to(torch.float64)
        s, q = x.sum(0), (x * x).sum(0)
        if self.sums[layer] is None:
            self.sums[layer], self.squares[layer] = s, q
        else:
            self.sums[layer] += s
            self.squares[layer] += q
        self.counts[layer] += x.shape[0]

    def finalize(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) as float64 [L, d_ff]; sigma is the population standard deviation."""
        if (self.counts == 0).any():
            raise RuntimeError(f"no activations seen for layers {np.flatnonzero(self.counts == 0)}")
        n = self.counts[:, None].astype(np.float64)
        sums = np.stack([s.cpu().numpy() for s in self.sums])
        squares = np.stack([q.cpu().numpy() for q in self.squares])
        mu = sums / n
        var = np.maximum(squares / n - mu * mu, 0.0)
        return mu, np.sqrt(var)


def standardize(
    u: torch.Tensor,
    mu: torch.Tensor,
    sigma: torch.Tensor,
    eps: float,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """z in float32 for one layer: `mu`, `sigma` are that layer's [d_ff] float32 tensors on u's device.

    `out` (float32, u's shape) receives z when given; it must not alias u.
    """
    z = torch.sub(u.to(torch.float32), mu, out=out)
    return z.div_(sigma + eps)
