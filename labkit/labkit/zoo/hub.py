"""Hugging Face Hub access that never hangs: local cache first, then a short reachability probe."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from labkit.errors import ConfigError, MissingInputError

if TYPE_CHECKING:
    from datasets import DatasetBuilder

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0
# Weight formats PyTorch/transformers never read; skipping them keeps a snapshot to what loads.
_NON_TORCH_FILES = [
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.onnx",
    "onnx/*",
    "*.tflite",
    "coreml/*",
    "*.gguf",
    "original/*",
    "*.pth",
]
# What AutoTokenizer reads from a model repo: its tokenizer files, and config.json for the model type
# when tokenizer_config.json names no tokenizer class. No weights.
TOKENIZER_FILES = [
    "config.json",
    "tokenizer*",
    "vocab*",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "*.model",
    "*.tiktoken",
]


def hub_endpoint() -> str:
    """The hub URL in use: `$HF_ENDPOINT`, else huggingface.co."""
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def hub_offline() -> bool:
    """True if `HF_HUB_OFFLINE` asks for no network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_unreachable_reason(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the hub cannot be used now (offline mode, or no TCP connection within `timeout`), else None."""
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    url = urlsplit(hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot connect to {hub_endpoint()} ({exc.__class__.__name__}: {exc})"


def _missing(kind: str, repo_id: str, reason: str, hint: str) -> MissingInputError:
    return MissingInputError(
        f"{kind} {repo_id!r} is not in the local Hugging Face cache and the hub is unreachable "
        f"({reason}); {hint}"
    )


def fetch_model(repo_id: str, hint: str, *, tokenizer_only: bool = False) -> Path:
    """Local snapshot directory of hub model `repo_id` (or of its tokenizer files only), downloading
    only if the hub is reachable."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    # A tokenizer-only fetch must not pull gigabytes of weights it never reads.
    files = (
        {"allow_patterns": TOKENIZER_FILES}
        if tokenizer_only
        else {"ignore_patterns": _NON_TORCH_FILES}
    )
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, **files))
    except HFValidationError as exc:
        raise ConfigError(
            f"model {repo_id!r} is not a local: name, an existing directory, or a hub id ({exc})"
        ) from None
    except LocalEntryNotFoundError:
        pass
    reason = hub_unreachable_reason()
    if reason is not None:
        raise _missing("model", repo_id, reason, hint)
    try:
        path = snapshot_download(repo_id, endpoint=hub_endpoint(), **files)
    except RepositoryNotFoundError as exc:
        raise MissingInputError(
            f"hub model {repo_id!r} not found or not accessible: {exc}"
        ) from None
    return Path(path)


def dataset_builder(repo_id: str, config: str | None, hint: str) -> DatasetBuilder:
    """A prepared `datasets` builder for hub data set `repo_id`: from the local cache if it is there."""
    import datasets
    from datasets.packaged_modules.cache.cache import Cache

    try:
        return Cache(
            repo_id=repo_id,
            dataset_name=repo_id.split("/")[-1],
            config_name=config,
            version="auto",
            hash="auto",
        )
    except (ValueError, FileNotFoundError):
        pass  # not cached (for this config): the hub must be reachable
    reason = hub_unreachable_reason()
    if reason is not None:
        raise _missing("data set", repo_id, reason, hint)
    try:
        builder = datasets.load_dataset_builder(repo_id, config)
    except datasets.exceptions.DatasetNotFoundError as exc:
        raise MissingInputError(f"hub data set {repo_id!r} not found: {exc}") from None
    builder.download_and_prepare()
    return builder
