"""The three evaluation tasks (§7) as per-example scorers under one (event factory, defense) cell.

A scorer returns one dict per example so that CIs can be bootstrapped over examples. Corrupted
reads are compared with the clean model on the same input (KL(p_clean‖p_D), top-1 agreement).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from cachemedicpp.corruption import CorruptionEvent
from cachemedicpp.data import LOCAL_HINT, split_texts, token_stream
from cachemedicpp.intervention import Defense, greedy_decode, intervene
from cachemedicpp.ppl import Window, sliding_windows
from labkit.determinism import generator
from labkit.errors import ConfigError
from labkit.zoo import load_dataset

EventFor = Callable[[int, int, str], CorruptionEvent | None]  # (example, length, persistence)
SST2_TEMPLATE = "Review: {x}\nSentiment:"
LABELS = (" negative", " positive")


@dataclass(frozen=True)
class Example:
    """One model input: `ids` [1, n]; `score_from` for PPL, `label`/`answer` for the others."""

    ids: torch.Tensor
    score_from: int = 1
    label: int | None = None
    answer: str | None = None


def _compare(clean: torch.Tensor, other: torch.Tensor) -> tuple[float, float]:
    """Sums over positions of KL(p_clean‖p_other) and of top-1 agreement; logits [n, vocab]."""
    logp, logq = F.log_softmax(clean.float(), -1), F.log_softmax(other.float(), -1)
    kl = (logp.exp() * (logp - logq)).sum(-1)
    agree = clean.argmax(-1) == other.argmax(-1)
    return kl.sum().item(), agree.float().sum().item()


@torch.no_grad()
def clean_reference(model: PreTrainedModel, task: str, ex: Example) -> torch.Tensor | None:
    """The clean logits a task's scorer compares a corrupted read with (None: it compares none)."""
    if task == "needle_long_context":
        return None
    with intervene(model):
        logits = model(ex.ids.to(model.device)).logits[0]
    if task == "sst2_prompted":
        return logits[-1:]
    return logits[ex.score_from - 1 : -1]


@torch.no_grad()
def score_ppl(
    model: PreTrainedModel,
    ex: Example,
    event: CorruptionEvent | None,
    defense: Defense | None,
    clean: torch.Tensor | None = None,
) -> dict[str, float]:
    """Summed NLL, KL and top-1 agreement over the window's new tokens, and their count.

    `clean` is `clean_reference(model, "wikitext2_ppl", ex)`, computed here when not given.
    """
    if clean is None:
        clean = clean_reference(model, "wikitext2_ppl", ex)
    ids = ex.ids.to(model.device)
    with intervene(model, event, defense) as iv:
        logits = model(ids).logits[0, ex.score_from - 1 : -1]
    targets = ids[0, ex.score_from :]
    kl, agree = _compare(clean, logits)
    nll = F.cross_entropy(logits.float(), targets, reduction="sum").item()
    return {
        "nll": nll,
        "n": targets.numel(),
        "kl": kl,
        "top1": agree,
        "eps_realized": iv.eps_realized,
    }


@torch.no_grad()
def score_sst2(
    model: PreTrainedModel,
    ex: Example,
    event: CorruptionEvent | None,
    defense: Defense | None,
    label_ids: tuple[torch.Tensor, torch.Tensor],
    clean: torch.Tensor | None = None,
) -> dict[str, float]:
    """Correct when Σ log p of the true label's tokens beats the other; KL/top-1 at the prompt end.

    `clean` is `clean_reference(model, "sst2_prompted", ex)`, computed here when not given.
    Labels that differ only in their last token share one read (see `label_reads`).
    """
    if clean is None:
        clean = clean_reference(model, "sst2_prompted", ex)
    n = ex.ids.shape[1]
    scores: dict[int, float] = {}
    for group in label_reads(label_ids):
        ids = torch.cat([ex.ids, label_ids[group[0]][None]], dim=1).to(model.device)
        with intervene(model, event, defense) as iv:
            logits = model(ids).logits[0]
        logp = F.log_softmax(logits[n - 1 : -1].float(), -1)
        for j in group:
            lab = label_ids[j].to(model.device)
            scores[j] = logp.gather(1, lab[:, None]).sum().item()
        last = logits[n - 1 : n]
    kl, agree = _compare(clean, last)
    pred = int(scores[1] > scores[0])
    correct = float(pred == ex.label)
    return {"correct": correct, "n": 1, "kl": kl, "top1": agree, "eps_realized": iv.eps_realized}


