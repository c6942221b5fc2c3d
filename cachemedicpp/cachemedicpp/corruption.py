"""The corruption family C: seven damage types on K,V [1,H,T,d], matched or published strength, seeded.

An event's draws come from one CPU generator per (event key, layer, K|V), drawn time-major over
`max_len` positions, so a position's damage is the same on every read and bitwise equal per seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch

from cachemedicpp.masks import Axes, head_mask, layer_set, time_mask
from labkit.determinism import generator

TYPES = (
    "gaussian",
    "dropout_zero",
    "orthogonal_rotation",
    "bitflipish_sparse",
    "quant_noise",
    "contiguous_overwrite",
    "targeted",
)
MIX_TYPES = TYPES[:6]  # `targeted` wraps a base type on chosen layers/heads; it is not in Π
_DRAWS = {
    "gaussian": ("normal",),
    "dropout_zero": ("uniform",),
    "bitflipish_sparse": ("uniform", "uniform", "normal"),
}
_QUANT_BITS = (1.5, 24.0)  # bisection range of the (continuous) bit width in matched mode


@dataclass(frozen=True)
class Params:
    """The per-type parameters of `corruption.params` (published values; matched mode refits them)."""

    dropout_p: float = 0.02
    rotation_seed: int = 999
    bitflip_p: float = 5e-4
    bitflip_eps_jump: float = 8.0
    quant_bits: float = 8.0
    overwrite_window: tuple[int, int] = (16, 48)
    targeted_base_type: str = "gaussian"

    @classmethod
    def from_config(cls, params: Mapping[str, Any]) -> Params:
        """Params from the resolved `corruption.params` mapping (the donor prompt is used elsewhere)."""
        win = params["overwrite_window"]
        return cls(
            dropout_p=params["dropout_p"],
            rotation_seed=params["rotation_seed"],
            bitflip_p=params["bitflip_p"],
            bitflip_eps_jump=params["bitflip_eps_jump"],
            quant_bits=params["quant_bits"],
            overwrite_window=(win[0], win[1]),
            targeted_base_type=params["targeted_base_type"],
        )


@dataclass(frozen=True, eq=False)
class CorruptionEvent:
    """One event of C: its type and strength, where it strikes, and the key every draw derives from."""

    type: str
    eps: float
    key: tuple  # (seed, phase, step or example index)
    protect_layers: tuple[int, ...]
    axes: Axes = field(default_factory=Axes)
    params: Params = field(default_factory=Params)
    eps_mode: str = "matched"  # matched | reference
    persistence: str = "transient"  # transient: C on every read | persistent: written once
    max_len: int = 1024  # draws cover cache positions [0, max_len)
    donor: Mapping[int, tuple[torch.Tensor, torch.Tensor]] | None = None  # clean K,V per layer

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown corruption type {self.type!r}; known: {', '.join(TYPES)}")
        if self.eps < 0 or not math.isfinite(self.eps):
            raise ValueError(f"corruption eps must be finite and >= 0, got {self.eps}")
        if self.base_type == "contiguous_overwrite" and self.eps > 0 and self.donor is None:
            raise ValueError(
                "contiguous_overwrite needs donor K,V (see cachemedicpp.mixture.donor_cache)"
            )

    @property
    def base_type(self) -> str:
        """The damage actually applied (`targeted` applies its base type)."""
        return self.params.targeted_base_type if self.type == "targeted" else self.type

    @property
    def effective_axes(self) -> Axes:
        """The axes in force (`targeted` restricts to the configured layers and heads)."""
        return self.axes.targeted() if self.type == "targeted" else self.axes

    def layers(self) -> tuple[int, ...]:
        """The layers this event hits."""
        return layer_set(self.effective_axes, self.protect_layers, self.key)


def rms(x: torch.Tensor) -> torch.Tensor:
    """Per-vector root mean square over the last (head) dimension."""
    return x.pow(2).mean(dim=-1, keepdim=True).sqrt()


def relative_change(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    """‖y − x‖ / ‖x‖ over the masked entries (0 when the mask is empty or x is zero there)."""
    return change_from(x, mask)(y)


def change_from(x: torch.Tensor, mask: torch.Tensor) -> Callable[[torch.Tensor], float]:
    """y ↦ `relative_change(x, y, mask)`, with what does not depend on y computed once (a
    matched fit bisects over 30 candidate y)."""
    m = mask.to(torch.float32)
    x32 = x.float()
    den = (x32 * m).pow(2).sum()
    if den == 0:
        return lambda y: 0.0
    return lambda y: ((y.float() - x32) * m).pow(2).sum().div(den).sqrt().item()


def random_rotation(d: int, seed: int) -> torch.Tensor:
    """The published rotation: Q of the QR of a seeded d×d Gaussian, column signs fixed (float64)."""
    g = torch.randn(d, d, generator=generator(seed, "rotation", d), dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    return q * torch.sign(torch.diagonal(r))


@cache
def skew_spectrum(d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A seeded skew-symmetric A with ‖A‖₂ = 1 and the eigenpairs of the Hermitian iA (float64).

    exp(θA) = V diag(e^(−iθμ)) Vᴴ rotates by angles at most θ, and ‖x(exp(θA) − I)‖² =
    Σ_j |(xV)_j|² · 4 sin²(θμ_j/2): matching eps needs no matrix exponential per trial θ.
    """
    g = torch.randn(d, d, generator=generator(seed, "skew", d), dtype=torch.float64)
    a = g - g.T
    a = a / torch.linalg.matrix_norm(a, ord=2)
    mu, vecs = torch.linalg.eigh(1j * a.to(torch.complex128))
    return a, mu, vecs


