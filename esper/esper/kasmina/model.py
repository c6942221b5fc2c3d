"""MorphogeneticModel: a host plus its seed slots; applies Tamiyo's actions and grafts fossils."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from esper.kasmina.blueprints import action_enum
from esper.kasmina.protocol import HostProtocol
from esper.kasmina.slot import SeedSlot, build_seed
from esper.leyline import SeedEvent, SeedStage, TaskConfig, action_mask, blueprint_of


class MorphogeneticModel(nn.Module):
    """`from_layer(slot(through_layer(x, k)), k + 1)` for the live seed's slot; the bare host otherwise."""

    def __init__(
        self,
        host: nn.Module,
        task: TaskConfig,
        slots: Sequence[str] | None = None,
        *,
        detach_host_in_blending: bool = False,
    ):
        super().__init__()
        if not isinstance(host, HostProtocol):
            raise TypeError(f"{type(host).__name__} does not implement HostProtocol")
        if host.topology != task.topology:
            raise ValueError(f"host topology {host.topology!r} != task topology {task.topology!r}")
        points = host.injection_points
        enabled = list(slots) if slots else [next(iter(points))]
        unknown = [s for s in enabled if s not in points]
        if unknown or len(set(enabled)) != len(enabled):
            raise ValueError(f"bad slots {enabled}; injection points of this host: {list(points)}")
        self.host = host
        self.task = task
        self.slots = nn.ModuleDict(
            {
                pid: SeedSlot(
                    pid,
                    points[pid],
                    host.topology,
                    task,
                    detach_host_in_blending=detach_host_in_blending,
                )
                for pid in enabled
            }
        )
        self.actions = action_enum(host.topology)
        self.fossils: list[tuple[str, str]] = []  # (point id, blueprint), in grafting order
        self.fossil_modules: list[nn.Module] = []  # the same fossils' modules (owned by the host)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """The host with the live seed (if any) spliced in at its slot."""
        slot = self.live_slot
        if slot is None:
            return self.host(x)
        k = slot.point.after_layer_idx
        return self.host.forward_from_layer(slot(self.host.forward_through_layer(x, k)), k + 1)

    @contextmanager
    def incubator(self) -> Iterator[Tensor | None]:
        """The last training batch's logits with the TRAINING seed at alpha = 1 on the host as it is.

        The seed's gradient is then taken at its own output, so it sees what that output does to
        the loss; a straight-through gradient taken at h never does, and the seed drifts. On exit
        the host's buffers (BatchNorm statistics) are put back, and the pass draws nothing from
        the global stream (dropout), so the host trains exactly as it would without the seed.
        Yields None without such a seed.
        """
        slot = self.live_slot
        if slot is None or slot.incubator_input is None:
            yield None
            return
        h, slot.incubator_input = slot.incubator_input, None
        kept = {name: b.clone() for name, b in self.host.named_buffers()}
        try:
            with torch.random.fork_rng(devices=[]):
                logits = self.host.forward_from_layer(slot.seed(h), slot.point.after_layer_idx + 1)
            yield logits
        finally:
            with torch.no_grad():
                for name, b in self.host.named_buffers():
                    b.copy_(kept[name])

    @contextmanager
    def host_only(self) -> Iterator[None]:
        """Within the block every slot passes its input through (alpha = 0), for L(alpha=0)."""
        for slot in self.slots.values():
            slot.host_only = True
        try:
            yield
        finally:
            for slot in self.slots.values():
                slot.host_only = False

    @contextmanager
    def seed_at_full(self) -> Iterator[None]:
        """Within the block a TRAINING seed acts at alpha = 1 (its counterfactual, no effect on training)."""
        for slot in self.slots.values():
            slot.full_probe = True
        try:
            yield
        finally:
            for slot in self.slots.values():
                slot.full_probe = False

    # -- state ---------------------------------------------------------------------------------
    @property
    def live_slot(self) -> SeedSlot | None:
        """The slot holding the (at most one) live seed."""
        return next((s for s in self.slots.values() if s.is_live), None)

    @property
    def free_slot(self) -> SeedSlot | None:
        """The first enabled DORMANT slot."""
        return next((s for s in self.slots.values() if s.state.stage == SeedStage.DORMANT), None)

    @property
    def available_slots(self) -> int:
        """Enabled slots that are DORMANT."""
        return sum(s.state.stage == SeedStage.DORMANT for s in self.slots.values())

    @property
    def embargo_left(self) -> int:
        """The longest embargo still running on any slot."""
        return max(s.state.embargo_left for s in self.slots.values())

    def host_params(self) -> int:
        """Parameters of the host, fossils included."""
        return sum(p.numel() for p in self.host.parameters())

    def seed_params(self) -> int:
        """Parameters of the live seed."""
        slot = self.live_slot
        return 0 if slot is None else slot.seed_params

    def action_mask(self) -> np.ndarray:
        """Legal actions now (design §3 and §6)."""
        slot = self.live_slot
        return action_mask(
            self.actions,
            live_stage=None if slot is None else slot.state.stage,
            epochs_in_stage=0 if slot is None else slot.state.epochs_in_stage,
            dwell_epochs=self.task.dwell_epochs,
            slot_free=self.free_slot is not None,
        )

    # -- lifecycle -----------------------------------------------------------------------------
    def apply(
        self,
        action: int,
        epoch: int,
        contribution: float | None = None,
        init_seed: int = 0,
    ) -> list[SeedEvent]:
        """Carry out one action (a germinated seed is initialised from `init_seed`); a masked one raises."""
        action = self.actions(action)
        if not self.action_mask()[action]:
            raise ValueError(f"action {action.name} is masked now")
        if action == self.actions.WAIT:
            return []
        blueprint = blueprint_of(action)
        if blueprint is not None:
            slot = self.free_slot
            events = slot.germinate(blueprint, epoch, init_seed)
            slot.seed.to(self._device())
            return events
        slot = self.live_slot
        if action == self.actions.CULL:
            return slot.cull(epoch, contribution)
        events, fossil = slot.advance(epoch, contribution)
        if fossil is not None:
            self._graft(slot.point_id, events[0].blueprint, fossil)
        return events

    def step_epoch(self, epoch: int, contribution: float | None = None) -> list[SeedEvent]:
        """Advance every slot's automatic lifecycle by one epoch (`contribution`: the live seed's c)."""
        return [e for slot in self.slots.values() for e in slot.step_epoch(epoch, contribution)]

    def _graft(self, point_id: str, blueprint: str, module: nn.Module) -> None:
        self.host.graft(point_id, module)
        self.fossils.append((point_id, blueprint))
        self.fossil_modules.append(module)

    def _device(self) -> Any:
        return next(self.host.parameters()).device

    # -- checkpoints ---------------------------------------------------------------------------
    def structure(self) -> dict[str, Any]:
        """What `restore_structure` needs to rebuild this model's modules before loading weights."""
        return {
            "fossils": [list(f) for f in self.fossils],
            "slots": {pid: slot.state.to_dict() for pid, slot in self.slots.items()},
        }

    def restore_structure(self, structure: dict[str, Any]) -> list[nn.Module]:
        """Rebuild fossils and slot states on a fresh model; returns the new fossil modules in order."""
        if self.fossils:
            raise RuntimeError("restore_structure needs a model without fossils")
        device = self._device()
        for point_id, blueprint in structure["fossils"]:
            dim = self.host.injection_points[point_id].dim
            # Weights are loaded next; building from a fixed stream leaves the global one alone.
            self._graft(
                point_id, blueprint, build_seed(self.host.topology, blueprint, dim, 0).to(device)
            )
        for pid, state in structure["slots"].items():
            self.slots[pid].restore(state)
            if self.slots[pid].seed is not None:
                self.slots[pid].seed.to(device)
        return list(self.fossil_modules)