def label_reads(label_ids: tuple[torch.Tensor, ...]) -> list[list[int]]:
    """Labels grouped so that one forward of prompt + the group's first label scores them all.

    A label's log p needs the logits at the prompt's end and after each of its tokens but the
    last, so labels of equal length whose tokens differ only in the last share those logits.
    A position reads only earlier ones, so the appended token could reach the scored logits
    only through C's fitted strength, where C damages the newest position; `old_only`
    (n_recent >= 1, every shipped config) never does, and there the shared read is bit-identical
    to one read per label (`bench/eval_scoring.py` checks it). One-token labels (" negative",
    " positive") need one forward instead of two; the last group holds the last label, whose
    read gives KL/top-1.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for j, lab in enumerate(label_ids):
        groups.setdefault((*lab[:-1].tolist(), lab.numel()), []).append(j)
    return sorted(groups.values(), key=lambda g: g[-1])


def score_needle(
    model: PreTrainedModel,
    ex: Example,
    event: CorruptionEvent | None,
    defense: Defense | None,
    answer_ids: torch.Tensor,
    eos_token_id: int | None,
) -> dict[str, float]:
    """Greedy exact match of the needle's value tokens (the event is persistent, written once)."""
    out, iv = greedy_decode(
        model,
        ex.ids.to(model.device),
        answer_ids.numel(),
        event=event,
        defense=defense,
        eos_token_id=eos_token_id,
    )
    hit = out.shape[1] == answer_ids.numel() and bool((out[0].cpu() == answer_ids).all())
    return {"correct": float(hit), "n": 1, "eps_realized": iv.eps_realized}


def ppl_examples(tok: PreTrainedTokenizerBase, spec: Mapping[str, Any]) -> list[Example]:
    """Sliding windows over the whole split (window, stride, optional max_windows)."""
    texts = split_texts(spec["dataset"], spec["dataset_config"], spec["split"], spec["text_field"])
    stream = token_stream(tok, [t for t in texts if t.strip()])
    windows: list[Window] = sliding_windows(
        stream, spec["window"], spec["stride"], spec["max_windows"]
    )
    return [Example(w.ids, w.score_from) for w in windows]


def sst2_examples(tok: PreTrainedTokenizerBase, spec: Mapping[str, Any]) -> list[Example]:
    """The first `n` examples of the split, prompted (no cycling: n beyond the split is an error).

    With `shots` > 0, that many labelled reviews of `shots_split` (seeded per example, in the
    same template, each followed by its label) come first: the prompt then holds text that
    old_only damage reaches while the review itself is read as in the plain prompt. With
    `filler_tokens` > 0, that many tokens of repeated `filler_text` follow the review, so the
    words that decide the label sit far back in the cache (`Review: {x}{filler}\nSentiment:`).
    """
    data = load_dataset(spec["dataset"], config=spec["dataset_config"], local_hint=LOCAL_HINT)
    rows = data[spec["split"]]
    if spec["n"] > len(rows):
        raise ConfigError(
            f"eval.sst2_prompted.n {spec['n']} exceeds the {len(rows)} rows of {spec['split']!r}"
        )
    demos = data[spec["shots_split"]] if spec["shots"] else None
    if demos is not None and spec["shots_split"] == spec["split"]:
        raise ConfigError("eval.sst2_prompted.shots_split must differ from the scored split")
    if demos is not None and spec["shots"] > len(demos):
        raise ConfigError(
            f"eval.sst2_prompted.shots {spec['shots']} exceeds the {len(demos)} rows of "
            f"{spec['shots_split']!r}"
        )
    filler = _filler(tok, spec["filler_text"], spec["filler_tokens"])
    out = []
    for i, row in enumerate(rows.select(range(spec["n"]))):
        prompt = tok(SST2_TEMPLATE.format(x=row["sentence"]), return_tensors="pt").input_ids[0]
        if filler.numel():
            head, cue = _split_at_label_cue(tok, prompt)
            prompt = torch.cat([head, filler, cue])
        if demos is not None:
            prompt = torch.cat([_shots(tok, demos, spec["shots"], i), prompt])
        out.append(Example(prompt[None], label=int(row["label"])))
    return out


