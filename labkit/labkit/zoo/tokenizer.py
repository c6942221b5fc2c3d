"""Word-level tokenizer of the zoo's text world: one token per world token, saved as a HF fast tokenizer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from labkit.zoo.world import TOKEN_PATTERN, tokenize

EOS = "<|endoftext|>"
UNK = "<unk>"
# Decoding joins tokens with spaces, then glues punctuation, quotes and line breaks to their neighbours.
# World quotes close right after "," or "?"; parking those closing quotes on a sentinel character first lets
# every remaining quote glue to the word after it.
_PARK = "\x00"
_GLUE = [
    *((f'{p} "', p + _PARK) for p in ",?"),
    ('" ', '"'),
    (_PARK, '"'),
    *((" " + p, p) for p in ".,!?:;)'\n"),
    ("( ", "("),
    ("' ", "'"),
    ("\n ", "\n"),
]


def build_tokenizer(texts: Iterable[str], max_length: int) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is every world token in `texts`, most frequent first (ties by spelling)."""
    counts = Counter(token for text in texts for token in tokenize(text))
    # Sorting ourselves (not a trainer's hash-map order) keeps token ids identical on every run.
    words = sorted(counts, key=lambda w: (-counts[w], w))
    vocab = {word: i for i, word in enumerate([EOS, UNK, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="removed", invert=True)
    tok.decoder = decoders.Sequence(
        [decoders.WordPiece(prefix="##", cleanup=False), decoders.Fuse()]
        + [decoders.Replace(a, b) for a, b in _GLUE]
    )
    tok.add_special_tokens([EOS, UNK])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=UNK,
        model_max_length=max_length,
    )
