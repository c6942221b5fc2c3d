"""The zoo's text world: determinism, exact needle lengths, balanced and derivable labels, bad input."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from labkit.errors import ConfigError
from labkit.zoo import world_lexicon as lex
from labkit.zoo.world import (
    DATASETS,
    build_dataset,
    count_tokens,
    format_mcq,
    format_mcq_text,
    format_needle,
    format_sentiment,
    tokenize,
)

SPLITS = ("train", "validation", "test")


def _digest(ds) -> dict[str, str]:
    """sha256 of every split's rows as canonical JSON lines."""
    return {
        split: hashlib.sha256(
            "\n".join(json.dumps(r, sort_keys=True) for r in ds[split]).encode()
        ).hexdigest()
        for split in SPLITS
    }


@pytest.fixture(scope="module")
def small():
    return {name: build_dataset(name, "test", 0) for name in DATASETS}


# ---------- determinism ----------


@pytest.mark.parametrize("name", DATASETS)
def test_same_seed_same_bytes_other_seed_differs(name, small, tmp_path):
    again = build_dataset(name, "test", 0)
    other = build_dataset(name, "test", 1)
    for split in SPLITS:
        a, b = tmp_path / f"a_{split}.jsonl", tmp_path / f"b_{split}.jsonl"
        small[name][split].to_json(a)
        again[split].to_json(b)
        assert a.read_bytes() == b.read_bytes()
    first, second = _digest(small[name]), _digest(other)
    assert all(first[s] != second[s] for s in SPLITS)


