"""local:shapes10: CIFAR-10's layout, balanced classes, byte-level determinism, zoo round trip."""

import hashlib

import datasets
import numpy as np
import pytest
from PIL import Image

from labkit.errors import ConfigError
from labkit.zoo import load_dataset
from labkit.zoo.shapes import CLASS_NAMES, SIZES, build_shapes10, render_shapes


def _arrays(data: datasets.DatasetDict, split: str) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([np.asarray(img) for img in data[split]["img"]])
    return images, np.asarray(data[split]["label"])


def _digest(data: datasets.DatasetDict) -> str:
    h = hashlib.sha256()
    for split in ("train", "test"):
        images, labels = _arrays(data, split)
        h.update(images.tobytes())
        h.update(labels.astype(np.int64).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def shapes_test() -> datasets.DatasetDict:
    return build_shapes10("test", 0)


def test_layout_matches_hub_cifar10(shapes_test):
    assert set(shapes_test) == {"train", "test"}
    assert (shapes_test["train"].num_rows, shapes_test["test"].num_rows) == SIZES["test"]
    features = shapes_test["train"].features
    assert isinstance(features["img"], datasets.Image)
    assert isinstance(features["label"], datasets.ClassLabel)
    assert features["label"].names == list(CLASS_NAMES) and len(CLASS_NAMES) == 10
    first = shapes_test["train"][0]["img"]
    assert isinstance(first, Image.Image) and first.size == (32, 32) and first.mode == "RGB"
    images, _ = _arrays(shapes_test, "train")
    assert images.dtype == np.uint8 and images.shape == (400, 32, 32, 3)
    assert 40 < images.mean() < 215 and images.std() > 20  # neither blank nor saturated


def test_classes_are_balanced(shapes_test):
    for split in ("train", "test"):
        _, labels = _arrays(shapes_test, split)
        counts = np.bincount(labels, minlength=10)
        assert counts.min() == counts.max() == len(labels) // 10
        assert not np.array_equal(labels, np.sort(labels))  # shuffled


def test_same_seed_same_bytes_other_seed_differs(shapes_test):
    assert _digest(build_shapes10("test", 0)) == _digest(shapes_test)
    assert _digest(build_shapes10("test", 1)) != _digest(shapes_test)
    train, _ = _arrays(shapes_test, "train")
    test, _ = _arrays(shapes_test, "test")
    assert not np.array_equal(train[:200], test)


def test_label_controls_the_drawn_shape_and_colour():
    # Same pose, background and noise draws; only the label changes, so only the object changes.
    labels = np.arange(10)
    a = render_shapes(labels, np.random.default_rng(5)).astype(int)
    b = render_shapes(np.roll(labels, 1), np.random.default_rng(5)).astype(int)
    assert (np.abs(a - b).sum(axis=(1, 2, 3)) > 0).all()
    # a[i] is warm exactly when b[i] is cool: warm means more red than blue.
    red_minus_blue_a = (a[..., 0] - a[..., 2]).mean(axis=(1, 2))
    red_minus_blue_b = (b[..., 0] - b[..., 2]).mean(axis=(1, 2))
    warm_in_a = np.where(labels % 2 == 0, 1, -1)
    assert (warm_in_a * (red_minus_blue_a - red_minus_blue_b) > 0).all()


def test_zoo_round_trip_and_sizes(isolated_zoo_home, shapes_test):
    loaded = load_dataset("local:shapes10@test")
    assert _digest(loaded) == _digest(shapes_test)
    assert loaded["train"].features == shapes_test["train"].features
    assert SIZES["small"] == (2_000, 500) and SIZES["default"] == (50_000, 10_000)
    with pytest.raises(ConfigError, match="known sizes: default, small, test"):
        load_dataset("local:shapes10@huge")
    with pytest.raises(ConfigError, match="takes no option"):
        load_dataset("local:shapes10@test", lengths=[64])
