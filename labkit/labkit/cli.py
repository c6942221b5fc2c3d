"""Run a command line so that user errors print one line and exit with their documented code."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from labkit.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, LabkitError, Paused, os_error_exit
from labkit.rehearsal import ENV, enable_rehearsal, rehearsal_active
from labkit.tracking import add_track_flag, enable, finish

EXIT_INTERRUPTED = 130


def bounded_int(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse `type` for an integer in [lo, hi]; anything else is a usage error (exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside [{lo}, {hi}]")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    """Add `--executor local|ray` and `--ray_address ADDR`; labkit.executors.executor_spec reads them."""
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        help="where runs execute (default: as the config says): local processes or a Ray cluster",
    )
    parser.add_argument(
        "--ray_address",
        help="with --executor ray: auto (the cluster `ray start` made here, default), "
        "local (a private one for this command), or HEAD_HOST:6379 of a cluster this machine is part of",
    )


def _one_line_usage_errors(parser: argparse.ArgumentParser) -> None:
    """Make `parser` and its subcommands report a usage error as one line (exit 2), like every error."""

    def error(message: str) -> NoReturn:
        print(f"{parser.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)

    parser.error = error  # type: ignore[method-assign]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _one_line_usage_errors(sub)


def _system(main: Callable[..., object]) -> str:
    """The package a command belongs to (`esper`, `dream`, ...): where its `main` is defined."""
    module = main.__module__
    if module == "__main__":  # `python -m package.module`: the module's real name is in its spec
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    return module.split(".")[0]


def run_cli(
    parser: argparse.ArgumentParser,
    main: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
) -> NoReturn:
    """Parse `argv`, call `main(args)` and exit; `--debug` shows tracebacks instead of one line.

    With `--track mlflow[:URI]` (or MLFLOW_TRACKING_URI), the runs the command opened are mirrored to
    MLflow once it has ended, whatever its outcome; a tracking failure never changes the exit code.
    """
    if not any(a.dest == "debug" for a in parser._actions):
        parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    if not any(a.dest == "rehearse" for a in parser._actions):
        parser.add_argument(
            "--rehearse",
            action="store_true",
            help=f"rehearse on tiny offline replicas of every hub model and data set (= {ENV}=1)",
        )
    add_track_flag(parser)
    _one_line_usage_errors(parser)
    args = parser.parse_args(argv)
    prog = parser.prog
    if args.track:
        enable(args.track)
    try:
        if args.rehearse:
            enable_rehearsal()
        if rehearsal_active():
            from labkit.zoo.replicas import announce

            announce()
        code = main(args)
    except Paused as exc:
        print(f"{prog}: paused: {exc}", file=sys.stderr)
        code = exc.exit_code
    except LabkitError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, OSError) and exc.filename is not None:
            # A path the user named (or one derived from it) cannot be read, created or written.
            code, line = os_error_exit(exc)
            print(f"{prog}: error: {line}", file=sys.stderr)
        else:
            print(
                f"{prog}: error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                file=sys.stderr,
            )
            code = EXIT_FAILURE
    finish(system=_system(main))
    sys.exit(EXIT_OK if code is None else code)
