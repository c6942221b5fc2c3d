"""The zoo catalogue: every `local:` item, what it stands in for, its sizes, seed, version and builder."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from labkit.errors import ConfigError

PREFIX = "local:"


@dataclass(frozen=True)
class ZooItem:
    """One zoo entry; `builder` is a lazy "module:function" reference so listing imports nothing heavy."""

    name: str
    kind: Literal["model", "dataset"]
    stands_in_for: str
    description: str
    builder: str
    # Shared builders (one function for several items) take the item name as their first argument.
    builder_takes_name: bool = True
    sizes: tuple[str, ...] = ("default", "test")
    default_seed: int = 0
    # Part of every cache key: bump it whenever the generator's output changes.
    version: str = "1"
    options: tuple[str, ...] = ()
    # Hub ids this item replicates (the first is the canonical one); rehearsals resolve them to it.
    replica_of: tuple[str, ...] = ()
    # The builder writes files into the build directory (as model builders do) instead of returning
    # a DatasetDict to save: replica data sets are laid out as their hub repositories are.
    writes_files: bool = False

    @property
    def zoo_name(self) -> str:
        """The name configs use, e.g. `local:tiny-gpt2`."""
        return PREFIX + self.name

    def load_builder(self) -> Callable[..., Any]:
        """Import and return the builder function."""
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module), function)


_ITEMS = (
    ZooItem(
        name="tiny-gpt2",
        kind="model",
        version="3",
        stands_in_for="gpt2 / gpt2-medium",
        description="GPT2LMHeadModel trained on local:stories and the task formats, with its own tokenizer",
        builder="labkit.zoo.models:build_model",
    ),
    ZooItem(
        name="tiny-llama",
        kind="model",
        version="2",
        stands_in_for="Qwen2.5 / Llama-style instruct models",
        description="LlamaForCausalLM (gated MLP) trained on local:stories and the task formats",
        builder="labkit.zoo.models:build_model",
    ),
    ZooItem(
        name="stories",
        kind="dataset",
        stands_in_for="Wikitext-2/103, C4, TinyStories",
        description="plain-English stories (`text`) whose early facts are referred to later",
        builder="labkit.zoo.world:build_dataset",
    ),
    ZooItem(
        name="sentiment",
        kind="dataset",
        stands_in_for="SST-2 (glue/sst2)",
        description="`sentence`, `label` 0/1, sentiment carried by the words",
        builder="labkit.zoo.world:build_dataset",
    ),
    ZooItem(
        name="needle",
        kind="dataset",
        stands_in_for="needle-in-a-haystack",
        description="long filler context, `NEEDLE: <key> = <value>.` early, a question at the end",
        builder="labkit.zoo.world:build_dataset",
        options=("lengths", "n_per_length", "depth"),
    ),
    ZooItem(
        name="mcq",
        kind="dataset",
        stands_in_for="ARC (allenai/ai2_arc)",
        description="ARC-shaped multiple choice (`question`, `choices` {text,label}, `answerKey`)",
        builder="labkit.zoo.world:build_dataset",
    ),
    ZooItem(
        name="shapes10",
        kind="dataset",
        stands_in_for="CIFAR-10",
        description="32x32x3 procedural images (`img`, `label`), 10 classes = 5 shapes x 2 colour families",
        builder="labkit.zoo.shapes:build_shapes10",
        builder_takes_name=False,
        sizes=("default", "small", "test"),
    ),
)


def _replica(
    kind: Literal["model", "dataset"],
    name: str,
    hub_ids: tuple[str, ...],
    what: str,
    version: str = "1",
) -> ZooItem:
    model = kind == "model"
    return ZooItem(
        name=name,
        kind=kind,
        stands_in_for=hub_ids[0],
        description=f"REPLICA (rehearsal only): {what}",
        builder=f"labkit.zoo.replica_{'models' if model else 'data'}:build_replica_{kind}",
        sizes=("default", "test") if model else ("default",),
        replica_of=hub_ids,
        writes_files=not model,
        version=version,
    )


_GPT2 = "GPT2LMHeadModel, width 64, {} layers, 1024 positions, byte-level BPE GPT2Tokenizer"
_QWEN = "Qwen2ForCausalLM (GQA 4/2 heads, gated MLP, RoPE), width 64, {} layers, {} positions, bf16"
_REPLICAS = (
    _replica("model", "replica-gpt2", ("gpt2", "openai-community/gpt2"), _GPT2.format(12)),
    _replica(
        "model",
        "replica-gpt2-medium",
        ("gpt2-medium", "openai-community/gpt2-medium"),
        _GPT2.format(24),
    ),
    _replica(
        "model",
        "replica-gpt2-large",
        ("gpt2-large", "openai-community/gpt2-large"),
        _GPT2.format(36),
    ),
    _replica(
        "model", "replica-qwen2.5-0.5b", ("Qwen/Qwen2.5-0.5B",), _QWEN.format(24, "32k") + ", tied"
    ),
    _replica("model", "replica-qwen2.5-7b", ("Qwen/Qwen2.5-7B",), _QWEN.format(28, "128k")),
    _replica(
        "model",
        "replica-qwen2.5-7b-instruct",
        ("Qwen/Qwen2.5-7B-Instruct",),
        _QWEN.format(28, "32k") + ", ChatML template, EOS <|im_end|>",
    ),
    _replica(
        "dataset",
        "replica-wikitext",
        ("Salesforce/wikitext", "wikitext"),
        "wikitext-{2,103}-{raw-v1,v1} rows: blank lines, ` = Heading = `, `<unk>` in non-raw",
        # v3: a validation split long enough for AvalancheLLM's paper-size window pool
        version="3",
    ),
    _replica(
        "dataset",
        "replica-glue",
        ("nyu-mll/glue", "glue"),
        "config sst2: `sentence`, `label` (-1 on test), `idx`",
    ),
    _replica(
        "dataset",
        "replica-ai2_arc",
        ("allenai/ai2_arc", "ai2_arc"),
        "ARC-Challenge/ARC-Easy: `choices{text,label}` (some 1-4, some 3 choices), `answerKey`",
    ),
    _replica(
        "dataset",
        "replica-c4",
        ("allenai/c4", "c4"),
        "config en: `text`, `timestamp`, `url` in json.gz shards",
    ),
    _replica(
        "dataset",
        "replica-tinystories",
        ("roneneldan/TinyStories",),
        "`text`, splits train/validation",
    ),
    _replica(
        "dataset",
        "replica-cifar10",
        ("uoft-cs/cifar10", "cifar10"),
        "config plain_text: `img` 32x32 PNG, `label` with CIFAR-10's class names (shapes10 images)",
    ),
)

# Tests register fake items here (monkeypatch.setitem); everything else reads it through get_item.
CATALOG: dict[str, ZooItem] = {item.name: item for item in (*_ITEMS, *_REPLICAS)}


def known_names(kind: str | None = None) -> list[str]:
    """All `local:` names of the zoo proper (no replicas), optionally only models or only datasets."""
    return [
        item.zoo_name
        for item in CATALOG.values()
        if kind in (None, item.kind) and not item.replica_of
    ]


def replica_for(hub_id: str, kind: str) -> ZooItem | None:
    """The replica item of hub id `hub_id` (a model or a dataset), or None if there is none."""
    for item in CATALOG.values():
        if item.kind == kind and hub_id in item.replica_of:
            return item
    return None


def replicas(kind: str | None = None) -> list[ZooItem]:
    """Every replica item, optionally only models or only datasets."""
    return [item for item in CATALOG.values() if item.replica_of and kind in (None, item.kind)]


def as_zoo_name(name: str) -> str:
    """`name` with the `local:` prefix added if it lacks one (for the CLI and test fixtures)."""
    return name if is_zoo_name(name) else PREFIX + name


def is_zoo_name(name: str) -> bool:
    """True if `name` is spelled as a zoo name (`local:...`)."""
    return name.startswith(PREFIX)


def parse_name(name: str, size: str | None = None) -> tuple[ZooItem, str]:
    """Split `local:<item>[@<size>]` into its catalogue entry and a checked size."""
    if not is_zoo_name(name):
        raise ConfigError(f"{name!r} is not a zoo name; zoo names start with {PREFIX!r}")
    item_name, _, at_size = name[len(PREFIX) :].partition("@")
    item = CATALOG.get(item_name)
    if item is None:
        raise ConfigError(f"unknown zoo item {name!r}; known: {', '.join(known_names())}")
    if at_size and size is not None and at_size != size:
        raise ConfigError(f"{name!r} names size {at_size!r} but size={size!r} was also given")
    chosen = at_size or size or "default"
    if chosen not in item.sizes:
        raise ConfigError(
            f"unknown size {chosen!r} for {item.zoo_name}; known sizes: {', '.join(item.sizes)}"
        )
    return item, chosen
