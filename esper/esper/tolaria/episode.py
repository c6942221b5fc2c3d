"""One episode of morphogenetic training: a fresh host and slots, its optimisers, and what Tamiyo sees.

Per step: `apply(action)`, then `run_epoch()` = lifecycle step, one training epoch, validation
(the seed's contribution c while it is blended in, its counterfactual while it is TRAINING),
governor check; the test split is scored once, after the last epoch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from esper.kasmina import MorphogeneticModel, build_host
from esper.leyline import (
    BLENDED_STAGES,
    EMBARGO_STAGES,
    HISTORY,
    Gating,
    PolicySignals,
    SeedEvent,
    SeedStage,
    TaskConfig,
    TrainingSignals,
    gate_mask,
)
from esper.tolaria.governor import Governor
from esper.tolaria.optim import make_optimizer
from esper.tolaria.trainer import ValResult, train_epoch, validate
from esper.utils.data import ImageData, TokenData
from labkit.determinism import derive_seed, generator

PLATEAU_GAIN = 0.005  # an epoch improving val loss by less than 0.5 % counts toward a plateau


@dataclass
class Tracker:
    """Loss bookkeeping behind PolicySignals (plain values, checkpointed as a dict)."""

    val_losses: list[float] = field(default_factory=list)
    train_loss: float = math.nan
    best_val_loss: float = math.inf
    plateau_epochs: int = 0
    contribution: float | None = None
    counterfactual: float | None = None

    def record(
        self,
        train_loss: float,
        val_loss: float,
        contribution: float | None,
        counterfactual: float | None = None,
    ) -> None:
        """Fold in one epoch's losses."""
        if self.val_losses:
            prev = self.val_losses[-1]
            stalled = not prev - val_loss >= PLATEAU_GAIN * abs(prev)
            self.plateau_epochs = self.plateau_epochs + 1 if stalled else 0
        self.val_losses.append(val_loss)
        self.train_loss = train_loss
        if math.isfinite(val_loss):
            self.best_val_loss = min(self.best_val_loss, val_loss)
        self.contribution = contribution
        self.counterfactual = counterfactual

    def history(self) -> tuple[float, ...]:
        """The val losses before the latest, newest first, padded with the first one."""
        earlier = self.val_losses[-2::-1][:HISTORY]
        return tuple(earlier) + (self.val_losses[0],) * (HISTORY - len(earlier))


