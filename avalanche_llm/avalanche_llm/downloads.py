"""The hub downloads of the paper config (`python -m labkit.zoo downloads` lists them)."""

from __future__ import annotations

from pathlib import Path

from avalanche_llm import canon
from avalanche_llm.config import resolve_config
from avalanche_llm.slices import SLICES, slice_size
from labkit.zoo.downloads import HubAsset

PAPER_CONFIGS = ("configs/pipeline.yaml",)
# Qwen2.5-7B's MLP width: the calibration slice grows to hold RATE_MATCH_MIN_CAL_SAMPLES per layer.
D_FF = 18944


def pool_windows(cfg: dict, role: str) -> int:
    """Windows of data set `role` the slices draw from: the largest pool of its slices."""
    p = cfg["pipeline"]
    pools = []
    for name, (ds_role, _, excluded) in SLICES.items():
        if ds_role == role:
            n = slice_size(cfg, name, D_FF) + sum(slice_size(cfg, e, D_FF) for e in excluded)
            pools.append(max(n, min(p["window_pool_max"], n * p["window_pool_factor"])))
    return max(pools)


def paper_downloads() -> dict[Path, list[HubAsset]]:
    """{config path: hub assets} for both model roles of every paper config."""
    out = {}
    for rel in PAPER_CONFIGS:
        path = canon.ROOT / rel
        assets: list[HubAsset] = []
        for role in canon.registry()["ENUM"]["MODEL_ROLE"]:
            cfg = resolve_config(path, model_role=role).data
            model = HubAsset(
                "model", cfg["models"][role]["hf_id"], read="repo snapshot, PyTorch files"
            )
            if model not in assets:
                assets.append(model)
        for role in ("A", "B"):
            ds = cfg["datasets"][role]
            seq = cfg["pipeline"]["seq_len_tokens"]
            read = f"streamed: the first {pool_windows(cfg, role)} windows of {seq} tokens"
            assets.append(HubAsset("dataset", ds["id"], ds["config"], ds["split"], read))
        arc = cfg["datasets"]["ARC_MCQ"]
        items = (
            "streamed: all items"
            if arc["max_items"] is None
            else f"streamed: the first {arc['max_items']} items"
        )
        assets.append(HubAsset("dataset", arc["id"], arc["config"], arc["split"], items))
        out[path.resolve()] = assets
    return out
