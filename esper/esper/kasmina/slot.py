"""SeedSlot: one injection point's seed, its lifecycle, and how its output mixes into the host."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from esper.kasmina.blueprints import BlueprintRegistry
from esper.kasmina.protocol import InjectionPoint
from esper.leyline import (
    BLENDED_STAGES,
    LIVE_STAGES,
    SeedEvent,
    SeedStage,
    TaskConfig,
    can_advance,
    check_transition,
)

_PROBE_SHAPES = {"cnn": lambda d: (1, d, 8, 8), "transformer": lambda d: (2, 4, d)}


@dataclass
class SeedState:
    """A slot's lifecycle state; plain values only, so it checkpoints as a dict."""

    stage: SeedStage = SeedStage.DORMANT
    epochs_in_stage: int = 0
    blend_step: int = 0
    alpha: float = 0.0
    embargo_left: int = 0
    blueprint: str | None = None
    germinated_epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Checkpointable form."""
        return asdict(self) | {"stage": int(self.stage)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedState:
        """Inverse of `to_dict`."""
        return cls(**(dict(data) | {"stage": SeedStage(data["stage"])}))


class SeedSlot(nn.Module):
    """Holds at most one seed at an injection point and runs its lifecycle (design §3)."""

    def __init__(
        self,
        point_id: str,
        point: InjectionPoint,
        topology: str,
        task: TaskConfig,
        *,
        detach_host_in_blending: bool = False,
    ):
        super().__init__()
        self.point_id = point_id
        self.point = point
        self.topology = topology
        self.task = task
        self.detach_host_in_blending = detach_host_in_blending
        self.seed: nn.Module | None = None
        self.state = SeedState()
        self.host_only = False  # set while measuring the loss without the seed
        self.full_probe = False  # set while measuring a TRAINING seed's loss at alpha = 1
        self.incubator_input: Tensor | None = None  # this batch's h, for the TRAINING seed's pass

    # -- forward -------------------------------------------------------------------------------
    def forward(self, h: Tensor) -> Tensor:
        """h unchanged, or h with the seed mixed in as its stage says."""
        stage = self.state.stage
        if self.seed is None or self.host_only:
            return h
        if stage == SeedStage.TRAINING and self.full_probe:
            return self.seed(h)
        if stage == SeedStage.TRAINING:
            # The host sees exactly h; the seed learns later in the batch, in its own pass
            # (`MorphogeneticModel.incubator_logits`), from the input kept here.
            if torch.is_grad_enabled() and self.training:
                self.incubator_input = h.detach()
            return h
        if stage in BLENDED_STAGES:
            s = self.seed(h.detach() if self.detach_host_in_blending else h)
            a = self.state.alpha
            return (1.0 - a) * h + a * s
        return h

    # -- queries -------------------------------------------------------------------------------
    @property
    def is_live(self) -> bool:
        """True from germination until fossilisation or cull."""
        return self.state.stage in LIVE_STAGES

    @property
    def seed_params(self) -> int:
        """Parameters of the live seed (0 without one)."""
        return 0 if self.seed is None else sum(p.numel() for p in self.seed.parameters())

    def _event(self, kind: str, epoch: int, source: SeedStage | None, **extra: Any) -> SeedEvent:
        return SeedEvent(
            kind=kind,
            epoch=epoch,
            slot=self.point_id,
            blueprint=self.state.blueprint,
            params=self.seed_params,
            from_stage=None if source is None else source.name,
            to_stage=self.state.stage.name,
            **extra,
        )

    def _move(
        self, target: SeedStage, epoch: int, kind: str = "stage_changed", **extra: Any
    ) -> SeedEvent:
        source = self.state.stage
        check_transition(source, target)
        self.state.stage = target
        self.state.epochs_in_stage = 0
        return self._event(kind, epoch, source, **extra)

    # -- actions -------------------------------------------------------------------------------
    def germinate(self, blueprint: str, epoch: int, init_seed: int = 0) -> list[SeedEvent]:
        """Plant a fresh `blueprint` seed initialised from `init_seed`; it must be the identity on a probe."""
        if self.state.stage != SeedStage.DORMANT:
            raise ValueError(f"slot {self.point_id} is {self.state.stage.name}, not DORMANT")
        seed = build_seed(self.topology, blueprint, self.point.dim, init_seed)
        _check_identity(seed, self.topology, self.point.dim, f"{self.topology}:{blueprint}")
        self.seed = seed
        self.state.blueprint = blueprint
        self.state.germinated_epoch = epoch
        return [self._move(SeedStage.GERMINATED, epoch, "germinated")]

    def advance(
        self, epoch: int, contribution: float | None
    ) -> tuple[list[SeedEvent], nn.Module | None]:
        """TRAINING -> BLENDING after the dwell; PROBATIONARY -> FOSSILIZED (returns the fossil)."""
        st = self.state
        if not can_advance(st.stage, st.epochs_in_stage, self.task.dwell_epochs):
            raise ValueError(
                f"ADVANCE is not legal for slot {self.point_id} in {st.stage.name} "
                f"after {st.epochs_in_stage} epoch(s) (dwell {self.task.dwell_epochs})"
            )
        if st.stage == SeedStage.TRAINING:
            st.blend_step, st.alpha = 0, 0.0
            return [self._move(SeedStage.BLENDING, epoch)], None
        event = self._move(SeedStage.FOSSILIZED, epoch, "fossilized", contribution=contribution)
        fossil, self.seed = self.seed, None
        self.state = SeedState()
        return [event], fossil

    def cull(self, epoch: int, contribution: float | None) -> list[SeedEvent]:
        """Remove the live seed; the slot then sits out `embargo_epochs` decisions."""
        if not self.is_live:
            raise ValueError(
                f"CULL needs a live seed; slot {self.point_id} is {self.state.stage.name}"
            )
        event = self._move(SeedStage.CULLED, epoch, "culled", contribution=contribution)
        self.seed = None
        self.state.alpha = 0.0
        self.state.embargo_left = self.task.embargo_epochs
        return [event]

    def step_epoch(self, epoch: int, contribution: float | None = None) -> list[SeedEvent]:
        """The automatic part of the lifecycle, once per epoch before it trains."""
        st, events = self.state, []
        c = {"contribution": contribution}
        if st.stage == SeedStage.GERMINATED:
            events.append(self._move(SeedStage.TRAINING, epoch))
        elif st.stage == SeedStage.BLENDING:
            st.blend_step += 1
            st.alpha = self.task.blend_alpha(st.blend_step)
            if st.blend_step >= self.task.blending_steps:
                events.append(self._move(SeedStage.SHADOWING, epoch, **c))
        elif st.stage == SeedStage.SHADOWING and st.epochs_in_stage >= self.task.dwell_epochs:
            events.append(self._move(SeedStage.PROBATIONARY, epoch, **c))
        elif st.stage == SeedStage.CULLED:
            events.append(self._move(SeedStage.EMBARGOED, epoch))
        elif st.stage == SeedStage.EMBARGOED:
            st.embargo_left -= 1
            if st.embargo_left <= 0:
                events.append(self._move(SeedStage.RESETTING, epoch))
                events.append(self._move(SeedStage.DORMANT, epoch))
                self.state = SeedState()
        self.state.epochs_in_stage += 1
        return events

    # -- checkpoints ---------------------------------------------------------------------------
    def restore(self, state: dict[str, Any]) -> None:
        """Set the lifecycle state and rebuild an (untrained) live seed for weights to load into."""
        self.state = SeedState.from_dict(state)
        self.seed = None
        if self.is_live:
            # The weights are loaded next, so the init stream does not matter.
            self.seed = build_seed(self.topology, self.state.blueprint, self.point.dim, 0)


def build_seed(topology: str, blueprint: str, dim: int, init_seed: int) -> nn.Module:
    """A fresh seed whose initial weights come from its own stream, never from the global one.

    Drawing them from the global torch stream would shift the host's dropout (and any later draw)
    by the seed's presence alone, so a seed that never blends could still change the host's curve.
    """
    spec = BlueprintRegistry.get(topology, blueprint)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return spec.factory(dim)


def _check_identity(seed: nn.Module, topology: str, dim: int, name: str) -> None:
    """Refuse a blueprint whose fresh seed changes its input (probed without touching its buffers)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(_PROBE_SHAPES[topology](dim), generator=g)
    was_training = seed.training
    seed.eval()
    with torch.no_grad():
        y = seed(x)
    seed.train(was_training)
    if y.shape != x.shape or not torch.equal(y, x):
        raise ValueError(f"blueprint {name} is not the identity when fresh")
