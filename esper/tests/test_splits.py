"""Three splits: validation is carved from train and drives everything; test is only scored at the end."""

from __future__ import annotations

import pytest
import torch
import yaml

from esper.config import load_esper_config
from esper.utils.data import carve_indices, load_task_data
from esper.utils.tokens import load_token_splits
from labkit.errors import ConfigError, SchemaError

from .conftest import CNN_CONFIG, CNN_TEST, CONFIGS, make_episode

PROFILE = CONFIGS / "rehearsal_profile.yaml"
ALL_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if p != PROFILE)


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: p.name)
def test_no_config_validates_on_the_test_split(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))["data"]
    assert "val_split" not in data  # validation has no split of its own to point at
    assert data["test_split"] != data["train_split"]
    assert 0 < data["val_fraction"] < 1


def test_the_rehearsal_profile_moves_no_split():
    caps = yaml.safe_load(PROFILE.read_text(encoding="utf-8"))
    keys = [key for section in caps.values() for key in section]
    assert keys and not [key for key in keys if "split" in key or "val_fraction" in key]


def test_a_config_naming_a_validation_split_is_refused(tmp_path):
    cfg = yaml.safe_load(CNN_CONFIG.read_text(encoding="utf-8"))
    cfg["data"]["val_split"] = "test"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with pytest.raises(SchemaError, match="val_split"):
        load_esper_config(path, CNN_TEST)
    with pytest.raises(SchemaError, match="val_fraction"):
        load_esper_config(CNN_CONFIG, [*CNN_TEST, "data.val_fraction=1.0"])
    good = load_esper_config(CNN_CONFIG, CNN_TEST)["data"]
    with pytest.raises(ConfigError, match="val_fraction"):
        load_task_data("classification", {**good, "val_fraction": 0.0})


def test_carve_is_fixed_and_disjoint():
    train, val = carve_indices(100, 0.2)
    again = carve_indices(100, 0.2)
    assert torch.equal(train, again[0]) and torch.equal(val, again[1])
    assert len(val) == 20 and not set(train.tolist()) & set(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(100))


def test_image_validation_comes_from_train_and_test_from_the_test_split(cnn_cfg, zoo_test_dataset):
    data = load_task_data("classification", cnn_cfg["data"])
    ds = zoo_test_dataset("shapes10")
    n_train, n_test = len(ds["train"]), len(ds["test"])
    assert len(data.train_x) + len(data.val_x) == n_train
    assert len(data.test_x) == n_test
    # Every validation image is a train-split image the training batches never see.
    train_rows = {bytes(x.numpy()) for x in data.train_x}
    assert not any(bytes(x.numpy()) in train_rows for x in data.val_x)
    assert torch.equal(next(data.eval_batches("test"))[1], data.test_y[: data.batch_size])


def test_token_validation_is_the_tail_of_the_train_stream(lm_cfg):
    cfg = lm_cfg["data"]
    splits = load_token_splits(cfg, "")
    data = load_task_data("lm", cfg)
    joined = list(data.train) + list(data.val)
    assert joined == list(splits.train)
    assert len(data.val) == round(len(splits.train) * cfg["val_fraction"])
    assert list(data.test) == list(splits.test)


def test_episode_scores_test_only_at_the_end(cnn_cfg):
    cfg = load_esper_config(CNN_CONFIG, [*CNN_TEST, "task.max_epochs=2"])
    ep, _ = make_episode(cfg)
    assert ep.signals.test_loss is None
    first, _ = ep.run_epoch()
    assert first.test_loss is None and first.test_accuracy is None
    last, _ = ep.run_epoch()
    assert last.test_loss is not None and last.test_loss != last.policy.val_loss
    assert 0 <= last.test_accuracy <= 1
