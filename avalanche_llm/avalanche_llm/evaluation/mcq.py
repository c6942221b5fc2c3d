"""ARC-style multiple choice: prompt template, log-prob of each ` {label}` under a gain, accuracy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from avalanche_llm.model.gain import apply_gain
from avalanche_llm.model.loader import LoadedModel
from labkit.errors import ConfigError


@dataclass(frozen=True)
class EncodedItem:
    """One question: prompt token ids, one target id list per choice, the correct choice index."""

    item_id: str
    prompt: list[int]
    targets: list[list[int]]
    answer: int


def render(item: Mapping[str, Any], template: Mapping[str, str]) -> tuple[str, list[str], int]:
    """Prompt text, target strings (one per choice) and the correct index of an ARC-shaped row."""
    labels, texts = item["choices"]["label"], item["choices"]["text"]
    if item["answerKey"] not in labels:
        raise ConfigError(f"item {item.get('id')}: answerKey {item['answerKey']!r} not in {labels}")
    lines = "\n".join(
        template["CHOICE_LINE"].format(label=lab, text=txt)
        for lab, txt in zip(labels, texts, strict=True)
    )
    prompt = template["PROMPT"].format(question=item["question"], choices=lines)
    targets = [template["TARGET"].format(label=lab) for lab in labels]
    return prompt, targets, labels.index(item["answerKey"])


def encode(
    rows: Sequence[Mapping[str, Any]], template: Mapping[str, str], tokenizer
) -> list[EncodedItem]:
    """Tokenise every item (no special tokens, like the raster windows)."""
    out = []
    for row in rows:
        prompt, targets, answer = render(row, template)
        ids = tokenizer([prompt, *targets], add_special_tokens=False)["input_ids"]
        out.append(EncodedItem(str(row["id"]), ids[0], ids[1:], answer))
    return out


def score(
    lm: LoadedModel, items: Sequence[EncodedItem], gain: float, batch_items: int
) -> list[np.ndarray]:
    """Summed log-prob of each choice's target tokens after its prompt, at MLP_GLOBAL gain `gain`.

    Sequences are right-padded: a causal model's logits at real positions never see later padding.
    """
    scores: list[np.ndarray] = []
    pad = lm.tokenizer.pad_token_id or 0
    with torch.inference_mode(), apply_gain(lm.model, gain, "MLP_GLOBAL"):
        for start in range(0, len(items), batch_items):
            chunk = items[start : start + batch_items]
            seqs = [(it.prompt, t) for it in chunk for t in it.targets]
            width = max(len(p) + len(t) for p, t in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            for i, (p, t) in enumerate(seqs):
                ids[i, : len(p) + len(t)] = torch.tensor(p + t)
            logp = torch.log_softmax(lm.model(input_ids=ids.to(lm.device)).logits.float(), dim=-1)
            flat = []
            for i, (p, t) in enumerate(seqs):
                pos = torch.arange(len(p) - 1, len(p) + len(t) - 1)
                flat.append(float(logp[i, pos, torch.tensor(t)].sum()))
            k = 0
            for it in chunk:
                scores.append(np.array(flat[k : k + len(it.targets)]))
                k += len(it.targets)
    return scores


def summarize(items: Sequence[EncodedItem], scores: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Per item: correct (argmax == answer) and log p(correct) - mean log p(incorrect)."""
    correct = np.array(
        [int(np.argmax(s) == it.answer) for it, s in zip(items, scores, strict=True)]
    )
    margin = np.array(
        [s[it.answer] - np.delete(s, it.answer).mean() for it, s in zip(items, scores, strict=True)]
    )
    return {"correct": correct, "margin": margin}
