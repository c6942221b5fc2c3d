"""labkit.zoo: embedded default models and data, built on first use and cached under $LABKIT_HOME."""

from labkit.zoo.catalog import known_names
from labkit.zoo.fingerprint import weights_digest
from labkit.zoo.resolve import load_dataset, resolve_dataset, resolve_model, stream_dataset
from labkit.zoo.store import zoo_home

__all__ = [
    "known_names",
    "load_dataset",
    "resolve_dataset",
    "resolve_model",
    "stream_dataset",
    "weights_digest",
    "zoo_home",
]
