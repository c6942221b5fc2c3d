"""Next-token negative log-likelihood of token windows under a gain intervention."""

from __future__ import annotations

import numpy as np
import torch

from avalanche_llm.model.forward import forward_windows
from avalanche_llm.model.loader import LoadedModel


def window_nll(lm: LoadedModel, windows: np.ndarray, gain: float, batch_size: int) -> np.ndarray:
    """Mean NLL (nats per predicted token) of each window [N], tokens 2..T given their prefixes."""
    out = np.zeros(windows.shape[0], dtype=np.float64)
    ids = torch.as_tensor(np.ascontiguousarray(windows), dtype=torch.long)

    def sink(logits: torch.Tensor, rows: slice) -> None:
        logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
        target = ids[rows, 1:].to(logp.device)
        nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        out[rows] = nll.mean(dim=1).cpu().numpy()

    forward_windows(lm, windows, batch_size, logits_sink=sink, gain=gain)
    return out
