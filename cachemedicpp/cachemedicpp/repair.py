"""R_phi: low-rank, query-gated repair of the K,V a layer reads from its cache (options A, B, C).

Every option has the form x̂ = x + ((x P) ⊙ c(q)) Qᵀ per head, with c(q) ∈ (0,1)^r from a gate on the
query. A: P = W, Q = U, c = g. B: P = B, Q = −γB, c = 1 − g. C: A shared by all protected layers, its
gate fed q + e_layer[l] (+ e_head[h]). All are the identity at init (U = 0, γ = 0).

In prefill each query i gets its own repaired cache, applied in factored form so no later token leaks in:
logits_i = scaling·(q_i Kᵀ + ((q_i Q_k) ⊙ c_k(q_i)) (K P_k)ᵀ), out_i = a_i V + ((a_i V P_v) ⊙ c_v(q_i)) Q_vᵀ.

R_phi acts per cache head. Under grouped-query attention (Llama family) the g query heads of a K,V
head read one repaired cache per position, gated by the mean of their g queries: the repair stays a
rewrite of the cache (one K̂,V̂ per cache head, as the identity and contraction terms compare), and
`n_heads` counts cache heads. Keys are repaired as cached, RoPE-rotated; the gate sees rotated
queries. With g = 1 (GPT-2, or no GQA) this is exactly the per-head form above.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from labkit.determinism import generator


def orthonormal(heads: int, d: int, r: int, g: torch.Generator) -> torch.Tensor:
    """[heads, d, r] with orthonormal columns per head (QR of a seeded Gaussian)."""
    q, _ = torch.linalg.qr(torch.randn(heads, d, r, generator=g))
    return q


class Gate(nn.Module):
    """g(q) = alpha_max·σ(W₂ SiLU(W₁q + b₁) + b₂) ∈ (0, alpha_max)^r, shared by heads or per head."""

    def __init__(self, heads: int, d: int, r: int, alpha_max: float, g: torch.Generator):
        super().__init__()
        self.alpha_max = alpha_max
        self.w1 = nn.Parameter(torch.randn(heads, d, r, generator=g) * d**-0.5)
        self.b1 = nn.Parameter(torch.zeros(heads, 1, r))
        self.w2 = nn.Parameter(torch.randn(heads, r, r, generator=g) * r**-0.5)
        self.b2 = nn.Parameter(torch.zeros(heads, 1, r))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """[1, H, T, d] queries -> [1, H, T, r] gates."""
        hidden = F.silu(q @ self.w1.to(q.dtype) + self.b1.to(q.dtype))
        return self.alpha_max * torch.sigmoid(hidden @ self.w2.to(q.dtype) + self.b2.to(q.dtype))


class PartA(nn.Module):
    """Option A on K or V: x̂ = x + ((x W) ⊙ g(q)) Uᵀ; W orthonormal, U = 0 at init."""

    def __init__(self, heads: int, d: int, r: int, alpha_max: float, g: torch.Generator):
        super().__init__()
        self.w = nn.Parameter(orthonormal(heads, d, r, g))
        self.u = nn.Parameter(torch.zeros(heads, d, r))
        self.gate = Gate(heads, d, r, alpha_max, g)

    def terms(self, gate_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(P, Q, c(q)) of x̂ = x + ((x P) ⊙ c) Qᵀ, in the dtype of the queries."""
        return self.w.to(gate_in.dtype), self.u.to(gate_in.dtype), self.gate(gate_in)


