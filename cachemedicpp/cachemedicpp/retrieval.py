"""The retrieval-preserving term: needle documents of a training split mixed into self-distillation.

KD on average next-token KL barely weighs a token copied from far back in the cache. On a
`loss.retrieval.prob` share of steps the prefix is instead a needle document (filler, a
`key = value` line, more filler, the question) followed by its answer, and KD is taken on the
answer tokens only, weighted by `loss.retrieval.weight`: R_phi must keep the far-back value
readable under damage. Documents come from the data set's training split; eval uses its test split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from cachemedicpp.data import LOCAL_HINT
from labkit.determinism import generator
from labkit.errors import ConfigError
from labkit.zoo import load_dataset


@dataclass(frozen=True)
class RetrievalDoc:
    """One training document: prompt and answer as one [1, n] sequence, the answer's last tokens."""

    ids: torch.Tensor
    answer_tokens: int


class RetrievalDocs:
    """The needle documents a run may draw, and which step draws which (a function of seed, step)."""

    def __init__(
        self, tok: PreTrainedTokenizerBase, spec: Mapping[str, Any], seed: int, max_len: int
    ):
        self.prob, self.weight, self.seed = spec["prob"], spec["weight"], seed
        data = load_dataset(spec["dataset"], local_hint=LOCAL_HINT)
        if spec["split"] not in data:
            raise ConfigError(
                f"loss.retrieval.dataset {spec['dataset']!r} has no split {spec['split']!r}"
            )
        self.docs = []
        for row in data[spec["split"]]:
            prompt = tok(row["text"]).input_ids
            answer = tok(" " + row["answer"]).input_ids
            if len(prompt) + len(answer) <= max_len:
                ids = torch.tensor(prompt + answer, dtype=torch.long)[None]
                self.docs.append(RetrievalDoc(ids, len(answer)))
        if not self.docs:
            raise ConfigError(
                f"no {spec['dataset']} {spec['split']} document fits {max_len} tokens"
            )

    def draw(self, step: int) -> RetrievalDoc | None:
        """The document step `step` trains on, or None for an ordinary step."""
        g = generator(self.seed, "retrieval", step)
        if torch.rand((), generator=g).item() >= self.prob:
            return None
        return self.docs[int(torch.randint(len(self.docs), (), generator=g))]