class Episode:
    """A host trained for `task.max_epochs` epochs while actions grow, blend, fossilise or cull seeds."""

    def __init__(
        self,
        cfg: Mapping[str, Any],
        data: ImageData | TokenData,
        task: TaskConfig,
        seed: int,
        device: str = "cpu",
    ):
        self.cfg = cfg
        self.data = data
        self.task = task
        self.device = torch.device(device)
        self.seed = seed
        # Independent streams per (episode seed, name): host init, host dropout (the global torch
        # stream, which nothing else draws from during the episode), data order, seed init.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "host-init"))
            self.model, self.host_opt = self._fresh()
        torch.manual_seed(derive_seed(seed, "host-dropout"))
        self.seed_opt: torch.optim.Optimizer | None = None
        self.gating = Gating(**(cfg.get("gating") or {}))
        self.data_gen = generator(seed, "data-order")
        gov = cfg["governor"]
        self.governor = (
            Governor(
                threshold=gov["threshold"],
                window=gov["window"],
                multiplier=gov["multiplier"],
                sigmas=gov["sigmas"],
                patience=gov["patience"],
            )
            if gov["enabled"]
            else None
        )
        self._good: dict[str, Any] | None = (
            None  # model state at the start of the last healthy epoch
        )
        self.epoch = 0
        self.global_step = 0
        self.track = Tracker()
        self.signals: TrainingSignals | None = None

    # -- building ------------------------------------------------------------------------------
    def _fresh(self) -> tuple[MorphogeneticModel, torch.optim.Optimizer]:
        host = build_host(
            self.task.topology, self.cfg["host"], self.task.n_outputs, self.data.block_size
        )
        model = MorphogeneticModel(
            host,
            self.task,
            self.cfg["slots"]["enabled"],
            detach_host_in_blending=self.cfg["slots"]["detach_host_in_blending"],
        ).to(self.device)
        return model, make_optimizer(self.cfg["optimizer"], model.host.parameters())

    @property
    def done(self) -> bool:
        """True once `max_epochs` epochs have been trained."""
        return self.epoch >= self.task.max_epochs

    # -- the episode ---------------------------------------------------------------------------
    def reset(self) -> TrainingSignals:
        """Validate the fresh host once; the first observation (train loss = val loss, nothing trained)."""
        val = self._validate()
        self.track.record(val.loss, val.loss, None)
        self.signals = self._signals(val.accuracy, val, rollback=False)
        return self.signals

    def action_mask(self) -> np.ndarray:
        """Legal actions now: the lifecycle's mask, narrowed by the config's gating (if any)."""
        live = self.model.live_slot
        return gate_mask(
            self.model.action_mask(),
            self.model.actions,
            self.gating,
            epoch=self.epoch,
            plateau_epochs=self.track.plateau_epochs,
            seed_age=None if live is None else self.epoch - live.state.germinated_epoch,
        )

    def apply(self, action: int, *, gated: bool = True) -> list[SeedEvent]:
        """Carry out `action` (ValueError if masked) and keep the optimisers in step with the seeds."""
        if self.signals is None:
            raise RuntimeError("call reset() before the first action")
        if gated and not self.action_mask()[action]:
            raise ValueError(f"action {self.model.actions(action).name} is masked now")
        init_seed = derive_seed(self.seed, "seed-init", self.epoch)
        events = self.model.apply(action, self.epoch, self.track.contribution, init_seed)
        for event in events:
            if event.kind == "germinated":
                seed = self.model.live_slot.seed
                self.seed_opt = make_optimizer(self.cfg["optimizer"], seed.parameters())
            elif event.kind == "fossilized":
                params = list(self.model.fossil_modules[-1].parameters())
                self.host_opt.add_param_group({"params": params})
                self.seed_opt = None
            elif event.kind == "culled":
                self.seed_opt = None
        return events

    def run_epoch(self) -> tuple[TrainingSignals, list[SeedEvent]]:
        """Lifecycle step, one training epoch, validation, governor; the new signals and the events."""
        if self.signals is None or self.done:
            raise RuntimeError("run_epoch needs a reset episode that is not done")
        if self.governor is not None and self.governor.over == 0:
            self._good = self._snapshot()
        events = self.model.step_epoch(self.epoch, self.track.contribution)
        optimizers = [self.host_opt] + ([self.seed_opt] if self.seed_opt is not None else [])
        batches = self.data.train_batches(self.data_gen)
        train = train_epoch(self.model, batches, optimizers, self.device)
        self.global_step += train.steps
        self.epoch += 1
        val = self._validate()
        rollback = False
        if self.governor is not None:
            rollback = self.governor.check(val.loss if math.isfinite(train.loss) else math.nan)
        if rollback:
            events += self._rollback()
            val = self._validate()
        contribution = self._contribution(val.loss)
        self.track.record(train.loss, val.loss, contribution, self._counterfactual())
        test = self._validate("test") if self.done else None
        self.signals = self._signals(train.accuracy, val, rollback, train.loss, test)
        return self.signals, events

    def _validate(self, split: str = "val") -> ValResult:
        return validate(self.model, self.data.eval_batches(split), self.task.task_type, self.device)

    def _contribution(self, val_loss: float) -> float | None:
        """c = L(alpha = 0) - L while the live seed is blended in; None otherwise."""
        slot = self.model.live_slot
        if slot is None or slot.state.stage not in BLENDED_STAGES:
            return None
        with self.model.host_only():
            return self._validate().loss - val_loss

    def _counterfactual(self) -> float | None:
        """L(alpha = 0) - L(alpha = 1) of a TRAINING seed on a fixed validation batch; None otherwise.

        Positive when the seed, blended in fully now, would lower the loss. Measured without
        gradients in eval mode, so it changes neither the host nor any random stream.
        """
        slot = self.model.live_slot
        if slot is None or slot.state.stage != SeedStage.TRAINING:
            return None
        with self.model.host_only():
            without = self._probe_loss()
        with self.model.seed_at_full():
            return without - self._probe_loss()

    def _probe_loss(self) -> float:
        batch = next(self.data.eval_batches("val"))  # the first validation batch, always the same
        return validate(self.model, [batch], self.task.task_type, self.device).loss

    def _rollback(self) -> list[SeedEvent]:
        """Restore the last healthy state and cull the seed that was live then."""
        self._load_model_state(self._good)
        slot = self.model.live_slot
        events = [
            SeedEvent(
                kind="governor_rollback",
                epoch=self.epoch,
                slot="" if slot is None else slot.point_id,
                blueprint=None if slot is None else slot.state.blueprint,
                params=0 if slot is None else slot.seed_params,
                from_stage=None,
                to_stage=None,
            )
        ]
        if slot is not None:
            events += self.apply(self.model.actions.CULL, gated=False)  # safety beats gating
        return events

    def _signals(
        self,
        train_accuracy: float,
        val: ValResult,
        rollback: bool,
        train_loss: float | None = None,
        test: ValResult | None = None,
    ) -> TrainingSignals:
        track, model = self.track, self.model
        live = model.live_slot
        shown = live or next(
            (s for s in model.slots.values() if s.state.stage in EMBARGO_STAGES), None
        )
        losses = track.val_losses
        policy = PolicySignals(
            epoch=self.epoch,
            global_step=self.global_step,
            train_loss=val.loss if train_loss is None else train_loss,
            val_loss=val.loss,
            loss_history=track.history(),
            best_val_loss=track.best_val_loss,
            loss_delta=losses[-1] - losses[-2] if len(losses) > 1 else 0.0,
            seed_counterfactual=0.0 if track.counterfactual is None else track.counterfactual,
            seed_contribution=0.0
            if live is None or track.contribution is None
            else track.contribution,
            plateau_epochs=track.plateau_epochs,
            has_active_seed=live is not None,
            seed_stage=int(SeedStage.DORMANT if shown is None else shown.state.stage),
            seed_epochs_in_stage=0 if shown is None else shown.state.epochs_in_stage,
            seed_alpha=0.0 if live is None else live.state.alpha,
            available_slots=model.available_slots,
            embargo_left=model.embargo_left,
            n_slots=len(model.slots),
            seed_blueprint=None if live is None else live.state.blueprint,
        )
        return TrainingSignals(
            policy=policy,
            train_accuracy=train_accuracy,
            val_accuracy=val.accuracy,
            val_perplexity=val.perplexity,
            host_params=model.host_params(),
            seed_params=model.seed_params(),
            fossils=len(model.fossils),
            governor_rollback=rollback,
            test_loss=None if test is None else test.loss,
            test_accuracy=None if test is None else test.accuracy,
            test_perplexity=None if test is None else test.perplexity,
        )

    # -- state ---------------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "structure": self.model.structure(),
                "model": self.model.state_dict(),
                "host_opt": self.host_opt.state_dict(),
                "seed_opt": None if self.seed_opt is None else self.seed_opt.state_dict(),
            }
        )

    def _load_model_state(self, snap: dict[str, Any]) -> None:
        # A rebuild must not draw from the global RNG: the dropout stream continues unchanged.
        with torch.random.fork_rng(devices=[]):
            model, host_opt = self._fresh()
        for module in model.restore_structure(snap["structure"]):
            host_opt.add_param_group({"params": list(module.parameters())})
        model.load_state_dict(snap["model"])
        host_opt.load_state_dict(snap["host_opt"])
        self.model, self.host_opt, self.seed_opt = model, host_opt, None
        slot = model.live_slot
        if slot is not None:
            self.seed_opt = make_optimizer(self.cfg["optimizer"], slot.seed.parameters())
            if snap["seed_opt"] is not None:
                self.seed_opt.load_state_dict(snap["seed_opt"])

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this episode bit-for-bit (the global RNG is the caller's)."""
        if self.signals is None:
            raise RuntimeError("an episode has state only after reset()")
        keep_good = self.governor is not None and self.governor.over > 0
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "model_state": self._snapshot(),
            "data_gen": self.data_gen.get_state(),
            "track": asdict(self.track),
            "signals": self.signals.to_record(),
            "governor": None if self.governor is None else self.governor.state_dict(),
            "good": self._good if keep_good else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()` output, on an Episode built with the same arguments."""
        self._load_model_state(state["model_state"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.data_gen.set_state(state["data_gen"])
        self.track = Tracker(**state["track"])
        self.signals = TrainingSignals.from_record(state["signals"])
        if self.governor is not None:
            self.governor.load_state_dict(state["governor"])
        self._good = state["good"]