class PartB(nn.Module):
    """Option B on K or V: x̂ = x − γ((x B) ⊙ (1 − g(q))) Bᵀ; B orthonormal, γ = 0 at init, γ ∈ [0, 1]."""

    def __init__(self, heads: int, d: int, r: int, alpha_max: float, g: torch.Generator):
        super().__init__()
        self.b = nn.Parameter(orthonormal(heads, d, r, g))
        self.gamma = nn.Parameter(torch.zeros(()))
        self.gate = Gate(heads, d, r, alpha_max, g)

    def terms(self, gate_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(P, Q, c(q)) of x̂ = x + ((x P) ⊙ c) Qᵀ, in the dtype of the queries."""
        b = self.b.to(gate_in.dtype)
        return b, -self.gamma.clamp(0, 1).to(gate_in.dtype) * b, 1 - self.gate(gate_in)


class RepairOperator(nn.Module):
    """R_phi over the protected layers; `attend` replaces eager attention on those layers."""

    def __init__(
        self,
        *,
        option: str,
        layers: tuple[int, ...],
        n_heads: int,
        head_dim: int,
        rank: int,
        apply_to: str = "KV",
        share_across_heads: bool = True,
        alpha_max: float = 0.9,
        head_embedding: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.init_args = {
            "option": option,
            "layers": list(layers),
            "n_heads": n_heads,
            "head_dim": head_dim,
            "rank": rank,
            "apply_to": apply_to,
            "share_across_heads": share_across_heads,
            "alpha_max": alpha_max,
            "head_embedding": head_embedding,
            "seed": seed,
        }
        if option not in ("A", "B", "C"):
            raise ValueError(f"unknown repair option {option!r}; expected A, B or C")
        self.option = option
        self.layers = tuple(layers)
        self.parts = tuple(p for p in "KV" if p in apply_to)
        heads = 1 if share_across_heads else n_heads
        part_cls = PartB if option == "B" else PartA

        def make(where: str) -> nn.ModuleDict:
            return nn.ModuleDict(
                {
                    p: part_cls(
                        heads, head_dim, rank, alpha_max, generator(seed, "R_phi", where, p)
                    )
                    for p in self.parts
                }
            )

        if option == "C":
            self.shared = make("shared")
            self.layer_embedding = nn.Parameter(torch.zeros(len(self.layers), head_dim))
            self.head_embedding = (
                nn.Parameter(torch.zeros(n_heads, 1, head_dim)) if head_embedding else None
            )
        else:
            self.per_layer = nn.ModuleDict({str(layer): make(str(layer)) for layer in self.layers})

    @classmethod
    def from_config(
        cls, repair: Mapping[str, Any], *, n_heads: int, head_dim: int, seed: int
    ) -> RepairOperator:
        """R_phi at init from the resolved `repair` section and the model's head shape."""
        return cls(
            option=repair["option"],
            layers=tuple(repair["protect_layers"]),
            n_heads=n_heads,
            head_dim=head_dim,
            rank=repair["rank"],
            apply_to=repair["apply_to"],
            share_across_heads=repair["share_across_heads"],
            alpha_max=repair["alpha_max"],
            head_embedding=repair["head_embedding"],
            seed=seed,
        )

    def checkpoint(self, step: int, config_hash: str) -> dict[str, Any]:
        """A self-describing repair-only checkpoint (`checkpoints/repair_step_<N>.pt`)."""
        return {
            "step": step,
            "config_hash": config_hash,
            "init": self.init_args,
            "phi": self.state_dict(),
        }

    @classmethod
    def from_checkpoint(cls, state: Mapping[str, Any]) -> RepairOperator:
        """R_phi rebuilt from `checkpoint()` output (load it with labkit.checkpoint.load_checkpoint)."""
        init = dict(state["init"])
        init["layers"] = tuple(init["layers"])
        op = cls(**init)
        op.load_state_dict(state["phi"])
        return op

    def n_params(self) -> int:
        """Number of trainable scalars in R_phi."""
        return sum(p.numel() for p in self.parameters())

    def _terms(self, layer: int, query: torch.Tensor) -> dict[str, tuple[torch.Tensor, ...]]:
        if self.option != "C":
            return {p: m.terms(query) for p, m in self.per_layer[str(layer)].items()}
        gate_in = query + self.layer_embedding[self.layers.index(layer)].to(query.dtype)
        if self.head_embedding is not None:
            gate_in = gate_in + self.head_embedding.to(query.dtype)
        return {p: m.terms(gate_in) for p, m in self.shared.items()}

    def attend(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eager attention with each query reading its own repaired K,V (factored, causal).

        Queries [1, Hq, T, d] are grouped by the cache head [1, Hkv, T, d] they read (Hq = Hkv
        without grouped-query attention): a group shares one repaired cache per position.
        """
        q = query.unflatten(1, (key.shape[1], -1))  # [1, Hkv, g, T, d]
        terms = self._terms(layer, q.mean(dim=2))
        k, v = key.unsqueeze(2), value.unsqueeze(2)
        logits = torch.matmul(q, k.transpose(-1, -2))
        if "K" in terms:
            p, qk, c = _grouped(terms["K"])
            logits = logits + torch.matmul(torch.matmul(q, qk) * c, (k @ p).transpose(-1, -2))
        logits = logits * scaling
        if attention_mask is not None:
            logits = logits + attention_mask.unsqueeze(2)
        weights = F.softmax(logits, dim=-1).type(value.dtype)
        out = torch.matmul(weights, v)
        if "V" in terms:
            p, qv, c = _grouped(terms["V"])
            out = out + torch.matmul(torch.matmul(out, p) * c, qv.transpose(-1, -2))
        return out.flatten(1, 2).transpose(1, 2), weights.flatten(1, 2)

    def explicit(
        self, layer: int, key: torch.Tensor, value: torch.Tensor, query: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The repaired cache [1, Hkv, T, d] one position's queries [1, Hq, 1, d] read: {'K': K̂, 'V': V̂}."""
        terms = self._terms(layer, query.unflatten(1, (key.shape[1], -1)).mean(dim=2))
        source = {"K": key, "V": value}
        return {
            part: source[part]
            + torch.matmul(torch.matmul(source[part], p) * c, q.transpose(-1, -2))
            for part, (p, q, c) in terms.items()
        }


def _grouped(terms: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """(P, Q, c) shaped for [1, Hkv, g, T, ·] operands: a group axis after the head axis."""
    p, q, c = terms
    return p.unsqueeze(1), q.unsqueeze(1), c.unsqueeze(2)
