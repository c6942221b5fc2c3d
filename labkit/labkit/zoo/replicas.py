"""Rehearsals: with `LABKIT_REHEARSAL=1` (labkit.rehearsal) the resolvers map hub ids to zoo replicas.

Nothing else changes: the code downstream of `resolve_model`, `resolve_dataset`, `load_dataset` and
`stream_dataset` loads the replica through the same classes, configs, splits and streaming as it
would load the original. Without the switch a hub id goes to the hub (and fails fast offline).
"""

from __future__ import annotations

import sys
from pathlib import Path

from labkit.errors import MissingInputError
from labkit.rehearsal import ENV
from labkit.zoo.catalog import ZooItem, replica_for, replicas

REPLICA_SIZE = "default"


def profile_lines() -> list[str]:
    """The rehearsal profile, one line each: what every hub id resolves to, and at what size."""
    lines = [
        f"REHEARSAL ({ENV}=1): hub ids resolve to tiny offline replicas; no result is a result.",
    ]
    for item in replicas():
        lines.append(f"  {item.kind:<7} {', '.join(item.replica_of)} -> {item.zoo_name}")
    lines.append("  any other hub id fails (exit 3); run records say rehearsal: true")
    return lines


def announce() -> None:
    """Print the rehearsal profile on stderr (commands do this at start when rehearsing)."""
    print("\n".join(profile_lines()), file=sys.stderr)


def replica_item(hub_id: str, kind: str) -> ZooItem:
    """The replica that stands in for hub `kind` `hub_id` in a rehearsal; exit 3 if there is none."""
    item = replica_for(hub_id, kind)
    if item is None:
        known = ", ".join(h for r in replicas(kind) for h in r.replica_of)
        raise MissingInputError(
            f"rehearsal ({ENV}=1): no replica of hub {kind} {hub_id!r}; replicated: {known}"
        )
    return item


def replica_path(hub_id: str, kind: str) -> Path:
    """Directory of the replica of hub `kind` `hub_id`, built first if needed."""
    from labkit.zoo.build import build_local

    item = replica_item(hub_id, kind)
    # Data replicas have one size (REPLICA_SIZE "test" shortens only the models' training).
    size = REPLICA_SIZE if REPLICA_SIZE in item.sizes else "default"
    path = build_local(item, size, item.default_seed, {})
    print(f"rehearsal: hub {kind} {hub_id} -> {item.zoo_name} ({path})", file=sys.stderr)
    return path
