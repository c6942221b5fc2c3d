"""Zoo language models at their `test` size: build, save, load, evaluate, and rebuild bit-identically."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel, LlamaForCausalLM

from labkit.errors import ConfigError
from labkit.zoo import quality
from labkit.zoo.models import build_model, model_config
from labkit.zoo.tokenizer import EOS, UNK, build_tokenizer
from labkit.zoo.training import Mixture, Stage, encode_doc, fact_source, pool
from labkit.zoo.world import build_dataset, format_mcq_text, format_needle, tokenize
from labkit.zoo.world_needle import NEEDLE_QUERY

CLASSES = {"tiny-gpt2": GPT2LMHeadModel, "tiny-llama": LlamaForCausalLM}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _quiet(step: int, total: int, message: str) -> None:
    assert 0 <= step <= total


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """Each model built once at the test size with seed 0: its directory and card."""
    out = {}
    for name in CLASSES:
        path = tmp_path_factory.mktemp(name)
        out[name] = (path, build_model(name, "test", 0, path, _quiet))
    return out


@pytest.fixture(scope="module")
def stories() -> list[str]:
    return list(build_dataset("stories", "test", 0)["train"]["text"])


@pytest.fixture(scope="module")
def needles() -> list[str]:
    return ["".join(format_needle(r)) for r in build_dataset("needle", "test", 0)["train"]]


@pytest.mark.parametrize("name", list(CLASSES))
def test_build_saves_a_model_the_auto_classes_load(built, name: str) -> None:
    path, _ = built[name]
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert type(model) is CLASSES[name]
    assert model.config.vocab_size == len(tok)
    assert tok.eos_token == EOS and tok.unk_token == UNK and tok.pad_token_id == tok.eos_token_id
    # CacheMedic intercepts GPT-2's eager attention, which the upcast-and-reorder variant bypasses.
    assert not getattr(model.config, "reorder_and_upcast_attn", False)


@pytest.mark.parametrize("name", list(CLASSES))
def test_default_shape_has_256_positions_and_32_wide_heads(stories: list[str], name: str) -> None:
    config = model_config(name, "default", build_tokenizer(stories, 256))
    assert config.max_position_embeddings == 256
    assert config.hidden_size // config.num_attention_heads == 32
    assert config.num_hidden_layers == 3
    if name == "tiny-llama":
        assert config.hidden_act == "silu" and config.intermediate_size == 344


@pytest.mark.parametrize("name", list(CLASSES))
def test_eager_attention_gives_the_sdpa_logits(built, name: str) -> None:
    path, _ = built[name]
    tok = AutoTokenizer.from_pretrained(path)
    x = torch.tensor([tok("Mia had a red cup.\nShe put the cup in the garden.").input_ids])
    logits = {
        impl: AutoModelForCausalLM.from_pretrained(path, attn_implementation=impl)(
            input_ids=x
        ).logits
        for impl in ("eager", "sdpa")
    }
    torch.testing.assert_close(logits["eager"], logits["sdpa"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", list(CLASSES))
def test_card_reports_every_quality_number(built, name: str) -> None:
    _, card = built[name]
    q = card["quality"]
    assert q["attn_implementation"] == "eager"
    # Even the seconds-long test build must have learned more than word frequencies.
    assert 1.0 < q["perplexity"]["model"] < q["perplexity"]["unigram"]
    assert set(q["needle_recall"]["by_length"]) == {"32", "64"}
    for share in [
        *q["needle_recall"]["by_length"].values(),
        q["sentiment"]["accuracy"],
        q["mcq"]["accuracy"],
        q["mcq"]["accuracy_norm"],
        q["mcq"]["letter_accuracy"],
    ]:
        assert 0.0 <= share <= 1.0
    low, high = q["mcq"]["ci95"]
    assert low <= q["mcq"]["accuracy"] <= high
    assert q["mcq"]["chance"] == 0.25 and q["sentiment"]["chance"] == 0.5
    assert card["architecture"]["class"] == CLASSES[name].__name__
    assert sum(card["training"]["tokens"].values()) == sum(
        s["steps"] * s["batch"] * (s["seq_len"] + 1) for s in card["training"]["schedule"]["stages"]
    )


@pytest.mark.parametrize("name", list(CLASSES))
def test_same_seed_rebuilds_the_same_bytes(built, tmp_path: Path, name: str) -> None:
    path, card = built[name]
    again = build_model(name, "test", 0, tmp_path, _quiet)
    for file in ("model.safetensors", "tokenizer.json"):
        assert _sha(tmp_path / file) == _sha(path / file)
    assert again["quality"]["perplexity"] == card["quality"]["perplexity"]


def test_a_new_seed_gives_new_weights(built, tmp_path: Path) -> None:
    path, _ = built["tiny-gpt2"]
    build_model("tiny-gpt2", "test", 1, tmp_path, _quiet)
    assert _sha(tmp_path / "tokenizer.json") == _sha(path / "tokenizer.json")
    assert _sha(tmp_path / "model.safetensors") != _sha(path / "model.safetensors")


@pytest.mark.parametrize(("name", "size"), [("tiny-bert", "test"), ("tiny-gpt2", "huge")])
def test_unknown_name_or_size_fails_before_work(tmp_path: Path, name: str, size: str) -> None:
    with pytest.raises(ConfigError, match="known"):
        build_model(name, size, 0, tmp_path, _quiet)
    assert not any(tmp_path.iterdir())


def test_tokenizer_splits_like_the_world_and_decodes_back(
    stories: list[str], needles: list[str]
) -> None:
    tok = build_tokenizer([*stories, *needles], 256)
    assert "\n" in tok.get_vocab()
    for text in [*stories, *needles]:
        ids = tok(text).input_ids
        assert tok.convert_ids_to_tokens(ids) == tokenize(text)
        assert tok.decode(ids) == text
    assert tok("Mia saw a zebra").input_ids[-1] == tok.unk_token_id
    assert build_tokenizer([*stories, *needles], 256).get_vocab() == tok.get_vocab()


def test_unigram_perplexity_is_the_vocabulary_size_for_uniform_counts() -> None:
    ids = np.arange(10).repeat(3)
    assert quality.unigram_perplexity(ids, ids, 10) == pytest.approx(10.0)
    assert quality.unigram_perplexity(ids, np.zeros(4, dtype=int), 20) == pytest.approx(50 / 4)


def test_batched_continuations_match_one_at_a_time(built) -> None:
    path, _ = built["tiny-llama"]
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(path)
    prompt, answers = "Review: The cake was sweet.\nSentiment:", [" positive", " the red cup", " A"]
    batched = quality.continuation_logprobs(model, tok, prompt, answers)
    for answer, score in zip(answers, batched, strict=True):
        p, a = tok(prompt).input_ids, tok(answer).input_ids
        logp = torch.log_softmax(model(input_ids=torch.tensor([p + a])).logits[0], -1)
        assert score == pytest.approx(
            sum(logp[len(p) - 1 + j, t].item() for j, t in enumerate(a)), abs=1e-4
        )


def test_mcq_scores_follow_the_choice_text_log_probs(built) -> None:
    path, _ = built["tiny-gpt2"]
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(path)
    rows = list(build_dataset("mcq", "test", 0)["test"])
    # Keying each row to the choice text the model scores highest (or lowest) must give accuracy 1 (or 0),
    # whatever the order of the lettered choices.
    for pick, expected in ((np.argmax, 1.0), (np.argmin, 0.0)):
        keyed = []
        for row in rows:
            prompt = format_mcq_text(row)[0]
            texts = [f" {t}" for t in row["choices"]["text"]]
            best = int(pick(quality.continuation_logprobs(model, tok, prompt, texts)))
            keyed.append({**row, "answerKey": row["choices"]["label"][best]})
        scores = quality.mcq_scores(model, tok, keyed)
        assert scores["accuracy"] == expected
        low, high = scores["ci95"]
        assert low <= expected <= high and high - low < 0.2
        assert 0.0 <= scores["letter_accuracy"] <= 1.0


def test_rows_open_with_the_lead_document_and_weigh_answers(
    stories: list[str], needles: list[str]
) -> None:
    tok = build_tokenizer([*stories, *needles], 256)
    filler = quality.token_stream(tok, stories)
    facts = fact_source(tok, filler, 20, 7.0)
    mixture = Mixture(
        {"facts": facts, "stories": pool([encode_doc(tok, t) for t in stories])}, filler, 3
    )
    stage = Stage(1, 64, 4, lead=(("facts", 1.0),), body=(("stories", 1.0),))
    ids, weights = mixture.batch(stage)
    assert ids.shape == weights.shape == (4, 65)
    for row, w in zip(ids.tolist(), weights.tolist(), strict=True):
        text = tok.decode(row[: row.index(tok.eos_token_id)])
        assert "NEEDLE:" in text
        key = text.split("NEEDLE: ")[1].split(" =")[0]
        value = text.split("NEEDLE: ")[1].split("= ")[1].split(".")[0]
        assert text.endswith(NEEDLE_QUERY.format(key=key) + f" {value}.")
        answer_at = [i for i, x in enumerate(w) if x == 7.0]
        assert len(answer_at) == 1 and tok.convert_ids_to_tokens(row[answer_at[0]]) == value
        assert set(w) <= {1.0, 7.0}
    assert sum(mixture.tokens.values()) == 4 * 65
