"""Training rows for the zoo language models (a curriculum of document mixtures) and the training loop."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerFast, get_cosine_schedule_with_warmup

from labkit.zoo.world_lexicon import NEEDLE_KEYS, NEEDLE_VALUES
from labkit.zoo.world_needle import NEEDLE_LINE, NEEDLE_QUERY

# Fixed so the float reduction order, hence the weights' bytes, is the same on every machine. One
# thread: these tiny matmuls gain little from a second one and slow ~10x when other work shares the cores.
TORCH_THREADS = 1


@contextmanager
def build_threads() -> Iterator[None]:
    """Run a model build on `TORCH_THREADS` threads with its own torch RNG; restore both after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
        with torch.random.fork_rng():
            yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Doc:
    """Token ids of a document (ending in EOS) or of a training row, and the loss weight of each id."""

    ids: np.ndarray
    weights: np.ndarray


# A source draws one document of at most `room` tokens, or None if it has none that short.
Source = Callable[[np.random.Generator, int], Doc | None]


@dataclass(frozen=True)
class Stage:
    """`steps` optimizer steps on `batch` rows of `seq_len` tokens.

    A row opens with one `lead` document (source, probability; none with the remaining probability),
    then holds `body` documents (source, token share) and ends in story text.
    """

    steps: int
    seq_len: int
    batch: int
    lead: tuple[tuple[str, float], ...]
    body: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Schedule:
    """Curriculum stages and optimizer settings of one build."""

    stages: tuple[Stage, ...]
    lr: float
    warmup: int
    weight_decay: float = 0.01
    clip: float = 1.0

    @property
    def steps(self) -> int:
        """Total optimizer steps over all stages."""
        return sum(s.steps for s in self.stages)


def _ids(tok: PreTrainedTokenizerFast, text: str) -> list[int]:
    return tok(text, add_special_tokens=False).input_ids


def encode_doc(
    tok: PreTrainedTokenizerFast, prompt: str, answer: str = "", answer_weight: float = 1.0
) -> Doc:
    """`prompt + answer` and EOS as a document whose answer tokens weigh `answer_weight`."""
    p, a = _ids(tok, prompt), _ids(tok, answer) if answer else []
    weights = np.ones(len(p) + len(a) + 1, dtype=np.float32)
    weights[len(p) : len(p) + len(a)] = answer_weight
    return Doc(np.array([*p, *a, tok.eos_token_id], dtype=np.int64), weights)


def pool(docs: Sequence[Doc]) -> Source:
    """A source drawing uniformly among the fixed `docs` that fit the room."""
    ordered = sorted(docs, key=lambda d: len(d.ids))
    lengths = [len(d.ids) for d in ordered]

    def draw(rng: np.random.Generator, room: int) -> Doc | None:
        n = bisect.bisect_right(lengths, room)
        return ordered[rng.integers(n)] if n else None

    return draw


def fact_source(
    tok: PreTrainedTokenizerFast, filler: np.ndarray, min_len: int, answer_weight: float
) -> Source:
    """Fresh needle-format documents of `min_len` up to the room: story text with one fact line at a
    random depth, then the needle query and its answer (weighted)."""
    # Needle prompts are one document, so the fact's filler carries no document breaks.
    text = filler[filler != tok.eos_token_id]
    queries = [_ids(tok, NEEDLE_QUERY.format(key=k)) for k in NEEDLE_KEYS]
    values = [_ids(tok, f" {v}.") for v in NEEDLE_VALUES]
    lines = [
        [_ids(tok, "\n" + NEEDLE_LINE.format(key=k, value=v) + "\n") for v in NEEDLE_VALUES]
        for k in NEEDLE_KEYS
    ]

    def draw(rng: np.random.Generator, room: int) -> Doc | None:
        k, v = int(rng.integers(len(NEEDLE_KEYS))), int(rng.integers(len(NEEDLE_VALUES)))
        fixed = len(lines[k][v]) + len(queries[k]) + len(values[v]) + 1
        shortest = max(min_len, fixed)
        if room < shortest:
            return None
        n_fill = int(rng.integers(shortest, room + 1)) - fixed
        start = int(rng.integers(len(text) - n_fill))
        cut = start + int(rng.integers(n_fill + 1))
        ids = [
            *text[start:cut],
            *lines[k][v],
            *text[cut : start + n_fill],
            *queries[k],
            *values[v],
        ]
        weights = np.ones(len(ids) + 1, dtype=np.float32)
        weights[len(ids) - len(values[v])] = answer_weight
        return Doc(np.array([*ids, tok.eos_token_id], dtype=np.int64), weights)

    return draw


