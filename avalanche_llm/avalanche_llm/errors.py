"""Error classes AvalancheLLM adds to labkit's: a failed statistical gate and a failed
re-derivation (both exit 2)."""

from labkit.errors import ConfigError


class GateError(ConfigError):
    """A rate-match or null-marginal gate failed; the run's numbers would not mean what they claim."""


class DeterminismError(ConfigError):
    """Something re-derived from the same names (a data slice) differs from what was recorded."""
