"""What the controller may see (PolicySignals), what humans see too (TrainingSignals), and seed events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

HISTORY = 5  # val losses kept for the observation (loss_hist_0 is the one before the latest)
EVENT_KINDS = ("germinated", "stage_changed", "fossilized", "culled", "governor_rollback")


@dataclass(frozen=True)
class PolicySignals:
    """The state after an epoch, in raw units; policy inputs only (no accuracy, no perplexity)."""

    epoch: int
    global_step: int
    train_loss: float
    val_loss: float
    loss_history: tuple[float, ...]
    best_val_loss: float
    loss_delta: float
    seed_counterfactual: float
    seed_contribution: float
    plateau_epochs: int
    has_active_seed: bool
    seed_stage: int
    seed_epochs_in_stage: int
    seed_alpha: float
    available_slots: int
    embargo_left: int
    n_slots: int
    seed_blueprint: str | None

    def __post_init__(self) -> None:
        if len(self.loss_history) != HISTORY:
            raise ValueError(f"loss_history needs {HISTORY} values, got {len(self.loss_history)}")


@dataclass(frozen=True)
class TrainingSignals:
    """PolicySignals plus telemetry the controller must not see (accuracy, perplexity, sizes)."""

    policy: PolicySignals
    train_accuracy: float
    val_accuracy: float
    val_perplexity: float | None
    host_params: int
    seed_params: int
    fossils: int
    governor_rollback: bool
    # The held-out test split, scored once at the end of an episode (None before); never a policy input.
    test_loss: float | None = None
    test_accuracy: float | None = None
    test_perplexity: float | None = None

    def to_record(self) -> dict[str, Any]:
        """A flat dict for JSONL telemetry."""
        record = asdict(self.policy)
        record["loss_history"] = list(self.policy.loss_history)
        record.update({k: v for k, v in asdict(self).items() if k != "policy"})
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TrainingSignals:
        """Inverse of `to_record`."""
        names = {f.name for f in fields(PolicySignals)}
        policy = {k: v for k, v in record.items() if k in names}
        policy["loss_history"] = tuple(policy["loss_history"])
        rest = {k: v for k, v in record.items() if k not in names}
        return cls(policy=PolicySignals(**policy), **rest)


@dataclass(frozen=True)
class SeedEvent:
    """One lifecycle event of a seed (or a governor rollback), with what it cost and contributed."""

    kind: str
    epoch: int
    slot: str
    blueprint: str | None
    params: int
    from_stage: str | None
    to_stage: str | None
    contribution: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; known: {', '.join(EVENT_KINDS)}")

    def to_record(self) -> dict[str, Any]:
        """A dict for events.jsonl."""
        return asdict(self)
