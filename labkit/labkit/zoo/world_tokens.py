"""The pre-tokenisation rule shared by the world's length accounting and the zoo's word-level tokenizer."""

from __future__ import annotations

import re

# A token is a run of ASCII letters/digits, a newline, or one other non-space character.
TOKEN_PATTERN = r"[A-Za-z0-9]+|\n|[^\sA-Za-z0-9]"
_TOKEN_RE = re.compile(TOKEN_PATTERN)


def tokenize(text: str) -> list[str]:
    """Split `text` into world tokens (other whitespace only separates)."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Number of world tokens in `text`."""
    return len(_TOKEN_RE.findall(text))