def _shots(tok: PreTrainedTokenizerBase, demos: Any, k: int, i: int) -> torch.Tensor:
    """Example i's `k` demonstrations: seeded rows of `demos`, each `Review: x\nSentiment: y\n`."""
    pick = torch.randperm(len(demos), generator=generator("sst2_shots", i))[:k].tolist()
    text = "".join(
        SST2_TEMPLATE.format(x=demos[j]["sentence"]) + LABELS[int(demos[j]["label"])] + "\n"
        for j in pick
    )
    return torch.tensor(tok(text, verbose=False).input_ids, dtype=torch.long)


def _filler(tok: PreTrainedTokenizerBase, text: str, n: int) -> torch.Tensor:
    """The first `n` tokens of `text` repeated (empty for n = 0)."""
    ids = torch.tensor(tok(text * n, verbose=False).input_ids[:n], dtype=torch.long)
    if ids.numel() < n:
        raise ConfigError(f"eval.sst2_prompted.filler_text {text!r} gives no tokens to fill with")
    return ids


def _split_at_label_cue(
    tok: PreTrainedTokenizerBase, prompt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt before and from its `\nSentiment:` cue (the tokens the template ends with)."""
    cue = tok("\nSentiment:", return_tensors="pt").input_ids[0]
    if prompt.numel() <= cue.numel() or not torch.equal(prompt[-cue.numel() :], cue):
        raise ConfigError("the tokenizer splits `\nSentiment:` differently inside the prompt")
    return prompt[: -cue.numel()], prompt[-cue.numel() :]


def needle_examples(
    tok: PreTrainedTokenizerBase, spec: Mapping[str, Any], n_positions: int, ppl_spec: Mapping
) -> list[Example]:
    """`n` needle prompts of at most max_tokens (default n_positions-32) tokens with their answers.

    From a needle data set's test split (first `n` that fit), or, with `dataset: null`, built from
    seeded filler: spans of the PPL split with `NEEDLE: passkey = <5 digits>.` at `depth`.
    """
    limit = spec["max_tokens"] or n_positions - 32
    if spec["dataset"] is None:
        return _filler_needles(tok, spec, limit, ppl_spec)
    data = load_dataset(spec["dataset"], local_hint=LOCAL_HINT)["test"]
    out = []
    for row in data:
        ids = tok(row["text"], return_tensors="pt").input_ids
        answer = " " + row["answer"]
        if ids.shape[1] + len(tok(answer).input_ids) <= limit:
            out.append(Example(ids, answer=answer))
        if len(out) == spec["n"]:
            return out
    raise ConfigError(
        f"only {len(out)} needle prompts of {spec['dataset']} fit {limit} tokens; "
        f"eval.needle_long_context.n is {spec['n']}"
    )


def _filler_needles(
    tok: PreTrainedTokenizerBase, spec: Mapping[str, Any], limit: int, ppl_spec: Mapping
) -> list[Example]:
    texts = split_texts(
        ppl_spec["dataset"], ppl_spec["dataset_config"], ppl_spec["split"], ppl_spec["text_field"]
    )
    stream = token_stream(tok, [t for t in texts if t.strip()])
    out = []
    for i in range(spec["n"]):
        g = generator("needle", i)
        value = f"{int(torch.randint(10000, 100000, (), generator=g))}"
        needle = tok(f"\nNEEDLE: passkey = {value}.\n", return_tensors="pt").input_ids[0]
        question = tok("\nQuestion: What is the passkey?\npasskey =", return_tensors="pt")
        answer = " " + value
        room = limit - needle.numel() - question.input_ids.shape[1] - len(tok(answer).input_ids)
        if room < 2 or stream.numel() < room:
            raise ConfigError(f"eval.needle_long_context.max_tokens {limit} leaves no filler room")
        start = int(torch.randint(stream.numel() - room + 1, (), generator=g))
        filler = stream[start : start + room]
        at = int(spec["depth"] * room)
        ids = torch.cat([filler[:at], needle, filler[at:], question.input_ids[0]])[None]
        out.append(Example(ids, answer=answer))
    return out
