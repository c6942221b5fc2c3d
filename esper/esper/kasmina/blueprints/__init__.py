"""Seed blueprints; importing this package registers the built-in CNN and transformer ones."""

from esper.kasmina.blueprints import cnn, transformer
from esper.kasmina.blueprints.registry import BlueprintRegistry, BlueprintSpec, action_enum

__all__ = ["BlueprintRegistry", "BlueprintSpec", "action_enum", "cnn", "transformer"]
