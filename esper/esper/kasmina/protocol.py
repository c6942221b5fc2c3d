"""The host contract: injection points, split forwards, and grafting of fossilised seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

POSITIONS = ("post_block", "post_attn", "post_mlp")


@dataclass(frozen=True, slots=True)
class InjectionPoint:
    """Where a seed can sit: after layer `after_layer_idx` (-1 = before the first), at `position`."""

    after_layer_idx: int
    position: str
    dim: int

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(f"position {self.position!r} is not one of {POSITIONS}")
        if self.after_layer_idx < -1 or self.dim < 1:
            raise ValueError(f"bad injection point {self}")


@runtime_checkable
class HostProtocol(Protocol):
    """A graftable host: `forward_from_layer(forward_through_layer(x, k), k + 1) == forward(x)`."""

    topology: str

    @property
    def injection_points(self) -> dict[str, InjectionPoint]:
        """Map of point id -> injection point."""
        ...

    def forward_through_layer(self, x: Tensor, last_layer_idx: int) -> Tensor:
        """Layers [0, last_layer_idx] (and the grafts after them)."""
        ...

    def forward_from_layer(self, h: Tensor, first_layer_idx: int) -> Tensor:
        """Layers first_layer_idx.. and the output head."""
        ...

    def forward(self, x: Tensor) -> Tensor:
        """The whole host, grafts included."""
        ...

    def graft(self, point_id: str, module: nn.Module) -> None:
        """Make `module` a permanent part of the host at `point_id`."""
        ...


class Grafts(nn.Module):
    """Fossilised seeds of one host, applied in the order they were grafted after their layer."""

    def __init__(self, points: dict[str, InjectionPoint]):
        super().__init__()
        self.points = points
        self.by_point = nn.ModuleDict()

    def add(self, point_id: str, module: nn.Module) -> None:
        """Append `module` to the fossils at `point_id`."""
        if point_id not in self.points:
            raise ValueError(f"unknown injection point {point_id!r}; known: {sorted(self.points)}")
        if point_id not in self.by_point:
            self.by_point[point_id] = nn.Sequential()
        self.by_point[point_id].append(module)

    def after(self, h: Tensor, layer_idx: int) -> Tensor:
        """Apply the fossils that sit after layer `layer_idx`."""
        for point_id, chain in self.by_point.items():
            if self.points[point_id].after_layer_idx == layer_idx:
                h = chain(h)
        return h
