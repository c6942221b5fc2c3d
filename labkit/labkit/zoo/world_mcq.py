"""ARC-shaped four-way questions answerable from a short passage or from facts every story states."""

from __future__ import annotations

import random

from labkit.zoo.world_lexicon import (
    ANIMALS,
    COLOURS,
    NAMES,
    NATURE_COLOURS,
    OBJECTS,
    PETS,
    PLACES,
    a_or_an,
)

LABELS = ("A", "B", "C", "D")
HAS = ("has", "owns", "is holding", "bought", "found")
PUT = ("put", "left", "hid", "placed")


def _facts(rng: random.Random) -> list[tuple[str, str, str, str]]:
    """2-4 (name, colour, object, place) facts with distinct names and distinct colour+object pairs."""
    n = rng.randint(2, 4)
    names = rng.sample(NAMES, n)
    pairs: list[tuple[str, str]] = []
    while len(pairs) < n:
        pair = (rng.choice(COLOURS), rng.choice(OBJECTS))
        if pair not in pairs:
            pairs.append(pair)
    return [(x, c, o, rng.choice(PLACES)) for x, (c, o) in zip(names, pairs, strict=True)]


def _passage(rng: random.Random, clauses: list[str]) -> str:
    sentences: list[str] = []
    i = 0
    while i < len(clauses):
        if i + 1 < len(clauses) and rng.random() < 0.4:
            sentences.append(f"{clauses[i]} and {clauses[i + 1]}.")
            i += 2
        else:
            sentences.append(f"{clauses[i]}.")
            i += 1
    return " ".join(sentences)


def _question(rng: random.Random) -> tuple[str, str, tuple[str, ...], list[str]]:
    """(question text, answer, answer's category, words to prefer as distractors)."""
    kind = rng.choices(("colour", "owner", "place", "object", "nature", "pet"), (2, 2, 2, 2, 1, 1))[
        0
    ]
    if kind == "nature":
        noun = rng.choice(tuple(NATURE_COLOURS))
        return f"What colour is the {noun}?", NATURE_COLOURS[noun], COLOURS, []
    if kind == "pet":
        name = rng.choice(NAMES)
        return f"What pet does {name} have?", PETS[name], ANIMALS, []
    facts = _facts(rng)
    x, c, o, p = rng.choice(facts)
    if kind in ("colour", "owner"):
        passage = _passage(
            rng, [f"{f[0]} {rng.choice(HAS)} {a_or_an(f[1] + ' ' + f[2])}" for f in facts]
        )
        if kind == "colour":
            return f"{passage} What colour is {x}'s {o}?", c, COLOURS, [f[1] for f in facts]
        return f"{passage} Who has the {c} {o}?", x, NAMES, [f[0] for f in facts]
    passage = _passage(
        rng, [f"{f[0]} {rng.choice(PUT)} the {f[1]} {f[2]} in the {f[3]}" for f in facts]
    )
    if kind == "place":
        return f"{passage} Where is the {c} {o}?", p, PLACES, [f[3] for f in facts]
    return f"{passage} What did {x} put in the {p}?", o, OBJECTS, [f[2] for f in facts]


def mcq_item(rng: random.Random, answer_pos: int) -> dict:
    """One question with four distinct choices, the correct one at index `answer_pos`."""
    question, answer, category, preferred = _question(rng)
    distractors: list[str] = []
    for word in [*preferred, *rng.sample(category, len(category))]:
        if word != answer and word not in distractors:
            distractors.append(word)
    choices = distractors[:3]
    rng.shuffle(choices)
    choices.insert(answer_pos, answer)
    return {
        "question": question,
        "choices": {"text": choices, "label": list(LABELS)},
        "answerKey": LABELS[answer_pos],
    }
