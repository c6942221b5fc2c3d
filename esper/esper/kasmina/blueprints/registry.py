"""BlueprintRegistry: seed factories registered by decorator, keyed `topology:name`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from torch import nn

from esper.leyline.actions import BLUEPRINT_NAME, build_action_enum


@dataclass(frozen=True, slots=True)
class BlueprintSpec:
    """A seed design: `factory(dim)` builds a module that is the identity when fresh."""

    name: str
    topology: str
    factory: Callable[[int], nn.Module]
    param_estimate: int
    description: str = ""

    def actual_param_count(self, dim: int) -> int:
        """Parameters of a seed built at width `dim`."""
        return sum(p.numel() for p in self.factory(dim).parameters())


class BlueprintRegistry:
    """All known blueprints; adding one is a single decorated factory."""

    _blueprints: ClassVar[dict[str, BlueprintSpec]] = {}

    @classmethod
    def register(
        cls, name: str, topology: str, param_estimate: int, description: str = ""
    ) -> Callable[[Callable[[int], nn.Module]], Callable[[int], nn.Module]]:
        """Decorator registering `factory(dim) -> nn.Module` as blueprint `topology:name`."""
        key = f"{topology}:{name}"
        if not BLUEPRINT_NAME.match(name) or not BLUEPRINT_NAME.match(topology):
            raise ValueError(f"blueprint {key!r}: name and topology must be lowercase identifiers")
        if key in cls._blueprints:
            raise ValueError(f"blueprint {key!r} is already registered")
        if param_estimate < 0:
            raise ValueError(f"blueprint {key!r}: param_estimate must not be negative")

        def decorator(factory: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
            cls._blueprints[key] = BlueprintSpec(
                name, topology, factory, param_estimate, description
            )
            return factory

        return decorator

    @classmethod
    def list_for_topology(cls, topology: str) -> list[BlueprintSpec]:
        """The blueprints of `topology`, smallest estimate first (ties by name)."""
        specs = [s for s in cls._blueprints.values() if s.topology == topology]
        return sorted(specs, key=lambda s: (s.param_estimate, s.name))

    @classmethod
    def topologies(cls) -> list[str]:
        """Every topology with at least one blueprint."""
        return sorted({s.topology for s in cls._blueprints.values()})

    @classmethod
    def get(cls, topology: str, name: str) -> BlueprintSpec:
        """The spec of `topology:name`; a ValueError names the valid blueprints for `topology`."""
        spec = cls._blueprints.get(f"{topology}:{name}")
        if spec is None:
            valid = ", ".join(s.name for s in cls.list_for_topology(topology)) or "none"
            raise ValueError(f"no blueprint {name!r} for topology {topology!r}; valid: {valid}")
        return spec


def action_enum(topology: str) -> type[IntEnum]:
    """Tamiyo's action enum for `topology`, derived from the blueprints registered now."""
    names = tuple(s.name for s in BlueprintRegistry.list_for_topology(topology))
    if not names:
        raise ValueError(f"no blueprints registered for topology {topology!r}")
    return build_action_enum(topology, names)
