"""Tolaria: epoch training and validation, optimisers, the governor, and the episode engine."""

from esper.tolaria.episode import Episode, Tracker
from esper.tolaria.governor import Governor
from esper.tolaria.optim import make_optimizer
from esper.tolaria.trainer import EpochResult, ValResult, perplexity, train_epoch, validate

__all__ = [
    "Episode",
    "EpochResult",
    "Governor",
    "Tracker",
    "ValResult",
    "make_optimizer",
    "perplexity",
    "train_epoch",
    "validate",
]
