"""Build the host a task's config describes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from esper.kasmina.host_cnn import HostCNN
from esper.kasmina.host_transformer import TransformerHost


def build_host(
    topology: str, host: Mapping[str, Any], n_outputs: int, block_size: int | None
) -> nn.Module:
    """HostCNN for `cnn` (host: widths), TransformerHost for `transformer` (host: n_embd, n_head, n_layer, dropout)."""
    if topology == "cnn":
        return HostCNN(widths=host["widths"], n_classes=n_outputs)
    if topology == "transformer":
        if block_size is None:
            raise ValueError("a transformer host needs the data's block_size")
        return TransformerHost(
            vocab_size=n_outputs,
            n_embd=host["n_embd"],
            n_head=host["n_head"],
            n_layer=host["n_layer"],
            block_size=block_size,
            dropout=host["dropout"],
        )
    raise ValueError(f"unknown topology {topology!r}; known: cnn, transformer")
