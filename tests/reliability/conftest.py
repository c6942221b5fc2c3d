"""Reliability harness: a session tally of the cases tried, printed in pytest's summary."""

from collections import Counter

import pytest

_TALLY: Counter[str] = Counter()


@pytest.fixture(scope="session")
def tally() -> Counter[str]:
    """Counts shared by the harness's tests (cases tried, clean exits, ...), keyed by name."""
    return _TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the tally, so CI logs show how many cases the harness really ran."""
    if _TALLY:
        counts = ", ".join(f"{key}: {n}" for key, n in sorted(_TALLY.items()))
        terminalreporter.write_line(f"reliability harness: {counts}")
