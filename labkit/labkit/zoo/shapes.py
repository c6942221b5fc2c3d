"""local:shapes10: CIFAR-10-shaped procedural images, 10 classes = 5 shapes x 2 colour families."""

from __future__ import annotations

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

from labkit.errors import ConfigError

SIZES = {"default": (50_000, 10_000), "small": (2_000, 500), "test": (400, 200)}
SHAPES = ("disc", "stripes", "triangle", "cross", "ring")
FAMILIES = ("warm", "cool")
CLASS_NAMES = tuple(f"{family}_{shape}" for shape in SHAPES for family in FAMILIES)
# Hue ranges (fractions of the colour wheel); the gaps between them are left to background clutter.
_FAMILY_HUES = {"warm": (-0.06, 0.14), "cool": (0.46, 0.68)}
IMAGE_SIZE = 32
# Images rendered per numpy batch: bounds memory, and is fixed so the bytes never depend on it.
_CHUNK = 4096
_CLUTTER = 2  # distractor shapes under the labelled one
_NOISE_STD = 0.05


def _sdf(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (in radii) to the outline of `SHAPES[shape]` centred at 0 with radius 1."""
    name = SHAPES[shape]
    if name == "disc":
        return np.hypot(u, v) - 1.0
    if name == "stripes":
        box = np.maximum(np.abs(u), np.abs(v)) - 0.85
        period = 1.7 / 3.0  # three bars across the box
        return np.maximum(box, np.abs(u - period * np.round(u / period)) - period / 4.0)
    if name == "triangle":
        sides = [np.cos(a) * u + np.sin(a) * v for a in np.deg2rad([90.0, 210.0, 330.0])]
        return np.maximum.reduce(sides) - 0.5
    if name == "cross":
        au, av = np.abs(u), np.abs(v)
        return np.minimum(np.maximum(au - 1.0, av - 0.22), np.maximum(au - 0.22, av - 1.0))
    return np.abs(np.hypot(u, v) - 0.72) - 0.28  # ring


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB in [0, 1]; returns shape (*h.shape, 3)."""
    k = (np.array([5.0, 3.0, 1.0]) + (h[..., None] % 1.0) * 6.0) % 6.0
    return v[..., None] * (1.0 - s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))


def _alpha(
    rng: np.random.Generator, shapes: np.ndarray, radius: np.ndarray, margin: float
) -> np.ndarray:
    """Anti-aliased coverage (n, 32, 32) of randomly placed, rotated shapes of the given types."""
    n = shapes.shape[0]
    lo, hi = margin * radius, IMAGE_SIZE - margin * radius
    cx, cy = rng.uniform(lo, hi), rng.uniform(lo, hi)
    theta = rng.uniform(0.0, 2.0 * np.pi, n)
    grid = np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    r = radius[:, None, None]
    u, v = (c * dx + s * dy) / r, (c * dy - s * dx) / r
    dist = np.empty((n, IMAGE_SIZE, IMAGE_SIZE))
    for k in range(len(SHAPES)):
        idx = np.flatnonzero(shapes == k)
        dist[idx] = _sdf(k, u[idx], v[idx]) * r[idx]
    return np.clip(0.5 - dist, 0.0, 1.0)


def _paint(img: np.ndarray, alpha: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Composite one solid-colour layer over `img` (n, 32, 32, 3)."""
    a = alpha[..., None]
    return img * (1.0 - a) + rgb[:, None, None, :] * a


def render_shapes(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one uint8 (32, 32, 3) image per label in `labels`; all randomness comes from `rng`."""
    n = labels.shape[0]
    # Background: a muted colour with a random linear shading ramp.
    base = _hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0.0, 0.5, n), rng.uniform(0.15, 0.85, n))
    ramp_angle = rng.uniform(0.0, 2.0 * np.pi, n)
    ramp_amp = rng.uniform(0.0, 0.25, n)
    grid = (np.arange(IMAGE_SIZE) + 0.5) / IMAGE_SIZE - 0.5
    ramp = (
        np.cos(ramp_angle)[:, None, None] * grid[None, None, :]
        + np.sin(ramp_angle)[:, None, None] * grid[None, :, None]
    ) * ramp_amp[:, None, None]
    img = base[:, None, None, :] + ramp[..., None]
    # Clutter: small shapes of any type and any hue, drawn first so the labelled shape lies on top.
    for _ in range(_CLUTTER):
        kinds = rng.integers(0, len(SHAPES), n)
        alpha = _alpha(rng, kinds, rng.uniform(1.5, 4.5, n), margin=0.0)
        rgb = _hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0.3, 1.0, n), rng.uniform(0.3, 1.0, n))
        img = _paint(img, alpha, rgb)
    shape, family = labels // len(FAMILIES), labels % len(FAMILIES)
    hue_lo = np.array([_FAMILY_HUES[f][0] for f in FAMILIES])[family]
    hue_hi = np.array([_FAMILY_HUES[f][1] for f in FAMILIES])[family]
    rgb = _hsv_to_rgb(
        rng.uniform(hue_lo, hue_hi), rng.uniform(0.45, 1.0, n), rng.uniform(0.5, 1.0, n)
    )
    img = _paint(img, _alpha(rng, shape, rng.uniform(6.0, 11.0, n), margin=0.7), rgb)
    img = img + rng.normal(0.0, _NOISE_STD, img.shape)
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def shapes_arrays(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Balanced labels (shuffled) and their images, rendered in fixed-size batches."""
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES))
    images = np.concatenate(
        [render_shapes(labels[i : i + _CHUNK], rng) for i in range(0, n, _CHUNK)]
    )
    return images, labels


def build_shapes10(size: str, seed: int) -> DatasetDict:
    """Build the `train`/`test` DatasetDict (`img` Image, `label` ClassLabel) like hub cifar10."""
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r} for local:shapes10; known: {', '.join(SIZES)}")
    n_train, n_test = SIZES[size]
    features = Features({"img": Image(), "label": ClassLabel(names=list(CLASS_NAMES))})
    splits = {}
    for split, n, child in zip(
        ("train", "test"), (n_train, n_test), np.random.SeedSequence(seed).spawn(2), strict=True
    ):
        images, labels = shapes_arrays(n, np.random.default_rng(child))
        splits[split] = Dataset.from_dict({"img": list(images), "label": labels}, features=features)
    return DatasetDict(splits)
