"""The hub downloads of the paper configs (`python -m labkit.zoo downloads` lists them)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cachemedicpp.config import PROJECT, load_run_config
from cachemedicpp.sweep import load_plan
from labkit.zoo.catalog import is_zoo_name
from labkit.zoo.downloads import HubAsset

RUN_CONFIGS = ("mve.yaml", "second_model_smoke_gpt2_large.yaml", "mve_qwen.yaml")
SWEEPS = ("full_gpt2_matrix.yaml", "ood_loto_all.yaml")
# labkit.zoo.load_dataset prepares a data set's whole config (every split) before one is read.
WHOLE = "whole config"


def assets(cfg: Mapping[str, Any]) -> list[HubAsset]:
    """Hub model and data sets one resolved run config reads (zoo names and local paths need none)."""
    data, ev = cfg["data"], cfg["eval"]
    ppl, sst2, needle = ev["wikitext2_ppl"], ev["sst2_prompted"], ev["needle_long_context"]
    windows = (
        "all windows" if ppl["max_windows"] is None else f"the first {ppl['max_windows']} windows"
    )
    found = [
        HubAsset("model", cfg["model"]["name"], read="repo snapshot, PyTorch files"),
        HubAsset("dataset", data["dataset"], data["dataset_config"], data["train_split"], WHOLE),
        HubAsset(
            "dataset", data["dataset"], data["dataset_config"], data["calibration_split"], WHOLE
        ),
        HubAsset(
            "dataset", ppl["dataset"], ppl["dataset_config"], ppl["split"], f"{WHOLE}; {windows}"
        ),
        HubAsset(
            "dataset",
            sst2["dataset"],
            sst2["dataset_config"],
            sst2["split"],
            f"{WHOLE}; the first {sst2['n']} rows",
        ),
    ]
    if needle["dataset"] is not None:
        found.append(
            HubAsset(
                "dataset",
                needle["dataset"],
                None,
                "test",
                f"{WHOLE}; the first {needle['n']} that fit",
            )
        )
    hub = [a for a in found if not is_zoo_name(a.hub_id) and not Path(a.hub_id).exists()]
    return list(dict.fromkeys(hub))


def paper_downloads() -> dict[Path, list[HubAsset]]:
    """{config path: hub assets} of every paper run config and paper sweep (all its runs)."""
    configs = PROJECT / "configs"
    out = {(configs / n).resolve(): assets(load_run_config(configs / n)) for n in RUN_CONFIGS}
    for name in SWEEPS:
        runs = load_plan(configs / name).runs
        out[(configs / name).resolve()] = list(
            dict.fromkeys(a for r in runs for a in assets(r.config))
        )
    return out
