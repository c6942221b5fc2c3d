"""Genes on a `min..max/step` grid, decoded from u in [0,1] so both ends of every range are reachable."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dream.host import HostInfo
from labkit.errors import ConfigError

_NUMBER = re.compile(
    r"^\s*(?P<num>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+))?\s*\*?\s*(?P<tok>ncpu|tdp)?\s*$"
)


def resolve_number(text: str | float, host: HostInfo) -> float:
    """Read a number, or a multiple of a host quantity (`ncpu`, `2*ncpu`, `1.5tdp`)."""
    if isinstance(text, int | float):
        return float(text)
    m = _NUMBER.match(str(text))
    if not m or not (m.group("num") or m.group("tok")):
        raise ConfigError(f"cannot read {text!r} as a number or a multiple of ncpu/tdp")
    factor = float(m.group("num")) if m.group("num") else 1.0
    if m.group("tok") is None:
        return factor
    base = float(host.ncpu) if m.group("tok") == "ncpu" else host.tdp_w
    if base is None:
        raise ConfigError(
            f"{text!r} needs the package power limit (tdp), which this host does not expose"
        )
    return factor * base


@dataclass(frozen=True)
class Setting:
    """A real host setting a gene can write: files under a root, and how a gene value is written."""

    paths: tuple[str, ...]  # relative to the actuation root; globs and {blockdev} allowed
    encode: str = "int"  # int | choice | bool01 | onoff | inverted01
    scale: float = 1.0  # written value = gene value * scale (e.g. hugepages_mb -> 2 MB pages)
    bracketed: bool = False  # the file lists options and marks the current one `[like this]`


@dataclass(frozen=True)
class Gene:
    """One tunable: its grid, stock value, and whether it acts on the workload and/or a real setting."""

    name: str
    lo: float
    hi: float
    step: float
    default: float
    workload: bool = False  # shadow actuator: changes how the fixed work runs
    setting: Setting | None = (
        None  # real actuator (sysfs/sysctl); None and not workload -> firmware only
    )
    choices: tuple[str, ...] = ()
    integral: bool = field(default=False)

    def __post_init__(self) -> None:
        if self.step <= 0 or self.hi < self.lo:
            raise ConfigError(
                f"gene {self.name}: range {self.lo}..{self.hi}/{self.step} is empty or has step <= 0"
            )
        if not any(math.isclose(self.default, v, abs_tol=1e-9) for v in self.levels()):
            raise ConfigError(f"gene {self.name}: stock value {self.default} is not on its grid")

    def levels(self) -> list[float | int]:
        """Every value the gene can take, in order: min, min+step, ..., max (max added if off-grid)."""
        k = math.floor((self.hi - self.lo) / self.step + 1e-9) + 1
        values = [round(self.lo + i * self.step, 10) for i in range(k)]
        if values[-1] < self.hi - 1e-9:
            values.append(self.hi)
        return [round(v) for v in values] if self.integral else values

    def decode(self, u: float) -> float | int:
        """Map u in [0,1] to a level through equal-width bins: u=0 -> min, u=1 -> max."""
        if not 0.0 <= u <= 1.0:
            raise ConfigError(f"gene {self.name}: u={u} is outside [0, 1]")
        levels = self.levels()
        return levels[min(math.floor(u * len(levels)), len(levels) - 1)]

    def encode(self, value: float) -> float:
        """The centre of the bin holding `value`, so decode(encode(v)) == v."""
        levels = self.levels()
        idx = min(range(len(levels)), key=lambda i: abs(levels[i] - value))
        if not math.isclose(levels[idx], value, abs_tol=1e-9):
            raise ConfigError(f"gene {self.name}: {value} is not one of its levels")
        return (idx + 0.5) / len(levels)

    def label(self, value: float) -> str | None:
        """The choice name for an index gene, or None for a numeric one."""
        return self.choices[int(value)] if self.choices else None


def gene(
    name: str,
    spec: str,
    default: str | float,
    host: HostInfo,
    *,
    workload: bool = False,
    setting: Setting | None = None,
    choices: Sequence[str] = (),
) -> Gene:
    """Build a gene from `min..max/step` (step 1 when omitted) or from a list of choices."""
    if choices:
        lo, hi, step = 0.0, float(len(choices) - 1), 1.0
    else:
        rng, _, step_text = spec.partition("/")
        lo_text, sep, hi_text = rng.partition("..")
        if not sep:
            raise ConfigError(f"gene {name}: spec {spec!r} is not of the form min..max/step")
        lo, hi = resolve_number(lo_text, host), resolve_number(hi_text, host)
        step = resolve_number(step_text, host) if step_text else 1.0
    integral = all(float(x).is_integer() for x in (lo, hi, step))
    stock = resolve_number(default, host)
    if isinstance(default, str) and _NUMBER.match(default)["tok"]:
        # A host-dependent stock value (e.g. tdp) need not fall on the grid; take its nearest level.
        stock = min(
            Gene(name, lo, hi, step, lo, integral=integral).levels(), key=lambda v: abs(v - stock)
        )
    return Gene(
        name=name,
        lo=lo,
        hi=hi,
        step=step,
        default=stock,
        workload=workload,
        setting=setting,
        choices=tuple(choices),
        integral=integral,
    )


@dataclass(frozen=True)
class GenomeSpec:
    """A domain's genes, split into the active ones a search moves and the frozen ones held at stock."""

    domain: str
    genes: tuple[Gene, ...]
    frozen: Mapping[str, str]  # gene name -> why it cannot be actuated on this host/mode

    @property
    def active(self) -> tuple[Gene, ...]:
        """The genes a search may change, in spec order."""
        return tuple(g for g in self.genes if g.name not in self.frozen)

    def stock(self) -> dict[str, Any]:
        """The stock genome: every gene at its default."""
        return {g.name: _plain(g.default, g) for g in self.genes}

    def decode(self, u: Sequence[float]) -> dict[str, Any]:
        """Decode one u per active gene into a full genome (frozen genes at stock)."""
        active = self.active
        if len(u) != len(active):
            raise ConfigError(
                f"{self.domain}: got {len(u)} coordinates for {len(active)} active genes"
            )
        genome = self.stock()
        for g, x in zip(active, u, strict=True):
            genome[g.name] = g.decode(float(x))
        return genome

    def check(self, genome: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a full genome: known genes only, every value a level, frozen genes at stock."""
        by_name = {g.name: g for g in self.genes}
        unknown = sorted(set(genome) - set(by_name))
        if unknown:
            raise ConfigError(f"{self.domain}: unknown genes {unknown}")
        out = self.stock()
        for name, value in genome.items():
            g = by_name[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(
                    f"{self.domain}: gene {name} must be a number, got {type(value).__name__} {value!r}"
                )
            g.encode(value)
            if name in self.frozen and not math.isclose(value, g.default, abs_tol=1e-9):
                raise ConfigError(
                    f"{self.domain}: gene {name} is frozen ({self.frozen[name]}) but set to {value}"
                )
            out[name] = _plain(value, g)
        return out


def _plain(value: float, g: Gene) -> float | int:
    return round(value) if g.integral else float(value)
