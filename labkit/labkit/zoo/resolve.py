"""Resolve model and data set names (zoo `local:` names, local paths, hub ids) to loadable things."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError, MissingInputError
from labkit.zoo.build import build_local
from labkit.zoo.catalog import ZooItem, is_zoo_name, known_names, parse_name
from labkit.zoo.hub import dataset_builder, fetch_model

if TYPE_CHECKING:
    from datasets import DatasetDict

# `datasets` packaged loaders for single local files, by suffix.
FILE_LOADERS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
    ".arrow": "arrow",
}


def _zoo_hint(kind: str) -> str:
    return f"without hub access use a zoo {kind} instead: {', '.join(known_names(kind))}"


def _zoo_item(name: str, size: str | None, kind: str) -> tuple[ZooItem, str]:
    item, size = parse_name(name, size)
    if item.kind != kind:
        raise ConfigError(
            f"{item.zoo_name} is a {item.kind}, not a {kind}; zoo {kind}s: {', '.join(known_names(kind))}"
        )
    return item, size


def _local_path(name: str) -> Path | None:
    """The existing path `name` names; None for a hub id; MissingInputError for a missing path."""
    path = Path(name).expanduser()
    if path.exists():
        return path.resolve()
    if name.startswith(("/", ".", "~")) or path.suffix in FILE_LOADERS:
        raise MissingInputError(f"no such file or directory: {name}")
    return None


def _refuse_zoo_arguments(name: str, **given: Any) -> None:
    named = sorted(key for key, value in given.items() if value not in (None, {}))
    if named:
        raise ConfigError(f"{', '.join(named)} apply only to local: zoo names, not to {name!r}")


def resolve_model(
    name: str, *, size: str | None = None, seed: int | None = None, local_hint: str | None = None
) -> Path:
    """Directory that `from_pretrained` loads for a zoo name, a local directory, or a hub id."""
    if is_zoo_name(name):
        item, size = _zoo_item(name, size, "model")
        return build_local(item, size, item.default_seed if seed is None else seed, {})
    _refuse_zoo_arguments(name, size=size, seed=seed)
    path = _local_path(name)
    if path is None:
        return fetch_model(name, local_hint or _zoo_hint("model"))
    if not (path / "config.json").is_file():
        raise MissingInputError(f"{name} is not a saved Hugging Face model (no config.json in it)")
    return path


def resolve_dataset(
    name: str,
    *,
    size: str | None = None,
    seed: int | None = None,
    config: str | None = None,
    local_hint: str | None = None,
    **options: Any,
) -> Path:
    """On-disk path of a data set: a built zoo item, a local file/directory, or a prepared hub data set."""
    if is_zoo_name(name):
        if config is not None:
            raise ConfigError(f"config={config!r} applies to hub ids, not to zoo name {name!r}")
        item, size = _zoo_item(name, size, "dataset")
        return build_local(item, size, item.default_seed if seed is None else seed, options)
    _refuse_zoo_arguments(name, size=size, seed=seed, options=options)
    path = _local_path(name)
    if path is not None:
        return path
    return Path(dataset_builder(name, config, local_hint or _zoo_hint("dataset")).cache_dir)


def _load_local(path: Path, config: str | None) -> DatasetDict:
    import datasets

    saved = (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()
    if path.is_dir() and not saved:
        return datasets.load_dataset(str(path), config)  # raw files; a README may define configs
    if config is not None:
        raise ConfigError(
            f"config={config!r} applies to hub ids and raw data directories, not {path}"
        )
    if saved:
        data = datasets.load_from_disk(str(path))
        return data if isinstance(data, datasets.DatasetDict) else datasets.DatasetDict(train=data)
    loader = FILE_LOADERS.get(path.suffix)
    if loader is None:
        raise ConfigError(
            f"cannot load {path}: unknown data file type; known: {', '.join(FILE_LOADERS)}"
        )
    return datasets.load_dataset(loader, data_files=str(path))


def load_dataset(
    name: str,
    *,
    size: str | None = None,
    seed: int | None = None,
    config: str | None = None,
    local_hint: str | None = None,
    **options: Any,
) -> DatasetDict:
    """The `datasets.DatasetDict` for a zoo name, a local file/directory, or a hub id (+ `config`)."""
    import datasets

    if is_zoo_name(name):
        path = resolve_dataset(name, size=size, seed=seed, config=config, **options)
        return datasets.load_from_disk(str(path))
    _refuse_zoo_arguments(name, size=size, seed=seed, options=options)
    path = _local_path(name)
    if path is not None:
        return _load_local(path, config)
    return dataset_builder(name, config, local_hint or _zoo_hint("dataset")).as_dataset()
