"""The one error class AvalancheLLM adds to labkit's: a failed statistical gate (exit 2)."""

from labkit.errors import ConfigError


class GateError(ConfigError):
    """A rate-match or null-marginal gate failed; the run's numbers would not mean what they claim."""
