"""What each paper config will download from the hub, and what of it the local HF cache already holds.

Every system registers one provider under the entry-point group `labkit.downloads`: a function that
returns {paper config path: [HubAsset, ...]}, read with that system's own config resolver, so the
listing names exactly the ids, configs and splits its code will ask the hub for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from labkit.errors import MissingInputError

GROUP = "labkit.downloads"
UNKNOWN = "size unknown offline"


@dataclass(frozen=True)
class HubAsset:
    """One hub download of a config: a model, or a data set's config and split, and how much is read."""

    kind: str  # "model" or "dataset"
    hub_id: str
    config: str | None = None
    split: str | None = None
    read: str = "whole"  # e.g. "streamed: the first 640 windows of 256 tokens"; "whole" = all of it


Provider = Callable[[], dict[Path, list[HubAsset]]]


def providers() -> dict[str, Provider]:
    """Every registered provider by entry-point name (one per system)."""
    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}


def paper_downloads(configs: Sequence[str | os.PathLike] = ()) -> dict[Path, list[HubAsset]]:
    """Assets of every paper config, or of `configs` only; exit 3 if one is not a known paper config."""
    listing: dict[Path, list[HubAsset]] = {}
    for provide in providers().values():
        listing.update(provide())
    if not configs:
        return dict(sorted(listing.items()))
    chosen = {}
    for config in configs:
        path = Path(config).resolve()
        if path not in listing:
            raise MissingInputError(
                f"{config} is not a paper config any system lists; paper configs: "
                + ", ".join(p.name for p in sorted(listing))
            )
        chosen[path] = listing[path]
    return chosen


def cached_sizes(cache_dir: str | os.PathLike | None = None) -> dict[tuple[str, str], int]:
    """Bytes on disk per (repo type, repo id) in the local Hugging Face hub cache (empty if none)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return {}
    return {(repo.repo_type, repo.repo_id): repo.size_on_disk for repo in info.repos}


def size_text(asset: HubAsset, sizes: dict[tuple[str, str], int]) -> str:
    """What the local HF cache holds of the asset's repo, or UNKNOWN."""
    size = sizes.get((asset.kind, asset.hub_id))
    if size is None:
        return UNKNOWN
    return f"{size / 1e6:,.1f} MB in the local HF cache (every cached file of the repo)"


def as_rows(
    listing: dict[Path, list[HubAsset]], sizes: dict[tuple[str, str], int]
) -> list[dict[str, Any]]:
    """One row per (config, asset), with the cached size."""
    return [
        {"paper_config": str(path), **asdict(asset), "size": size_text(asset, sizes)}
        for path, assets in listing.items()
        for asset in assets
    ]
