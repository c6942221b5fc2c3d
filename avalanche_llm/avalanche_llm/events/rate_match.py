"""Rate-matched thresholds: per layer, the tau whose exceedance rate on the calibration data is r*_l.

Three passes over the same data (values are never stored whole):
1. range of v per layer, rounded out to RATE_MATCH_EDGE_ROUND_ABS;
2. a histogram with RATE_MATCH_HIST_BINS bins by floor index + bincount (torch.histc is not
   deterministic on CUDA); the cut bin lies just below the lowest edge whose tail count is <= k*;
3. the values inside each cut bin, whose order statistic gives the exact tau: with k* = floor(r* N)
   spikes wanted and c_hi values above the bin, tau is the (k* - c_hi)-th largest in-bin value
   (0-based), so exactly k* values exceed it unless values tie.
Ties are common: bf16 activations put a unit's tail on a coarse grid, and a tie group at the k*-th
value can hold as many values as the rate tolerance. No threshold can then split the group, so tau
takes whichever side of it lands nearer k*: the tied value itself (the group stays silent) or the
float32 just below it (the group spikes). Without ties this is exactly the order-statistic tau.
The gate then requires |r - r*| <= tol_abs and <= tol_rel * r* and at least min_samples per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from avalanche_llm.errors import GateError

# consumer(layer, {key: v}, rows) as produced by events.stream.stream_spike_values
Consumer = Callable[[int, dict[str, torch.Tensor], slice], None]
RunPass = Callable[[Consumer], None]


@dataclass(frozen=True)
class LayerFit:
    """Thresholds of one (spike definition, target rate) for every layer, with what they achieved."""

    tau: np.ndarray  # [L] float64 (each a float32-representable value of v)
    target: np.ndarray  # [L] r*_l
    achieved: np.ndarray  # [L] exact exceedance rate on the fitting data
    n: np.ndarray  # [L] samples per layer
    tied: np.ndarray  # [L] values equal to the k*-th largest (1 when it is unique)

    @property
    def abs_err(self) -> np.ndarray:
        """|r - r*| per layer."""
        return np.abs(self.achieved - self.target)

    def gate(self, tol_abs: float, tol_rel: float, min_samples: int) -> np.ndarray:
        """Per-layer pass flags of the rate gate."""
        return (
            (self.abs_err <= tol_abs)
            & (self.abs_err <= tol_rel * self.target)
            & (self.n >= min_samples)
        )


def layer_targets(r_base: np.ndarray, rho: float) -> np.ndarray:
    """r*_l = clip(r_base_l * rho / mean_l(r_base_l), 0, 1): mean target rho, baseline's layer profile."""
    mean = float(np.mean(r_base))
    if mean <= 0:
        raise GateError("every layer has zero baseline rate at tau0; no rate profile to match")
    return np.clip(r_base * rho / mean, 0.0, 1.0)


def bin_index(v: torch.Tensor, lo: float, width: float, bins: int) -> torch.Tensor:
    """Floor bin index of every value, clamped into [0, bins - 1]."""
    return torch.floor((v.to(torch.float64) - lo) / width).long().clamp_(0, bins - 1)


