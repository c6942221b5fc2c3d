"""The hub downloads of the paper configs (`python -m labkit.zoo downloads` lists them)."""

from __future__ import annotations

from pathlib import Path

from esper.config import load_esper_config
from esper.evaluate.command import load_eval_config
from labkit.zoo.catalog import is_zoo_name
from labkit.zoo.downloads import HubAsset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAPER_CONFIGS = (
    "cifar10.yaml",
    "ppo_cifar10.yaml",
    "eval_cifar10.yaml",
    "tinystories.yaml",
    "ppo_tinystories.yaml",
    "eval_tinystories.yaml",
)


def assets(path: Path) -> list[HubAsset]:
    """The hub data set (and, for language tasks, the tokenizer's model repo) one config reads."""
    # Evaluation configs have their own schema; their policies do not change what is downloaded.
    is_eval = path.name.startswith("eval_")
    data = (load_eval_config(path, [], "heuristic") if is_eval else load_esper_config(path))["data"]
    # labkit.zoo.load_dataset prepares the whole data set; both splits are then read in full.
    read = "whole data set; every row of both splits"
    found = [
        HubAsset("dataset", data["dataset"], None, s, read)
        for s in (data["train_split"], data["test_split"])
    ]
    if data.get("tokenizer"):
        # load_tokenizer resolves with tokenizer_only=True: labkit.zoo.hub.TOKENIZER_FILES, no weights.
        found.insert(
            0,
            HubAsset(
                "model",
                data["tokenizer"],
                read="tokenizer files and config.json only (no weights)",
            ),
        )
    return [a for a in found if not is_zoo_name(a.hub_id) and not Path(a.hub_id).exists()]


def paper_downloads() -> dict[Path, list[HubAsset]]:
    """{config path: hub assets} of every paper config."""
    return {(CONFIGS / name).resolve(): assets(CONFIGS / name) for name in PAPER_CONFIGS}