class Mixture:
    """Builds training rows from named sources; counts the tokens each source contributed."""

    def __init__(self, sources: dict[str, Source], filler: np.ndarray, seed: int):
        self.sources = sources
        self.filler = filler
        self.rng = np.random.default_rng(seed)
        # Body shares are token shares; drawing documents needs them divided by typical lengths.
        self.mean_len = {
            name: float(np.mean([len(src(self.rng, 256).ids) for _ in range(64)]))
            for name, src in sources.items()
        }
        self.tokens = dict.fromkeys([*sources, "filler"], 0)

    def _add(self, docs: list[Doc], name: str, doc: Doc) -> int:
        docs.append(doc)
        self.tokens[name] += len(doc.ids)
        return len(doc.ids)

    def row(self, stage: Stage) -> Doc:
        """One row of `seq_len + 1` tokens: the lead document at position 0, body documents, story text."""
        full = room = stage.seq_len + 1
        docs = []
        lead_p = [p for _, p in stage.lead]
        pick = self.rng.choice(len(lead_p) + 1, p=[*lead_p, max(0.0, 1.0 - sum(lead_p))])
        if pick < len(lead_p):
            name = stage.lead[pick][0]
            if (doc := self.sources[name](self.rng, room)) is not None:
                room -= self._add(docs, name, doc)
        names = [n for n, _ in stage.body]
        body_p = np.array([share / self.mean_len[n] for n, share in stage.body])
        while True:
            # Drawn as if the row were empty, so short documents are not favoured at a row's end.
            name = names[self.rng.choice(len(names), p=body_p / body_p.sum())]
            doc = self.sources[name](self.rng, full)
            if doc is None or len(doc.ids) > room:
                break
            room -= self._add(docs, name, doc)
        start = int(self.rng.integers(len(self.filler) - room))
        docs.append(Doc(self.filler[start : start + room], np.ones(room, dtype=np.float32)))
        self.tokens["filler"] += room
        return Doc(np.concatenate([d.ids for d in docs]), np.concatenate([d.weights for d in docs]))

    def batch(self, stage: Stage) -> tuple[torch.Tensor, torch.Tensor]:
        """Ids and weights of `stage.batch` rows, each [batch, seq_len + 1]."""
        rows = [self.row(stage) for _ in range(stage.batch)]
        return (
            torch.from_numpy(np.stack([r.ids for r in rows])),
            torch.from_numpy(np.stack([r.weights for r in rows])),
        )


def weighted_loss(model: PreTrainedModel, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy with each target's loss scaled by its weight."""
    x = ids[:, :-1]
    # Rows hold EOS (= the pad id) between documents but no padding: an all-ones mask says so, which
    # leaves the causal attention as it is and keeps transformers from warning about padding.
    logits = model(input_ids=x, attention_mask=torch.ones_like(x)).logits
    nll = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
    w = weights[:, 1:].flatten()
    return (nll * w).sum() / w.sum()


def train(
    model: PreTrainedModel,
    mixture: Mixture,
    schedule: Schedule,
    progress: Callable[[int, int, str], None],
) -> list[float]:
    """Train `model` through the schedule's stages with AdamW and warmup + cosine decay; return step losses."""
    model.train()
    opt = torch.optim.AdamW(
        model.parameters(), lr=schedule.lr, betas=(0.9, 0.95), weight_decay=schedule.weight_decay
    )
    lr_schedule = get_cosine_schedule_with_warmup(opt, schedule.warmup, schedule.steps)
    losses: list[float] = []
    for stage in schedule.stages:
        for _ in range(stage.steps):
            loss = weighted_loss(model, *mixture.batch(stage))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), schedule.clip)
            opt.step()
            lr_schedule.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            recent = sum(losses[-20:]) / len(losses[-20:])
            progress(len(losses), schedule.steps, f"loss {recent:.3f} at {stage.seq_len} tokens")
    model.eval()
    return losses