def head_amax(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-head max |x| over the masked entries [1,H,1,1]: the base of `quantize`'s scale."""
    return (x.abs() * mask).amax(dim=(-2, -1), keepdim=True)


def quantize(x: torch.Tensor, amax: torch.Tensor, bits: float) -> torch.Tensor:
    """Symmetric de/quantisation with qmax = 2^(bits−1) − 1 and one scale per head (`head_amax`)."""
    qmax = 2.0 ** (bits - 1) - 1
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return (x / scale).round().clamp(-qmax, qmax) * scale


def bisect(
    f: Callable[[float], float], lo: float, hi: float, target: float, *, rising: bool
) -> float:
    """The t in [lo, hi] where monotone f crosses `target` (30 halvings: ~1e-9 of the range)."""
    for _ in range(30):
        mid = (lo + hi) / 2
        if (f(mid) < target) == rising:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class EventState:
    """An event applied to one model's cache: masks, draws and fitted strengths, fixed at first read."""

    def __init__(self, event: CorruptionEvent, n_heads: int):
        self.event = event
        self.n_heads = n_heads
        self.layers = frozenset(event.layers())
        self.realized: dict[int, float] = {}  # relative change of K,V on masked entries, per layer
        self._heads: dict[int, torch.Tensor] = {}
        self._fitted: dict[tuple[int, str], Any] = {}
        self._draws: dict[tuple[int, str], list[torch.Tensor]] = {}

    def region(self, layer: int, length: int, *, oracle: bool = False) -> torch.Tensor:
        """Boolean [1,H,T,1] the event's time region covers: all heads, or (oracle) its true mask."""
        ev = self.event
        t = time_mask(ev.effective_axes, length)
        if ev.base_type == "contiguous_overwrite":
            start, end = ev.axes.window or ev.params.overwrite_window
            t &= (torch.arange(length) >= start) & (torch.arange(length) < end)
        heads = torch.ones(self.n_heads, dtype=torch.bool)
        if oracle:
            heads = self._head_mask(layer) & (layer in self.layers)
        return (heads[:, None] & t[None, :])[None, :, :, None]

    def _head_mask(self, layer: int) -> torch.Tensor:
        if layer not in self._heads:
            ev = self.event
            self._heads[layer] = head_mask(ev.effective_axes, self.n_heads, ev.key, layer)
        return self._heads[layer]

    def apply(
        self, layer: int, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """C on one layer's K,V [1,H,T,d]; untouched layers and eps 0 return the inputs themselves."""
        if layer not in self.layers or self.event.eps == 0:
            return key, value
        length = key.shape[-2]
        if length > self.event.max_len:
            raise ValueError(
                f"cache length {length} exceeds the event's max_len {self.event.max_len}"
            )
        mask = self.region(layer, length, oracle=True).to(key.device)
        out = [self._corrupt(layer, part, x, mask) for part, x in (("K", key), ("V", value))]
        dk = sum(
            ((y.float() - x.float()) * mask).pow(2).sum()
            for x, y in zip((key, value), out, strict=True)
        )
        base = sum((x.float() * mask).pow(2).sum() for x in (key, value))
        self.realized[layer] = (dk / base).sqrt().item() if base > 0 else 0.0
        return out[0], out[1]

    def eps_realized(self) -> float:
        """Mean relative change over the layers this event has damaged so far (0 before any read)."""
        return sum(self.realized.values()) / len(self.realized) if self.realized else 0.0

    # -- one tensor ----------------------------------------------------------------------------
    def _corrupt(self, layer: int, part: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        kind = self.event.base_type
        x32 = x.float()
        draws = self._draws_for(layer, part, x)
        donor = self._donor(layer, part, x32) if kind == "contiguous_overwrite" else None
        if (layer, part) not in self._fitted:
            self._fitted[layer, part] = self._fit(kind, x32, mask, donor)
        theta = self._fitted[layer, part]
        if kind == "contiguous_overwrite":
            mask = mask & (torch.arange(x.shape[-2], device=x.device) < theta)[None, None, :, None]
            y = donor
        else:
            y = _damage(kind, x32, mask, draws, theta, self.event.params.bitflip_eps_jump)
        return torch.where(mask, y.to(x.dtype), x)

    def _donor(self, layer: int, part: str, x: torch.Tensor) -> torch.Tensor:
        """The donor's K or V at the positions of x; positions past the donor's length keep x."""
        src = self.event.donor[layer][0 if part == "K" else 1].float().to(x.device)
        n = min(src.shape[-2], x.shape[-2])
        return torch.cat([src[:, :, :n], x[:, :, n:]], dim=-2)

    def _draws_for(self, layer: int, part: str, x: torch.Tensor) -> list[torch.Tensor]:
        kinds = _DRAWS.get(self.event.base_type, ())
        if (layer, part) not in self._draws:
            g = generator(*self.event.key, layer, part)
            shape = (self.event.max_len, x.shape[1], x.shape[3])
            full = [
                torch.randn(shape, generator=g) if k == "normal" else torch.rand(shape, generator=g)
                for k in kinds
            ]
            self._draws[layer, part] = [d.permute(1, 0, 2)[None].to(x.device) for d in full]
        return [d[:, :, : x.shape[-2]] for d in self._draws[layer, part]]

    def _fit(
        self, kind: str, x: torch.Tensor, mask: torch.Tensor, donor: torch.Tensor | None
    ) -> Any:
        """The strength parameter of `kind`: published (reference) or matched to eps on this tensor."""
        ev, p = self.event, self.event.params
        matched = ev.eps_mode == "matched"
        if kind == "gaussian":
            return ev.eps
        if kind == "dropout_zero":
            return min(ev.eps**2, 1.0) if matched else p.dropout_p
        if kind == "bitflipish_sparse":
            return min(ev.eps**2 / (2 + p.bitflip_eps_jump**2 / 2), 1.0) if matched else p.bitflip_p
        if kind == "orthogonal_rotation":
            d = x.shape[-1]
            if not matched:
                return random_rotation(d, p.rotation_seed).to(x)
            skew, mu, vecs = skew_spectrum(d, p.rotation_seed)
            rows = x.double()[mask.expand_as(x)].view(-1, d)
            power = (rows.to(vecs.dtype) @ vecs).abs().pow(2).sum(dim=0)
            base = rows.pow(2).sum()
            if base == 0:
                return torch.eye(d).to(x)

            def ratio(theta: float) -> float:
                return ((power * 4 * torch.sin(theta * mu / 2) ** 2).sum() / base).sqrt().item()

            theta = bisect(ratio, 0.0, math.pi, ev.eps, rising=True)
            return torch.linalg.matrix_exp(theta * skew).to(x)
        if kind == "quant_noise":
            if not matched:
                return p.quant_bits
            lo, hi = _QUANT_BITS
            amax, change = head_amax(x, mask), change_from(x, mask)
            return bisect(
                lambda b: change(quantize(x, amax, b)),
                lo,
                hi,
                ev.eps,
                rising=False,
            )
        # contiguous_overwrite: the end position of the overwritten span [start, end)
        start, end = ev.axes.window or p.overwrite_window
        if not matched:
            return end
        per_pos = ((donor - x) * mask).pow(2).sum(dim=(0, 1, 3))[start:end].cumsum(0)
        base = (x * mask).pow(2).sum()
        if per_pos.numel() == 0 or base == 0:
            return start
        ratios = (per_pos / base).sqrt()
        return start + 1 + int((ratios - ev.eps).abs().argmin())


def _damage(
    kind: str,
    x: torch.Tensor,
    mask: torch.Tensor,
    draws: list[torch.Tensor],
    theta: Any,
    jump: float,
) -> torch.Tensor:
    """The damaged tensor everywhere (the caller keeps it on the mask only)."""
    if kind == "gaussian":
        return x + theta * rms(x) * draws[0]
    if kind == "dropout_zero":
        return torch.where(draws[0] < theta, torch.zeros_like(x), x)
    if kind == "bitflipish_sparse":
        pick, half, sign = draws[0] < theta, draws[1] < 0.5, torch.sign(draws[2])
        flipped = torch.where(half, -x, x + sign * jump * x.abs().clamp_min(1e-3))
        return torch.where(pick, flipped, x)
    if kind == "orthogonal_rotation":
        return x @ theta
    return quantize(x, head_amax(x, mask), theta)
