"""The zoo's text world as `datasets` objects: `local:stories`, `local:sentiment`, `local:needle`, `local:mcq`.

Everything is generated from `random.Random(seed)` with a closed vocabulary, so the same seed gives the
same bytes on any machine, and the prompt formats below are the contract every system scores against.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from labkit.errors import ConfigError
from labkit.zoo.world_mcq import mcq_item
from labkit.zoo.world_needle import MIN_LENGTH, needle_prompt
from labkit.zoo.world_sentiment import review
from labkit.zoo.world_stories import story_text
from labkit.zoo.world_tokens import TOKEN_PATTERN, count_tokens, tokenize

__all__ = [
    "DATASETS",
    "MCQ_PROMPT",
    "MCQ_TEXT_PROMPT",
    "SENTIMENT_LABELS",
    "SENTIMENT_PROMPT",
    "TOKEN_PATTERN",
    "build_dataset",
    "count_tokens",
    "format_mcq",
    "format_mcq_text",
    "format_needle",
    "format_sentiment",
    "tokenize",
]

SENTIMENT_PROMPT = "Review: {sentence}\nSentiment:"
SENTIMENT_LABELS = (" negative", " positive")
MCQ_PROMPT = "Question: {question}\nChoices:\n{choices}\nAnswer:"
# ARC's scoring in lm-evaluation-harness: each choice's text is a continuation of this prompt.
MCQ_TEXT_PROMPT = "Question: {question}\nAnswer:"
DATASETS = ("stories", "sentiment", "needle", "mcq")
SPLITS = ("train", "validation", "test")

# Rows per split; needle's evaluation splits are `n_per_length` rows at each of `lengths` instead.
SIZES = {
    "stories": {"default": (9000, 500, 500), "test": (200, 40, 40)},
    "sentiment": {"default": (8000, 872, 1000), "test": (200, 60, 60)},
    "needle": {"default": (8000, 0, 0), "test": (200, 0, 0)},
    "mcq": {"default": (4000, 400, 400), "test": (200, 40, 40)},
}
NEEDLE_OPTIONS = {
    "default": {"lengths": [64, 128, 192, 224], "n_per_length": 100, "depth": 0.35},
    "test": {"lengths": [32, 64], "n_per_length": 10, "depth": 0.35},
}
# Needle training prompts span short to long; +1 answer token +1 BOS still fits a 256-position model.
NEEDLE_TRAIN_LENGTHS = (32, 254)


def format_sentiment(ex: dict) -> tuple[str, str]:
    """(prompt, answer continuation) of a `local:sentiment` row, SST-2 style."""
    return SENTIMENT_PROMPT.format(sentence=ex["sentence"]), SENTIMENT_LABELS[ex["label"]]


def format_mcq(ex: dict) -> tuple[str, str]:
    """(prompt, answer continuation) of an ARC-shaped row, e.g. (`...Answer:`, ` B`)."""
    ch = ex["choices"]
    lines = "\n".join(f"{lab}) {text}" for lab, text in zip(ch["label"], ch["text"], strict=True))
    return MCQ_PROMPT.format(question=ex["question"], choices=lines), " " + ex["answerKey"]


def format_mcq_text(ex: dict) -> tuple[str, str]:
    """(prompt, answer continuation) of an ARC-shaped row scored by choice text, e.g. (`...Answer:`, ` red`)."""
    answer = ex["choices"]["text"][ex["choices"]["label"].index(ex["answerKey"])]
    return MCQ_TEXT_PROMPT.format(question=ex["question"]), " " + answer


def format_needle(ex: dict) -> tuple[str, str]:
    """(prompt, answer continuation) of a `local:needle` row: the prompt ends `key =`, the answer is ` value`."""
    return ex["text"], " " + ex["value"]


def _fresh(make: Callable[[], dict], key: str, seen: set[str]) -> dict:
    """A row from `make()` whose `key` text no earlier row of any split had."""
    while True:
        row = make()
        if row[key] not in seen:
            seen.add(row[key])
            return row


def _stories(rng: random.Random, split: str, n: int, seen: set[str]) -> list[dict]:
    return [_fresh(lambda: {"text": story_text(rng)}, "text", seen) for _ in range(n)]


def _sentiment(rng: random.Random, split: str, n: int, seen: set[str]) -> list[dict]:
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    return [
        {**_fresh(lambda y=y: {"sentence": review(rng, y)}, "sentence", seen), "label": y, "idx": i}
        for i, y in enumerate(labels)
    ]


def _mcq(rng: random.Random, split: str, n: int, seen: set[str]) -> list[dict]:
    positions = [i % 4 for i in range(n)]
    rng.shuffle(positions)
    rows = [_fresh(lambda p=p: mcq_item(rng, p), "question", seen) for p in positions]
    return [{"id": f"world-{split}-{i:05d}", **row} for i, row in enumerate(rows)]


def _needle(rng: random.Random, split: str, n: int, seen: set[str], **opts) -> list[dict]:
    if split == "train":
        lo, hi = NEEDLE_TRAIN_LENGTHS
        specs = [(rng.randint(lo, hi), round(rng.uniform(0.05, 0.95), 2)) for _ in range(n)]
    else:
        specs = [
            (length, opts["depth"])
            for length in opts["lengths"]
            for _ in range(opts["n_per_length"])
        ]
    return [_fresh(lambda s=s: needle_prompt(rng, *s), "text", seen) for s in specs]


GENERATORS = {"stories": _stories, "sentiment": _sentiment, "needle": _needle, "mcq": _mcq}
# Evaluation splits are drawn first, so small pools (the MCQ world-fact questions) land in them.
GENERATION_ORDER = ("test", "validation", "train")

FEATURES = {
    "stories": Features({"text": Value("string")}),
    "sentiment": Features(
        {
            "sentence": Value("string"),
            "label": ClassLabel(names=["negative", "positive"]),
            "idx": Value("int32"),
        }
    ),
    "needle": Features(
        {
            "text": Value("string"),
            "answer": Value("string"),
            "key": Value("string"),
            "value": Value("string"),
            "n_tokens": Value("int32"),
            "depth": Value("float64"),
            "needle_pos": Value("int32"),
        }
    ),
    "mcq": Features(
        {
            "id": Value("string"),
            "question": Value("string"),
            "choices": {"text": List(Value("string")), "label": List(Value("string"))},
            "answerKey": Value("string"),
        }
    ),
}


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _needle_options(size: str, options: dict) -> dict:
    """The size's needle defaults updated by `options`, checked before any generation."""
    opts = {**NEEDLE_OPTIONS[size], **options}
    lengths, n_per, depth = opts["lengths"], opts["n_per_length"], opts["depth"]
    if (
        isinstance(lengths, str)
        or not isinstance(lengths, Sequence)
        or not lengths
        or not all(_is_int(n) and n >= MIN_LENGTH for n in lengths)
    ):
        raise ConfigError(
            f"needle option lengths must be a non-empty list of integers >= {MIN_LENGTH}, got {lengths!r}"
        )
    if not _is_int(n_per) or n_per < 1:
        raise ConfigError(f"needle option n_per_length must be an integer >= 1, got {n_per!r}")
    if not (_is_int(depth) or isinstance(depth, float)) or not 0.0 <= depth <= 1.0:
        raise ConfigError(f"needle option depth must be a number in [0, 1], got {depth!r}")
    return {"lengths": list(lengths), "n_per_length": n_per, "depth": float(depth)}


def build_dataset(name: str, size: str, seed: int, **options) -> DatasetDict:
    """Generate `local:<name>` at `size` ('default' or 'test') from `seed` as a train/validation/test DatasetDict."""
    if name not in SIZES:
        raise ConfigError(f"unknown world dataset {name!r}; known: {', '.join(DATASETS)}")
    if size not in SIZES[name]:
        raise ConfigError(
            f"unknown size {size!r} for local:{name}; known: {', '.join(SIZES[name])}"
        )
    allowed = NEEDLE_OPTIONS[size].keys() if name == "needle" else ()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        known = ", ".join(allowed) or "none"
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for local:{name}; known: {known}"
        )
    if not _is_int(seed):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    opts = _needle_options(size, options) if name == "needle" else {}
    rng = random.Random(seed)
    seen: set[str] = set()
    counts = dict(zip(SPLITS, SIZES[name][size], strict=True))
    rows = {
        split: GENERATORS[name](rng, split, counts[split], seen, **opts)
        for split in GENERATION_ORDER
    }
    feats = FEATURES[name]
    return DatasetDict({split: Dataset.from_list(rows[split], features=feats) for split in SPLITS})
