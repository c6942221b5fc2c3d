"""`python -m labkit.zoo downloads`: every paper config's hub downloads, each with a replica, and sizes
from the local Hugging Face cache when it holds the repo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.errors import MissingInputError
from labkit.zoo.__main__ import main, parser
from labkit.zoo.catalog import replica_for
from labkit.zoo.downloads import UNKNOWN, HubAsset, cached_sizes, paper_downloads, size_text

ROOT = Path(__file__).resolve().parents[2]
PAPER_CONFIGS = {
    "avalanche_llm/configs/pipeline.yaml",
    "cachemedicpp/configs/mve.yaml",
    "cachemedicpp/configs/second_model_smoke_gpt2_large.yaml",
    "cachemedicpp/configs/mve_qwen.yaml",
    "cachemedicpp/configs/full_gpt2_matrix.yaml",
    "cachemedicpp/configs/ood_loto_all.yaml",
    "esper/configs/cifar10.yaml",
    "esper/configs/ppo_cifar10.yaml",
    "esper/configs/eval_cifar10.yaml",
    "esper/configs/tinystories.yaml",
    "esper/configs/ppo_tinystories.yaml",
    "esper/configs/eval_tinystories.yaml",
}


@pytest.fixture(scope="module")
def listing() -> dict[Path, list[HubAsset]]:
    return paper_downloads()


def test_every_paper_config_is_listed_and_every_download_has_a_replica(listing):
    assert {str(p.relative_to(ROOT)) for p in listing} == PAPER_CONFIGS
    for path, assets in listing.items():
        assert assets, path
        for a in assets:
            # a rehearsal of the config resolves exactly these ids, so each needs its replica
            assert replica_for(a.hub_id, a.kind) is not None, (path, a)


def test_the_avalanche_paper_config_streams_slices_of_its_data_sets(listing):
    assets = listing[ROOT / "avalanche_llm/configs/pipeline.yaml"]
    models = {a.hub_id for a in assets if a.kind == "model"}
    assert models == {"Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B"}
    data = {(a.hub_id, a.config, a.split): a.read for a in assets if a.kind == "dataset"}
    assert set(data) == {
        ("Salesforce/wikitext", "wikitext-103-v1", "validation"),
        ("allenai/c4", "en", "validation"),
        ("allenai/ai2_arc", "ARC-Challenge", "test"),
    }
    assert (
        data[("allenai/c4", "en", "validation")] == "streamed: the first 500 windows of 256 tokens"
    )


def _fake_hub_cache(root: Path, repo: str, size: int) -> None:
    """A local HF hub cache holding one model repo with one file of `size` bytes."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "blobs").mkdir(parents=True)
    (folder / "blobs" / "b1").write_bytes(b"x" * size)
    snap = folder / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to("../../blobs/b1")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)


def test_sizes_come_from_the_local_hf_cache_else_unknown(tmp_path, capsys):
    assert cached_sizes(tmp_path / "none") == {}
    _fake_hub_cache(tmp_path, "gpt2-medium", 2_500_000)
    sizes = cached_sizes(tmp_path)
    assert size_text(HubAsset("model", "gpt2-medium"), sizes).startswith("2.5 MB")
    assert size_text(HubAsset("dataset", "gpt2-medium"), sizes) == UNKNOWN  # repo types differ
    mve = str(ROOT / "cachemedicpp/configs/mve.yaml")
    main(parser().parse_args(["downloads", "--config", mve, "--hf_cache", str(tmp_path), "--json"]))
    rows = json.loads(capsys.readouterr().out)
    assert {r["paper_config"] for r in rows} == {mve}
    sizes = {r["hub_id"]: r["size"] for r in rows}
    assert sizes["gpt2-medium"].startswith("2.5 MB") and sizes["Salesforce/wikitext"] == UNKNOWN


def test_a_config_that_is_not_a_paper_config_fails(tmp_path):
    with pytest.raises(MissingInputError, match="not a paper config"):
        paper_downloads([ROOT / "avalanche_llm/configs/pipeline_local.yaml"])
