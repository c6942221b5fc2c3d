"""Resolve model and data set names (zoo `local:` names, local paths, hub ids) to loadable things."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError, MissingInputError
from labkit.rehearsal import rehearsal_active
from labkit.zoo.build import build_local
from labkit.zoo.catalog import ZooItem, is_zoo_name, known_names, parse_name
from labkit.zoo.hub import dataset_builder, fetch_model, hub_unreachable_reason
from labkit.zoo.replicas import replica_path

if TYPE_CHECKING:
    from datasets import DatasetDict, IterableDataset

# `datasets` packaged loaders for single local files, by suffix.
FILE_LOADERS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
    ".arrow": "arrow",
}
REPLICA_CACHE = ".datasets_cache"


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
    name: str,
    *,
    size: str | None = None,
    seed: int | None = None,
    local_hint: str | None = None,
    tokenizer_only: bool = False,
) -> Path:
    """Directory that `from_pretrained` loads for a zoo name, a local directory, or a hub id.

    With `tokenizer_only` a hub id fetches only its tokenizer files (and config.json), no weights.
    """
    if is_zoo_name(name):
        item, size = _zoo_item(name, size, "model")
        return build_local(item, size, item.default_seed if seed is None else seed, {})
    _refuse_zoo_arguments(name, size=size, seed=seed)
    path = _local_path(name)
    if path is None:
        if rehearsal_active():
            return replica_path(name, "model")
        return fetch_model(name, local_hint or _zoo_hint("model"), tokenizer_only=tokenizer_only)
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
        item, size = _zoo_item(name, size, "dataset")
        if config is not None and not item.writes_files:
            raise ConfigError(f"config={config!r} applies to hub ids, not to zoo name {name!r}")
        return build_local(item, size, item.default_seed if seed is None else seed, options)
    _refuse_zoo_arguments(name, size=size, seed=seed, options=options)
    path = _local_path(name)
    if path is not None:
        return path
    if rehearsal_active():
        return replica_path(name, "dataset")
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


def _load_replica(path: Path, config: str | None) -> DatasetDict:
    """A replica data set's config, prepared into a cache inside its build directory.

    datasets' shared cache keys local files by path, so after a rebuild (`--force`) it served the
    old build's rows; a cache that lives and dies with the build cannot.
    """
    import datasets

    return datasets.load_dataset(str(path), config, cache_dir=str(path / REPLICA_CACHE))


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
        if _zoo_item(name, size, "dataset")[0].writes_files:
            return _load_replica(path, config)
        return datasets.load_from_disk(str(path))
    _refuse_zoo_arguments(name, size=size, seed=seed, options=options)
    path = _local_path(name)
    if path is not None:
        return _load_local(path, config)
    if rehearsal_active():
        return _load_replica(replica_path(name, "dataset"), config)
    return dataset_builder(name, config, local_hint or _zoo_hint("dataset")).as_dataset()


def stream_dataset(
    name: str, *, split: str, config: str | None = None, local_hint: str | None = None
) -> IterableDataset:
    """One split as a `datasets.IterableDataset` that reads only the rows it is asked for.

    For a hub id (its replica when rehearsing), a replica zoo name, a raw data directory or one data
    file; nothing downloads or prepares a whole config, so a slice of C4 costs only that slice.
    """
    import datasets

    if is_zoo_name(name):
        item, _ = _zoo_item(name, None, "dataset")
        if not item.writes_files:
            raise ConfigError(
                f"{name} is saved whole, not as data files; load it with load_dataset"
            )
        path: Path | None = resolve_dataset(name, config=config)
    else:
        path = _local_path(name)
        if path is None and rehearsal_active():
            path = replica_path(name, "dataset")
    try:
        if path is not None and path.is_file():
            loader = FILE_LOADERS.get(path.suffix)
            if loader is None:
                raise ConfigError(f"cannot stream {path}: unknown data file type")
            return datasets.load_dataset(
                loader, data_files={split: str(path)}, split=split, streaming=True
            )
        if path is not None:
            return datasets.load_dataset(str(path), config, split=split, streaming=True)
        reason = hub_unreachable_reason()
        if reason is not None:
            hint = local_hint or _zoo_hint("dataset")
            raise MissingInputError(
                f"hub data set {name!r} needs the hub, unreachable ({reason}); {hint}"
            )
        return datasets.load_dataset(name, config, split=split, streaming=True)
    except ValueError as exc:  # an unknown split or config
        raise ConfigError(f"data set {name} ({config}): {exc}") from None
