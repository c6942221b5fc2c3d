"""Exceptions that carry the documented exit code of every labkit-based command line."""

from __future__ import annotations

# Exit codes shared by every command line in the repository (documented in labkit/README.md).
EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected error: a bug or an environment problem
EXIT_BAD_INPUT = 2  # bad config, override, schema violation, bad argument value
EXIT_MISSING_INPUT = 3  # a file or upstream artifact that the command needs does not exist
EXIT_RUN_EXISTS = 4  # the run directory exists (or is complete) and was not asked to resume
EXIT_PAUSED = 75  # paused on request (EX_TEMPFAIL): rerun the same command to resume


class LabkitError(Exception):
    """An error the user can fix; the CLI prints its one-line message and exits with `exit_code`."""

    exit_code = EXIT_FAILURE


class ConfigError(LabkitError):
    """A config file, override or value is invalid."""

    exit_code = EXIT_BAD_INPUT


class SchemaError(ConfigError):
    """A document does not match its JSON Schema."""


class MissingInputError(LabkitError):
    """A file or upstream artifact the command needs is missing."""

    exit_code = EXIT_MISSING_INPUT


class RunExistsError(LabkitError):
    """A run directory exists and may not be reused as asked."""

    exit_code = EXIT_RUN_EXISTS


class Paused(LabkitError):
    """Raised after a pause request was acknowledged and state was checkpointed."""

    exit_code = EXIT_PAUSED
