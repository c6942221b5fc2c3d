"""The governor: spots a diverging host and asks for a rollback to the last healthy state."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Governor:
    """Roll back on a non-finite loss, or after `patience` epochs running above all of:
    `multiplier` x the mean of the last `window` losses, that mean + `sigmas` std, and `threshold`."""

    threshold: float
    window: int = 20
    multiplier: float = 3.0
    sigmas: float = 6.0
    patience: int = 2
    history: list[float] = field(default_factory=list)
    over: int = 0  # consecutive epochs above the limit so far

    def limit(self) -> float:
        """The loss above which an epoch counts as a spike (the absolute threshold until 2 losses exist)."""
        recent = self.history[-self.window :]
        if len(recent) < 2:
            return self.threshold
        mean, std = statistics.fmean(recent), statistics.stdev(recent)
        return max(self.multiplier * mean, mean + self.sigmas * std, self.threshold)

    def check(self, loss: float) -> bool:
        """Record one epoch's loss; True means roll back now."""
        if not math.isfinite(loss):
            self.over = 0
            return True
        if loss > self.limit():
            self.over += 1
            if self.over >= self.patience:
                self.over = 0
                return True
            return False
        self.over = 0
        self.history.append(loss)
        return False

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`."""
        for key, value in state.items():
            setattr(self, key, value)
