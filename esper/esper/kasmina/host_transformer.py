"""TransformerHost: a GPT-style pre-norm causal decoder with a head tied to the token embedding."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from esper.kasmina.protocol import Grafts, InjectionPoint


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention through SDPA with `is_causal=True`."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} is not divisible by n_head {n_head}")
        self.n_head = n_head
        self.dropout = dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, C) -> (B, T, C); position t attends to positions <= t only."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(ln1 x), then x + mlp(ln2 x) with a 4x GELU MLP."""

    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(dropout),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """One residual attention step and one residual MLP step."""
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.mlp(self.ln2(x))


class TransformerHost(nn.Module):
    """The LM host (~30.0M parameters at the paper size); one injection point after every block."""

    topology = "transformer"

    def __init__(
        self,
        vocab_size: int = 50257,
        n_embd: int = 384,
        n_head: int = 6,
        n_layer: int = 6,
        block_size: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.n_layer = n_layer
        self.n_embd = n_embd
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerBlock(n_embd, n_head, dropout) for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.tok_emb.weight = self.head.weight
        self.apply(_init_weights)
        self._points = {
            f"layer_{i}_post_block": InjectionPoint(i, "post_block", n_embd) for i in range(n_layer)
        }
        self.grafts = Grafts(self._points)

    @property
    def injection_points(self) -> dict[str, InjectionPoint]:
        """`layer_{i}_post_block` for every block i."""
        return self._points

    def forward_through_layer(self, x: Tensor, last_layer_idx: int) -> Tensor:
        """Embeddings and blocks 0..last_layer_idx: token ids (B, T) -> hidden states (B, T, C)."""
        t = x.shape[1]
        if t > self.block_size:
            raise ValueError(f"sequence of {t} tokens exceeds block_size {self.block_size}")
        h = self.drop(self.tok_emb(x) + self.pos_emb(torch.arange(t, device=x.device)))
        for i in range(last_layer_idx + 1):
            h = self.grafts.after(self.layers[i](h), i)
        return h

    def forward_from_layer(self, h: Tensor, first_layer_idx: int) -> Tensor:
        """Blocks first_layer_idx.., final norm and the tied head: hidden (B, T, C) -> logits (B, T, V)."""
        for i in range(first_layer_idx, self.n_layer):
            h = self.grafts.after(self.layers[i](h), i)
        return self.head(self.ln_f(h))

    def forward(self, x: Tensor) -> Tensor:
        """Next-token logits of shape (B, T, vocab_size)."""
        return self.forward_from_layer(self.forward_through_layer(x, -1), 0)

    def graft(self, point_id: str, module: nn.Module) -> None:
        """Fossilise `module` into the host at `point_id`."""
        self.grafts.add(point_id, module)


def _init_weights(module: nn.Module) -> None:
    # GPT-2's scheme: small normal weights, zero biases; LayerNorm keeps its identity default.
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
