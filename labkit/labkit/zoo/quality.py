"""Quality of a zoo language model: perplexity against a unigram model, needle recall, prompted tasks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.stats
import torch
from datasets import DatasetDict
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from labkit.zoo.world import (
    SENTIMENT_LABELS,
    format_mcq,
    format_mcq_text,
    format_needle,
    format_sentiment,
)


def _ids(tok: PreTrainedTokenizerFast, text: str) -> list[int]:
    return tok(text, add_special_tokens=False).input_ids


def token_stream(tok: PreTrainedTokenizerFast, texts: Iterable[str]) -> np.ndarray:
    """All `texts` as one token stream, each followed by EOS."""
    return np.array([i for t in texts for i in (*_ids(tok, t), tok.eos_token_id)], dtype=np.int64)


@torch.no_grad()
def perplexity(model: PreTrainedModel, ids: np.ndarray, window: int, batch: int = 16) -> float:
    """Perplexity over `ids` cut into disjoint windows of `window` tokens (each window's first token unscored)."""
    n = len(ids) // window
    if n == 0:
        raise ValueError(f"need at least {window} tokens for one window, got {len(ids)}")
    rows = torch.from_numpy(ids[: n * window].reshape(n, window))
    total, count = 0.0, 0
    for i in range(0, n, batch):
        x = rows[i : i + batch]
        # An explicit all-ones mask: these windows hold EOS (= the pad id) but no padding.
        logits = model(input_ids=x, attention_mask=torch.ones_like(x)).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        total -= logp.gather(-1, x[:, 1:, None]).sum().item()
        count += x[:, 1:].numel()
    return math.exp(total / count)


def unigram_perplexity(train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int) -> float:
    """Perplexity on `eval_ids` of an add-one-smoothed unigram model fitted on `train_ids`."""
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    return float(np.exp(-logp[eval_ids].mean()))


@torch.no_grad()
def continuation_logprobs(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, prompt: str, answers: Sequence[str]
) -> list[float]:
    """Sum of log p of each answer's tokens after `prompt`, all answers in one batch."""
    p = _ids(tok, prompt)
    conts = [_ids(tok, a) for a in answers]
    width = len(p) + max(map(len, conts))
    # Right padding is harmless: causal attention never lets a position see the padding after it.
    # The mask says so anyway, so transformers need not warn that the input may be padded.
    x = torch.tensor([p + c + [tok.pad_token_id] * (width - len(p) - len(c)) for c in conts])
    mask = torch.tensor([[1] * (len(p) + len(c)) + [0] * (width - len(p) - len(c)) for c in conts])
    logp = torch.log_softmax(model(input_ids=x, attention_mask=mask).logits.float(), -1)
    return [
        sum(logp[i, len(p) - 1 + j, t].item() for j, t in enumerate(c)) for i, c in enumerate(conts)
    ]


@torch.no_grad()
def needle_recall(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, rows: Iterable[dict]
) -> float:
    """Share of needle rows whose greedy next token after the prompt is the value's first token."""
    hits = []
    for row in rows:
        prompt, answer = format_needle(row)
        x = torch.tensor([_ids(tok, prompt)])
        logits = model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0, -1]
        hits.append(int(logits.argmax()) == _ids(tok, answer)[0])
    return float(np.mean(hits))


def sentiment_accuracy(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, rows: Iterable[dict]
) -> float:
    """Share of sentiment rows whose label's answer (" negative"/" positive") has the larger log p."""
    hits = []
    for row in rows:
        scores = continuation_logprobs(model, tok, format_sentiment(row)[0], SENTIMENT_LABELS)
        hits.append(int(np.argmax(scores)) == row["label"])
    return float(np.mean(hits))


def mcq_scores(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, rows: Iterable[dict]
) -> dict[str, float | list[float]]:
    """ARC-style MCQ accuracy by choice text (lm-eval's acc, acc_norm) with a 95% CI, and by answer letter.

    `accuracy`: the choice whose text (" red") has the largest log p after "Question: ...\nAnswer:";
    `accuracy_norm`: the same per character of the choice; `letter_accuracy`: the label (" A".." D") with the
    largest log p after the prompt that lists the lettered choices.
    """
    text_hits, norm_hits, letter_hits = [], [], []
    for row in rows:
        texts, labels = row["choices"]["text"], row["choices"]["label"]
        truth = labels.index(row["answerKey"])
        scores = continuation_logprobs(
            model, tok, format_mcq_text(row)[0], [f" {t}" for t in texts]
        )
        text_hits.append(int(np.argmax(scores)) == truth)
        norm_hits.append(
            int(np.argmax([s / len(t) for s, t in zip(scores, texts, strict=True)])) == truth
        )
        letters = continuation_logprobs(
            model, tok, format_mcq(row)[0], [f" {lab}" for lab in labels]
        )
        letter_hits.append(int(np.argmax(letters)) == truth)
    ci = scipy.stats.binomtest(int(sum(text_hits)), len(text_hits)).proportion_ci(0.95, "exact")
    return {
        "accuracy": float(np.mean(text_hits)),
        "ci95": [round(ci.low, 4), round(ci.high, 4)],
        "accuracy_norm": float(np.mean(norm_hits)),
        "letter_accuracy": float(np.mean(letter_hits)),
    }


def card(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, data: dict[str, DatasetDict], window: int
) -> dict:
    """Quality numbers of `model` on the held-out splits of the zoo world `data`, for its zoo card."""
    train_ids = token_stream(tok, data["stories"]["train"]["text"])
    val_ids = token_stream(tok, data["stories"]["validation"]["text"])
    needle = data["needle"]["test"]
    lengths = sorted(set(needle["n_tokens"]))
    return {
        "perplexity": {
            "split": "stories/validation",
            "window": window,
            "model": round(perplexity(model, val_ids, window), 3),
            "unigram": round(unigram_perplexity(train_ids, val_ids, len(tok)), 3),
        },
        "needle_recall": {
            "split": "needle/test",
            "rows_per_length": len(needle) // len(lengths),
            "by_length": {
                str(n): needle_recall(model, tok, [r for r in needle if r["n_tokens"] == n])
                for n in lengths
            },
        },
        "sentiment": {
            "split": "sentiment/validation",
            "rows": len(data["sentiment"]["validation"]),
            "chance": 0.5,
            "accuracy": sentiment_accuracy(model, tok, data["sentiment"]["validation"]),
        },
        "mcq": {
            "split": "mcq/test",
            "rows": len(data["mcq"]["test"]),
            "chance": 1 / len(data["mcq"]["test"][0]["choices"]["label"]),
            "scoring": "choice text after 'Question: ...\\nAnswer:' (lm-eval ARC); letters listed apart",
            **mcq_scores(model, tok, data["mcq"]["test"]),
        },
    }
