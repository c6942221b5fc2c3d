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

# Tests register fake items here (monkeypatch.setitem); everything else reads it through get_item.
CATALOG: dict[str, ZooItem] = {item.name: item for item in _ITEMS}


def known_names(kind: str | None = None) -> list[str]:
    """All `local:` names, optionally only models or only datasets."""
    return [item.zoo_name for item in CATALOG.values() if kind in (None, item.kind)]


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
