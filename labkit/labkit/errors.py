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


class OutputPathError(ConfigError):
    """An output path cannot be created or written (read-only, a file in the way, no permission)."""


def os_error_exit(exc: OSError) -> tuple[int, str]:
    """The exit code and one line for an OSError about a path: 3 if something is missing, else 2."""
    where = exc.filename if exc.filename is not None else "(unknown path)"
    reason = exc.strerror or type(exc).__name__
    code = EXIT_MISSING_INPUT if isinstance(exc, FileNotFoundError) else EXIT_BAD_INPUT
    return code, f"cannot use {where}: {reason}"


class Paused(LabkitError):
    """Raised after a pause request was acknowledged and state was checkpointed."""

    exit_code = EXIT_PAUSED
