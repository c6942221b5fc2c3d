"""One-sentence reviews whose label is carried by valenced words, with "but" sentences decided by the last clause."""

from __future__ import annotations

import random

from labkit.zoo.world_lexicon import (
    ADJECTIVES,
    DAYS,
    NAMES,
    NOUNS,
    OCCASIONS,
    PLACES,
    REACTIONS,
    VERBS,
    a_or_an,
)

BUT_SHARE = 0.3  # mixed sentences: the clause after "but" decides the label


def _subject(rng: random.Random) -> str:
    occ = rng.choice(OCCASIONS)
    return rng.choice(
        (
            f"the {occ}",
            f"the {occ} in the {rng.choice(PLACES)}",
            f"our {occ} on {rng.choice(DAYS)}",
            f"the {occ} with {rng.choice(NAMES)}",
            f"{rng.choice(NAMES)}'s {occ}",
        )
    )


def _clause(rng: random.Random, q: int) -> str:
    subj = _subject(rng)
    adj, adj2 = rng.sample(ADJECTIVES[q], 2)
    name = rng.choice(NAMES)
    form = rng.randrange(10)
    if form == 0:
        return f"{subj} was {adj}"
    if form == 1:
        return f"{subj} was {adj} and {adj2}"
    if form == 2:
        return f"{name} {rng.choice(VERBS[q])} {subj}"
    if form == 3:
        return f"{subj} was {a_or_an(rng.choice(NOUNS[q]))}"
    if form == 4:
        return f"everyone {rng.choice(REACTIONS[q])} during {subj}"
    if form == 5:
        return f"what {a_or_an(adj)} {rng.choice(OCCASIONS)} it was"
    if form == 6:
        return f"{name} said {subj} was {adj}"
    if form == 7:
        return f"we {rng.choice(VERBS[q])} every minute of {subj}"
    if form == 8:
        return f"{name} {rng.choice(REACTIONS[q])} after {subj}"
    return f"{subj} felt {adj} from start to end"


def _prefix(rng: random.Random) -> str:
    return rng.choice(
        ("", "", "", f"on {rng.choice(DAYS)}, ", "honestly, ", "in the end, ", "this time, ")
    )


def review(rng: random.Random, label: int) -> str:
    """One review sentence whose sentiment is `label` (0 negative, 1 positive)."""
    if rng.random() < BUT_SHARE:
        body = f"{_clause(rng, 1 - label)}, but {_clause(rng, label)}"
    else:
        body = _prefix(rng) + _clause(rng, label)
    return body[0].upper() + body[1:] + "."