def test_same_bytes_in_a_process_with_another_hash_seed(small):
    code = (
        "import json; from labkit.zoo.world import DATASETS, build_dataset\n"
        "print(json.dumps({n: [list(build_dataset(n, 'test', 0)[s]) for s in "
        "('train', 'validation', 'test')] for n in DATASETS}, sort_keys=True))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    theirs = json.loads(out.stdout)
    for name in DATASETS:
        ours = [list(small[name][s]) for s in SPLITS]
        assert json.loads(json.dumps(ours, sort_keys=True)) == theirs[name]


# ---------- tokens ----------


def test_token_rule():
    assert tokenize("Mia's red cup.\n  NEEDLE: orbit = Leo.\tok") == [
        "Mia", "'", "s", "red", "cup", ".", "\n", "NEEDLE", ":", "orbit", "=", "Leo", ".", "ok",
    ]  # fmt: skip
    assert count_tokens("a  b\n\nc1 2?") == 7
    assert count_tokens("") == 0


# ---------- stories ----------


@pytest.mark.parametrize(
    ("name", "column"),
    [("stories", "text"), ("sentiment", "sentence"), ("needle", "text"), ("mcq", "question")],
)
def test_no_text_in_two_rows_or_splits(name, column, small):
    texts = [t for s in SPLITS for t in small[name][s][column]]
    assert len(set(texts)) == len(texts)


def test_stories_recall_refers_back(small):
    found = 0
    for text in small["stories"]["train"]["text"]:
        *earlier, last = text.split("\n")
        for colour, obj in re.findall(r"found the (\w+) (\w+)\.", last):
            assert f"{colour} {obj}" in "\n".join(earlier), text
            found += 1
    assert found > 50


def test_stories_state_world_facts_consistently():
    text = "\n".join(build_dataset("stories", "test", 3)["train"]["text"])
    nature = re.findall(r"\b[Tt]he (\w+) was (\w+)", text)
    stated = [(n, c) for n, c in nature if n in lex.NATURE_COLOURS]
    assert len(stated) > 20
    assert all(lex.NATURE_COLOURS[n] == c for n, c in stated)
    pets = re.findall(r"(\w+) had a pet (\w+)", text) + re.findall(r"(\w+)'s (\w+) followed", text)
    assert len(pets) > 20
    assert all(lex.PETS[name] == animal for name, animal in pets)


def test_stories_default_size():
    ds = build_dataset("stories", "default", 0)
    mb = {s: sum(len(t.encode()) for t in ds[s]["text"]) / 1e6 for s in SPLITS}
    assert 3.0 <= mb["train"] <= 6.0
    assert 0.1 <= mb["validation"] <= 0.6 and 0.1 <= mb["test"] <= 0.6


# ---------- sentiment ----------

POLARITY = {
    w: q
    for table in (lex.ADJECTIVES, lex.VERBS, lex.NOUNS, lex.REACTIONS)
    for q in (0, 1)
    for w in table[q]
}


def _best_threshold_accuracy(values: list[int], labels: list[int]) -> float:
    """Accuracy of the best one-threshold rule `value > t` (either direction) predicting the label."""
    best = 0.0
    for t in sorted(set(values)):
        acc = sum((v > t) == bool(y) for v, y in zip(values, labels, strict=True)) / len(values)
        best = max(best, acc, 1 - acc)
    return best


def test_sentiment_balanced_derivable_and_not_positional():
    ds = build_dataset("sentiment", "default", 0)
    for split in SPLITS:
        labels = ds[split]["label"]
        assert Counter(labels)[0] == Counter(labels)[1] == len(labels) // 2
        assert ds[split]["idx"] == list(range(len(labels)))
    rows = ds["train"]
    lengths, positions, labels, mixed = [], [], [], 0
    for sentence, label in zip(rows["sentence"], rows["label"], strict=True):
        toks = tokenize(sentence)
        valenced = [(i, POLARITY[t]) for i, t in enumerate(toks) if t in POLARITY]
        assert valenced and valenced[-1][1] == label, sentence
        mixed += valenced[0][1] != label
        lengths.append(len(toks))
        positions.append(valenced[-1][0])
        labels.append(label)
    assert 0.15 < mixed / len(labels) < 0.5  # "but" sentences: the first valenced word misleads
    assert len(set(positions)) >= 10
    assert _best_threshold_accuracy(lengths, labels) < 0.55
    assert _best_threshold_accuracy(positions, labels) < 0.55
    same_as_next = sum(a == b for a, b in itertools.pairwise(labels)) / (len(labels) - 1)
    assert 0.45 < same_as_next < 0.55  # row order does not give the label away


def test_sentiment_default_splits_disjoint():
    ds = build_dataset("sentiment", "default", 0)
    train = set(ds["train"]["sentence"])
    assert len(train) == len(ds["train"])
    assert not train & set(ds["test"]["sentence"])
    assert not train & set(ds["validation"]["sentence"])


def test_format_sentiment():
    assert format_sentiment({"sentence": "The cake was lovely.", "label": 1}) == (
        "Review: The cake was lovely.\nSentiment:",
        " positive",
    )
    assert format_sentiment({"sentence": "It was awful.", "label": 0})[1] == " negative"


# ---------- needle ----------


def _check_needle_row(ex: dict) -> None:
    toks = tokenize(ex["text"])
    assert count_tokens(ex["text"]) == len(toks) == ex["n_tokens"]
    pos, key, value = ex["needle_pos"], ex["key"], ex["value"]
    assert toks[pos : pos + 6] == ["NEEDLE", ":", key, "=", value, "."]
    assert pos == 0 or toks[pos - 1] == "\n"
    assert [i for i, t in enumerate(toks) if t.lower() == value.lower()] == [pos + 4]
    assert toks.count(key) == 3  # fact, question, and the closing `key =`
    assert ex["text"].endswith(f"\n{key} =") and ex["answer"] == value
    assert format_needle(ex) == (ex["text"], " " + value)


def test_needle_exact_lengths_and_single_value(small):
    ds = small["needle"]
    for split in SPLITS:
        for ex in ds[split]:
            _check_needle_row(ex)
    assert Counter(ds["test"]["n_tokens"]) == {32: 10, 64: 10}
    assert min(ds["train"]["n_tokens"]) >= 32 and max(ds["train"]["n_tokens"]) <= 254


@pytest.mark.parametrize("depth", [0.0, 0.35, 0.5, 1.0])
def test_needle_options_lengths_depth(depth):
    lengths = [24, 25, 26, 27, 31, 100, 223, 256]
    ds = build_dataset("needle", "test", 7, lengths=lengths, n_per_length=3, depth=depth)
    for split in ("validation", "test"):
        assert sorted(ds[split]["n_tokens"]) == sorted(lengths * 3)
        for ex in ds[split]:
            _check_needle_row(ex)
            assert ex["depth"] == depth
            context = tokenize(ex["text"].split("\nQuestion:")[0])
            if ex["n_tokens"] >= 64:
                assert abs(ex["needle_pos"] / (len(context) - 6) - depth) < 0.05


def test_needle_default_eval_lengths():
    ds = build_dataset("needle", "default", 0)
    assert Counter(ds["validation"]["n_tokens"]) == {64: 100, 128: 100, 192: 100, 224: 100}
    for split in SPLITS:
        assert all(
            count_tokens(t) == n
            for t, n in zip(ds[split]["text"], ds[split]["n_tokens"], strict=True)
        )
    assert len(ds["train"]) >= 5000 and len(set(ds["train"]["value"])) == len(lex.NEEDLE_VALUES)


# ---------- mcq ----------

CATEGORIES = (lex.COLOURS, lex.NAMES, lex.PLACES, lex.OBJECTS, lex.ANIMALS)
ENTITIES = set(lex.NAMES) | set(lex.COLOURS) | set(lex.OBJECTS) | set(lex.PLACES)


def _derive(question: str, options: list[str]) -> str:
    """The answer by rule: a world fact, or the one passage clause that holds every entity the question names."""
    *passage, asked = re.split(r"(?<=[.?])\s+", question)
    category = next(c for c in CATEGORIES if all(o in c for o in options))
    if not passage:
        m = re.fullmatch(r"What colour is the (\w+)\?", asked) or re.fullmatch(
            r"What pet does (\w+) have\?", asked
        )
        return {**lex.NATURE_COLOURS, **lex.PETS}[m.group(1)]
    named = {t for t in tokenize(asked) if t in ENTITIES}
    clauses = [c for s in passage for c in s.rstrip(".").split(" and ")]
    holding = [c for c in clauses if named <= set(tokenize(c))]
    assert len(holding) == 1, question
    (answer,) = [t for t in tokenize(holding[0]) if t in category]
    return answer


def test_mcq_balanced_and_derivable():
    ds = build_dataset("mcq", "default", 0)
    with_passage_distractors = 0
    for split in SPLITS:
        rows = ds[split]
        keys = Counter(rows["answerKey"])
        assert set(keys) == {"A", "B", "C", "D"} and len(set(keys.values())) == 1
        for ex in rows:
            text, labels = ex["choices"]["text"], ex["choices"]["label"]
            assert labels == ["A", "B", "C", "D"] and len(set(text)) == 4
            assert text[labels.index(ex["answerKey"])] == _derive(ex["question"], text)
            with_passage_distractors += sum(o in tokenize(ex["question"]) for o in text) >= 2
    assert with_passage_distractors > 0.5 * sum(len(ds[s]) for s in SPLITS)
    world_facts = [q for q in ds["test"]["question"] if not re.search(r"[.] ", q)]
    assert len(world_facts) >= 20  # knowledge stated only by the stories is examined in test
    assert not set(ds["train"]["question"]) & set(ds["test"]["question"])
    assert ds["test"][0]["id"] != ds["train"][0]["id"]


def test_format_mcq():
    ex = {
        "question": "Mia has a red cup. What colour is Mia's cup?",
        "choices": {"text": ["blue", "red", "green", "pink"], "label": ["A", "B", "C", "D"]},
        "answerKey": "B",
    }
    assert format_mcq(ex) == (
        "Question: Mia has a red cup. What colour is Mia's cup?\nChoices:\n"
        "A) blue\nB) red\nC) green\nD) pink\nAnswer:",
        " B",
    )
    assert format_mcq_text(ex) == (
        "Question: Mia has a red cup. What colour is Mia's cup?\nAnswer:",
        " red",
    )


# ---------- bad input ----------


@pytest.mark.parametrize(
    ("args", "options", "needle"),
    [
        (("poems", "test", 0), {}, "unknown world dataset 'poems'"),
        (("stories", "huge", 0), {}, "unknown size 'huge'"),
        (("stories", "test", 0), {"lengths": [64]}, "unknown option(s) lengths"),
        (("needle", "test", 0), {"width": 3}, "unknown option(s) width"),
        (("needle", "test", 0), {"lengths": [10]}, "lengths must be"),
        (("needle", "test", 0), {"lengths": 64}, "lengths must be"),
        (("needle", "test", 0), {"lengths": "64"}, "lengths must be"),
        (("needle", "test", 0), {"lengths": [64, 30.5]}, "lengths must be"),
        (("needle", "test", 0), {"n_per_length": 0}, "n_per_length must be"),
        (("needle", "test", 0), {"depth": 1.5}, "depth must be"),
        (("mcq", "test", "0"), {}, "seed must be an integer"),
    ],
)
def test_bad_input_is_a_config_error(args, options, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        build_dataset(*args, **options)
