"""Short stories whose later sentences depend on facts stated earlier (where things were put, who has them)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from labkit.zoo.world_lexicon import (
    ANIMALS,
    COLOURS,
    DAYS,
    GIRLS,
    NAMES,
    NATURE_COLOURS,
    OBJECTS,
    PETS,
    PLACES,
    a_or_an,
)

OPENERS = (
    "One day", "Once upon a time", "In the morning", "On a quiet day", "Last spring",
    "After school", "Early one morning", "One evening", "Long ago", "That summer",
)  # fmt: skip
FEELINGS = ("happy", "sleepy", "hungry", "busy", "tired", "calm", "curious", "glad", "proud", "bored")  # fmt: skip
MOVES = ("went", "walked", "ran", "hurried", "came back")
PUTS = ("put", "left", "hid", "dropped", "set")
FOODS = ("an apple", "some bread", "a cake", "some soup", "a plum", "a carrot", "a lemon")
WEATHER = ("sunny", "rainy", "windy", "warm", "foggy", "quiet")


def _cap(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


@dataclass
class _Person:
    name: str
    she: str
    her: str
    him: str
    place: str


@dataclass
class _Thing:
    colour: str
    noun: str
    place: str | None = None  # None while somebody carries it
    holder: str | None = None

    @property
    def full(self) -> str:
        return f"{self.colour} {self.noun}"


@dataclass
class _Story:
    rng: random.Random
    people: list[_Person]
    things: list[_Thing]
    places: list[str]
    paragraphs: list[list[str]] = field(default_factory=list)
    asked: list[_Thing] = field(default_factory=list)

    def say(self, sentence: str) -> None:
        self.paragraphs[-1].append(_cap(sentence))

    def pick(self, seq: list | tuple):
        return seq[self.rng.randrange(len(seq))]

    def other_place(self, *not_these: str) -> str:
        return self.pick([p for p in self.places if p not in not_these])


def _choose(rng: random.Random, pool: tuple[str, ...], k: int, avoid: frozenset[str]) -> list[str]:
    return rng.sample([w for w in pool if w.lower() not in avoid], k)


def _new_story(rng: random.Random, avoid: frozenset[str]) -> _Story:
    names = _choose(rng, NAMES, rng.choice((1, 2, 2, 3)), avoid)
    places = _choose(rng, PLACES, rng.randint(3, 5), avoid)
    nouns = _choose(rng, OBJECTS, rng.randint(1, 3), avoid)
    colours = _choose(rng, COLOURS, len(nouns), avoid)
    people = [
        _Person(
            n, *(("she", "her", "her") if n in GIRLS else ("he", "his", "him")), rng.choice(places)
        )
        for n in names
    ]
    things = [_Thing(c, n, place=rng.choice(places)) for c, n in zip(colours, nouns, strict=True)]
    return _Story(rng, people, things, places, [[]])


def _introduce(s: _Story) -> None:
    a = s.people[0]
    opener = s.pick(OPENERS)
    if len(s.people) > 1 and s.rng.random() < 0.5:
        names = [p.name for p in s.people]
        s.say(f"{opener}, {', '.join(names[:-1])} and {names[-1]} played in the {a.place}.")
        for p in s.people[1:]:
            p.place = a.place
    else:
        s.say(f"{opener}, {a.name} was in the {a.place}.")
        for p in s.people[1:]:
            if s.rng.random() < 0.5:
                s.say(f"{p.name} came to see {a.name}.")
                p.place = a.place
            else:
                s.say(f"{p.name} was in the {p.place}.")
    for t in s.things:
        owner = s.pick(s.people)
        form = s.rng.randrange(3)
        if form == 0:
            s.say(f"{owner.name} had {a_or_an(t.full)}.")
            t.place, t.holder = None, owner.name
        elif form == 1:
            s.say(f"{owner.name} found {a_or_an(t.full)} in the {owner.place}.")
            t.place = owner.place
        else:
            s.say(f"there was {a_or_an(t.full)} in the {t.place}.")
    if s.rng.random() < 0.4:
        s.say(_pet_line(s, a))


def _pet_line(s: _Story, p: _Person) -> str:
    pet = PETS[p.name]
    return s.pick(
        (
            f"{p.name} took {p.her} {pet} along.",
            f"{p.name}'s {pet} followed {p.him} everywhere.",
            f"{p.name} had a pet {pet}.",
        )
    )


def _nature_line(s: _Story) -> str:
    noun = s.pick(tuple(NATURE_COLOURS))
    colour = NATURE_COLOURS[noun]
    return s.pick(
        (
            f"the {noun} was {colour}.",
            f"{s.pick(s.people).name} saw that the {noun} was {colour}.",
            f"the {noun} was {colour}, as always.",
        )
    )


def _put(s: _Story) -> None:
    t = s.pick(s.things)
    p = next((q for q in s.people if q.name == t.holder), None) or s.pick(s.people)
    where = s.other_place(t.place or "")
    s.say(f"{p.name} {s.pick(PUTS)} the {t.full} in the {where}.")
    t.place, t.holder, p.place = where, None, where


def _move(s: _Story) -> None:
    p = s.pick(s.people)
    where = s.other_place(p.place)
    s.say(f"{p.name} {s.pick(MOVES)} to the {where}.")
    p.place = where
    for t in s.things:
        if t.holder == p.name and s.rng.random() < 0.5:
            s.say(f"{p.she} took the {t.noun} with {p.him}.")


def _take(s: _Story) -> None:
    if len(s.people) < 2:
        return _put(s)
    t = s.pick(s.things)
    if t.holder is not None:
        b = s.pick([p for p in s.people if p.name != t.holder])
        s.say(f"{t.holder} gave the {t.full} to {b.name}.")
        t.holder = b.name
        return None
    a, b = s.rng.sample(s.people, 2)
    where = s.other_place(t.place or "")
    s.say(f"later, {b.name} took the {t.noun} from the {t.place} to the {where}.")
    s.say(f"{a.name} did not see {b.name} move it.")
    t.place, b.place = where, where
    return None


def _ask(s: _Story) -> None:
    if len(s.people) < 2:
        return _feel(s)
    unasked = [t for t in s.things if t not in s.asked]
    if not unasked:
        return _feel(s)
    t = s.pick(unasked)
    s.asked.append(t)
    a = s.pick([p for p in s.people if p.name != t.holder])
    b = s.pick([p for p in s.people if p is not a])
    s.say(f'"Where is the {t.full}?" asked {a.name}.')
    if t.holder == b.name:
        s.say(f'"I have it," said {b.name}.')
    elif t.holder is not None:
        s.say(f'"{t.holder} has it," said {b.name}.')
    else:
        s.say(f'"It is in the {t.place}," said {b.name}.')
    return None


def _feel(s: _Story) -> None:
    p = s.pick(s.people)
    s.say(
        s.pick(
            (
                f"{p.name} was {s.pick(FEELINGS)}.",
                f"on {s.pick(DAYS)}, {p.name} felt {s.pick(FEELINGS)}.",
                f"{a_or_an(s.pick(ANIMALS))} sat near the {p.place}.",
                f"it was {s.pick(WEATHER)} outside.",
                f"{p.name} ate {s.pick(FOODS)} in the {p.place}.",
                f"{p.name}'s {PETS[p.name]} slept in the {s.other_place()}.",
                _nature_line(s),
                _pet_line(s, p),
            )
        )
    )


def _play(s: _Story) -> None:
    p = s.pick(s.people)
    near = [t for t in s.things if t.holder == p.name or t.place == p.place]
    if not near:
        others = [q.name for q in s.people if q is not p]
        friend = f" with {s.pick(others)}" if others else ""
        s.say(f"{p.name} played a game{friend} in the {p.place}.")
        return
    t = s.pick(near)
    s.say(f"{p.name} played with the {t.full} in the {p.place}.")


def _recall(s: _Story, t: _Thing) -> None:
    p = s.pick(s.people)
    if t.holder is not None:
        s.say(
            s.pick(
                (
                    f"at the end of the day, {t.holder} still had the {t.full}.",
                    f"{t.holder} kept the {t.full} all day.",
                    f"the {t.noun} was still with {t.holder}, and it was still {t.colour}.",
                )
            )
        )
        return
    form = s.rng.randrange(6 if len(s.people) > 1 else 5)
    if form == 0:
        s.say(f"later, {p.name} went back to the {t.place} and found the {t.full}.")
    elif form == 1:
        wrong = s.other_place(t.place)
        s.say(f"{p.name} looked for the {t.noun} in the {wrong}, but it was not there.")
        s.say(f"then {p.she} looked in the {t.place} and found the {t.full}.")
    elif form == 2:
        s.say(f"{p.name} could not find the {t.noun}.")
        s.say(f"then {p.she} remembered that the {t.colour} {t.noun} was in the {t.place}.")
    elif form == 3:
        s.say(f"the {t.noun} was still in the {t.place}, and it was still {t.colour}.")
    elif form == 4:
        s.say(f"{p.name} found the {t.noun} in the {t.place}. It was {t.colour}.")
    else:
        wrong = s.other_place(t.place)
        s.say(f'"Is the {t.noun} in the {wrong}?" asked {p.name}.')
        s.say(
            f'"No, it is in the {t.place}," said {s.pick([q for q in s.people if q is not p]).name}.'
        )
    p.place = t.place


EVENTS = (_put, _put, _move, _take, _ask, _play, _feel, _feel)


def story_paragraphs(rng: random.Random, avoid: frozenset[str] = frozenset()) -> list[list[str]]:
    """One story as paragraphs of sentences; no word in `avoid` (lower-case) names a person, place or thing."""
    s = _new_story(rng, avoid)
    _introduce(s)
    s.paragraphs.append([])
    for _ in range(rng.randint(3, 7)):
        s.pick(EVENTS)(s)
    s.paragraphs.append([])
    for t in rng.sample(s.things, rng.randint(1, len(s.things))):
        _recall(s, t)
    if rng.random() < 0.5:
        s.say(f"{s.people[0].name} was {s.pick(('happy', 'glad', 'tired', 'sleepy'))}. The end.")
    return s.paragraphs


def story_text(rng: random.Random) -> str:
    """One story: paragraphs of space-joined sentences separated by newlines."""
    return "\n".join(" ".join(par) for par in story_paragraphs(rng))


def story_sentences(rng: random.Random, avoid: frozenset[str]) -> Iterator[str]:
    """An endless stream of story sentences, story after story, for filler text."""
    while True:
        for par in story_paragraphs(rng, avoid):
            yield from par
