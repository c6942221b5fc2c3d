"""Kasmina: hosts, injection points, seed blueprints, seed slots and the morphogenetic model."""

from esper.kasmina.blueprints import BlueprintRegistry, BlueprintSpec, action_enum
from esper.kasmina.host_cnn import HostCNN
from esper.kasmina.host_transformer import TransformerHost
from esper.kasmina.hosts import build_host
from esper.kasmina.model import MorphogeneticModel
from esper.kasmina.protocol import HostProtocol, InjectionPoint
from esper.kasmina.slot import SeedSlot, SeedState

__all__ = [
    "BlueprintRegistry",
    "BlueprintSpec",
    "HostCNN",
    "HostProtocol",
    "InjectionPoint",
    "MorphogeneticModel",
    "SeedSlot",
    "SeedState",
    "TransformerHost",
    "action_enum",
    "build_host",
]
