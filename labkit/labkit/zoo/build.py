"""Build one zoo item into the cache: call its builder, show progress, write its zoo card."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

import labkit
from labkit.errors import ConfigError
from labkit.progress import Stage
from labkit.zoo.catalog import ZooItem
from labkit.zoo.fingerprint import file_digests
from labkit.zoo.shipped import shipped_dir, verify_shipped
from labkit.zoo.store import build_atomically, cache_key, item_dir


@contextmanager
def progress_bar(title: str) -> Iterator[Callable[[int, int, str], None]]:
    """Live progress on stderr (a terminal only: builds print their own line when done); yields
    `report(done, total, message)` for the builder."""
    with Stage(title, None, end_line=False) as stage:

        def report(done: int, total: int, message: str) -> None:
            stage.update(done, total=total, detail=message)

        yield report


def check_options(item: ZooItem, options: Mapping[str, Any]) -> None:
    """Refuse builder options the item does not take, before any work starts."""
    unknown = sorted(set(options) - set(item.options))
    if unknown:
        allowed = ", ".join(item.options) or "none"
        raise ConfigError(f"{item.zoo_name} takes no option {unknown}; its options: {allowed}")


@contextmanager
def _datasets_quiet() -> Iterator[None]:
    # datasets' own tqdm bars would interleave with the rich bar above.
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def run_builder(
    item: ZooItem, size: str, seed: int, options: Mapping[str, Any], out: Path
) -> dict[str, Any]:
    """Run `item`'s builder into the empty directory `out`; return its card without the bookkeeping."""
    builder = item.load_builder()
    lead = (item.name,) if item.builder_takes_name else ()
    with progress_bar(f"building {item.zoo_name}@{size} (seed {seed})") as report:
        if item.kind == "model":
            card = builder(*lead, size, seed, out, report)
            return {**card, "weights_sha256": file_digests(out)}
        with _datasets_quiet():
            if item.writes_files:
                return builder(*lead, size, seed, out, report)
            data = builder(*lead, size, seed, **options)
            data.save_to_disk(str(out))
        return {"splits": {split: data[split].num_rows for split in data}}


def build_local(
    item: ZooItem, size: str, seed: int, options: Mapping[str, Any], *, force: bool = False
) -> Path:
    """Directory of `item` at `size`/`seed`/`options`: its shipped build (verified), else the cache's,
    building it first if needed."""
    check_options(item, options)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed for {item.zoo_name} must be an integer, got {seed!r}")
    shipped = shipped_dir(item, cache_key(size, seed, item.version, options))
    if shipped is None:
        return build_cached(item, size, seed, options, force=force)
    if force:
        raise ConfigError(
            f"{item.zoo_name}@{size} (seed {seed}) is shipped in the repository and is not rebuilt "
            f"over; `python -m labkit.zoo build {item.zoo_name}@{size} --verify` rebuilds it in a "
            "temp directory and compares"
        )
    return verify_shipped(shipped)


def build_cached(
    item: ZooItem, size: str, seed: int, options: Mapping[str, Any], *, force: bool = False
) -> Path:
    """Cache directory of `item` at `size`/`seed`/`options`, building it first if needed."""
    target = item_dir(item.kind, item.name, cache_key(size, seed, item.version, options))

    def build(out: Path) -> dict[str, Any]:
        started = time.perf_counter()
        card = run_builder(item, size, seed, options, out)
        seconds = round(time.perf_counter() - started, 3)
        Console(stderr=True).print(
            f"built {item.zoo_name}@{size} in {seconds:.1f} s -> {target}", soft_wrap=True
        )
        return {
            **card,
            "name": item.zoo_name,
            "kind": item.kind,
            "size": size,
            "seed": seed,
            "options": dict(options),
            "version": item.version,
            "builder": item.builder,
            "labkit_version": labkit.__version__,
            "built_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "build_seconds": seconds,
        }

    return build_atomically(target, build, force=force)
