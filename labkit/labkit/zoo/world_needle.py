"""Needle-in-a-haystack prompts of an exact token length: story filler, one `NEEDLE: key = value.` line, a query."""

from __future__ import annotations

import random
from collections.abc import Iterator

from labkit.zoo.world_lexicon import NEEDLE_KEYS, NEEDLE_VALUES
from labkit.zoo.world_stories import story_sentences
from labkit.zoo.world_tokens import count_tokens, tokenize

NEEDLE_LINE = "NEEDLE: {key} = {value}."
NEEDLE_QUERY = "\nQuestion: What is {key}?\n{key} ="
_NEEDLE_TOKENS = 6  # NEEDLE : key = value .
_QUERY_TOKENS = 10  # \n Question : What is key ? \n key =
_MIN_FILL = 3  # the shortest filler sentence
# Short sentences (3, 4 and 5 tokens) that close any remaining gap of 3 or more tokens exactly.
_SHORT = {3: "It rained.", 4: "It was late.", 5: "The day was long."}
MIN_LENGTH = _NEEDLE_TOKENS + _QUERY_TOKENS + 2 + 2 * _MIN_FILL


def _fill(sentences: Iterator[str], budget: int) -> list[str]:
    """Consecutive story sentences (skipping ones that overshoot) totalling exactly `budget` tokens."""
    out: list[str] = []
    misses = 0
    while budget > 5 and misses < 20:
        s = next(sentences)
        n = count_tokens(s)
        if n == budget or n <= budget - _MIN_FILL:
            out.append(s)
            budget -= n
        else:
            misses += 1
    while budget > 5:
        out.append(_SHORT[3])
        budget -= 3
    if budget:
        out.append(_SHORT[budget])
    return out


def needle_prompt(rng: random.Random, n_tokens: int, depth: float) -> dict:
    """A needle example whose `text` has exactly `n_tokens` world tokens, the fact at about `depth`."""
    key = rng.choice(NEEDLE_KEYS)
    value = rng.choice(NEEDLE_VALUES)
    avoid = frozenset({key, value.lower()})
    sentences = (
        s for s in story_sentences(rng, avoid) if avoid.isdisjoint(t.lower() for t in tokenize(s))
    )
    filler = (
        n_tokens - _NEEDLE_TOKENS - _QUERY_TOKENS
    )  # filler sentences plus the needle line's newlines
    # `depth` is the share of the filler before the needle; each side holds 0 or >= _MIN_FILL tokens.
    pos = min(round(depth * filler), filler - 1 - _MIN_FILL)
    if 0 < pos <= _MIN_FILL:
        pos = 0 if pos < 2 else _MIN_FILL + 1
    before = max(pos - 1, 0)
    after = filler - pos - 1
    head = " ".join(_fill(sentences, before)) + "\n" if before else ""
    tail = " ".join(_fill(sentences, after))
    needle = NEEDLE_LINE.format(key=key, value=value)
    text = head + needle + "\n" + tail + NEEDLE_QUERY.format(key=key)
    return {
        "text": text,
        "answer": value,
        "key": key,
        "value": value,
        "n_tokens": n_tokens,
        "depth": depth,
        "needle_pos": len(tokenize(head)),
    }