class RateMatcher:
    """Accumulates the three passes for several keys (spike definitions) x target-rate vectors."""

    def __init__(
        self,
        targets: Mapping[str, Mapping[str, np.ndarray]],
        n_layers: int,
        bins: int,
        edge_round: float,
    ):
        self.targets = targets
        self.L, self.bins, self.edge_round = n_layers, bins, edge_round
        self.lo = {k: np.full(n_layers, np.inf) for k in targets}
        self.hi = {k: np.full(n_layers, -np.inf) for k in targets}
        self.width: dict[str, np.ndarray] = {}
        self.hist = {k: np.zeros((n_layers, bins), dtype=np.int64) for k in targets}
        # (key, layer) -> {bin: [value arrays]} for the cut bins
        self.values: dict[tuple[str, int], dict[int, list[np.ndarray]]] = {}
        self.cut: dict[tuple[str, str], np.ndarray] = {}  # cut bin per layer (-1: all spike)
        self.c_hi: dict[tuple[str, str], np.ndarray] = {}

    def observe_range(self, layer: int, vs: dict[str, torch.Tensor], _rows: slice) -> None:
        """Pass 1: running min and max."""
        for k in self.targets:
            self.lo[k][layer] = min(self.lo[k][layer], float(vs[k].min()))
            self.hi[k][layer] = max(self.hi[k][layer], float(vs[k].max()))

    def close_range(self) -> None:
        """Round each range outward to the edge grid and fix the bin widths."""
        r = self.edge_round
        for k in self.targets:
            lo = np.floor(self.lo[k] / r) * r
            hi = np.ceil(self.hi[k] / r) * r
            lo = np.where(lo > self.lo[k], lo - r, lo)
            hi = np.where(hi < self.hi[k], hi + r, hi)
            hi = np.where(hi <= lo, lo + r, hi)
            self.lo[k], self.width[k] = lo, (hi - lo) / self.bins

    def observe_hist(self, layer: int, vs: dict[str, torch.Tensor], _rows: slice) -> None:
        """Pass 2: histogram counts."""
        for k in self.targets:
            idx = bin_index(vs[k], self.lo[k][layer], self.width[k][layer], self.bins)
            self.hist[k][layer] += torch.bincount(idx.flatten(), minlength=self.bins).cpu().numpy()

    def close_hist(self) -> None:
        """Choose each target's cut bin and count the values above it."""
        for k, rates in self.targets.items():
            hist = self.hist[k]
            # tail[l, j] = values in bins >= j; tail[:, bins] = 0
            tail = np.concatenate(
                [np.cumsum(hist[:, ::-1], axis=1)[:, ::-1], np.zeros((self.L, 1), np.int64)], axis=1
            )
            n = hist.sum(axis=1)
            for rk, target in rates.items():
                k_star = np.floor(target * n).astype(np.int64)
                j_star = np.argmax(tail <= k_star[:, None], axis=1)  # lowest such edge
                cut = j_star - 1
                self.cut[k, rk] = cut
                self.c_hi[k, rk] = tail[np.arange(self.L), j_star]
                for layer in range(self.L):
                    if cut[layer] >= 0:
                        self.values.setdefault((k, layer), {})[int(cut[layer])] = []

    def observe_values(self, layer: int, vs: dict[str, torch.Tensor], _rows: slice) -> None:
        """Pass 3: keep only the values that fall in a cut bin."""
        for k in self.targets:
            wanted = self.values.get((k, layer))
            if not wanted:
                continue
            v = vs[k]
            idx = bin_index(v, self.lo[k][layer], self.width[k][layer], self.bins)
            for b, kept in wanted.items():
                kept.append(v[idx == b].to(torch.float32).cpu().numpy())

    def fits(self) -> dict[str, dict[str, LayerFit]]:
        """The exact thresholds and achieved rates per key and target."""
        out: dict[str, dict[str, LayerFit]] = {}
        for k, rates in self.targets.items():
            n = self.hist[k].sum(axis=1)
            out[k] = {}
            for rk, target in rates.items():
                tau = np.empty(self.L)
                count = np.empty(self.L, dtype=np.int64)
                tied = np.ones(self.L, dtype=np.int64)
                for layer in range(self.L):
                    cut, c_hi = int(self.cut[k, rk][layer]), int(self.c_hi[k, rk][layer])
                    if cut < 0:  # every value may spike: put tau below the range
                        tau[layer] = float(np.float32(self.lo[k][layer] - self.edge_round))
                        count[layer] = n[layer]
                        continue
                    inbin = np.sort(np.concatenate(self.values[k, layer][cut]))[::-1]
                    k_star = int(np.floor(target[layer] * n[layer]))
                    top = inbin[k_star - c_hi]
                    above = c_hi + int(np.count_nonzero(inbin > top))
                    tied[layer] = int(np.count_nonzero(inbin == top))
                    if above + tied[layer] - k_star < k_star - above:
                        tau[layer] = float(np.nextafter(np.float32(top), np.float32(-np.inf)))
                        count[layer] = above + tied[layer]
                    else:
                        tau[layer] = float(top)
                        count[layer] = above
                out[k][rk] = LayerFit(tau, np.asarray(target, float), count / n, n, tied)
        return out


def fit_thresholds(
    run_pass: RunPass,
    targets: Mapping[str, Mapping[str, np.ndarray]],
    n_layers: int,
    bins: int,
    edge_round: float,
) -> dict[str, dict[str, LayerFit]]:
    """Run the three passes through `run_pass(consumer)` and return the fits per key and target."""
    matcher = RateMatcher(targets, n_layers, bins, edge_round)
    run_pass(matcher.observe_range)
    matcher.close_range()
    run_pass(matcher.observe_hist)
    matcher.close_hist()
    run_pass(matcher.observe_values)
    return matcher.fits()


def check_gate(
    fits: Mapping[str, Mapping[str, LayerFit]],
    *,
    tol_abs: float,
    tol_rel: float,
    min_samples: int,
    where: str,
) -> None:
    """Raise GateError (exit 2) naming every (key, target, layer) whose rate misses its target."""
    bad = []
    for k, rates in fits.items():
        for rk, fit in rates.items():
            for layer in np.flatnonzero(~fit.gate(tol_abs, tol_rel, min_samples)):
                ties = f", {fit.tied[layer]} values tied at tau" if fit.tied[layer] > 1 else ""
                bad.append(
                    f"{k}|{rk} layer {layer}: r={fit.achieved[layer]:.3g} vs r*={fit.target[layer]:.3g}"
                    f" (n={fit.n[layer]}{ties})"
                )
    if bad:
        shown = "; ".join(bad[:4]) + (f"; ... {len(bad) - 4} more" if len(bad) > 4 else "")
        raise GateError(
            f"rate gate failed at {where} (tol {tol_abs:g} abs, {tol_rel:g} rel, >= {min_samples} samples): {shown}"
        )
