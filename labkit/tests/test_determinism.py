import random

import numpy as np
import torch

from labkit.determinism import derive_seed, generator, seed_everything


def draw():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_repeats_all_generators():
    flags = seed_everything(7)
    a = draw()
    seed_everything(7)
    assert draw() == a
    seed_everything(8)
    assert draw() != a
    assert flags["seed"] == 7 and flags["torch_deterministic_algorithms"] is True
    assert flags["pythonhashseed"] == "7"


def test_derive_seed_is_stable_and_sensitive():
    assert derive_seed(1234, "train", 5, 3) == derive_seed(1234, "train", 5, 3)
    assert derive_seed(1234, "train", 5, 3) != derive_seed(1234, "train", 5, 4)
    assert derive_seed(1, 23) != derive_seed(12, 3)
    # pinned value: the derivation must not change between versions, or old runs stop replaying
    assert derive_seed(0) == 3456079177858693020


def test_generator_independent_of_global_state():
    g1 = torch.rand(3, generator=generator("x", 1))
    torch.manual_seed(99)
    g2 = torch.rand(3, generator=generator("x", 1))
    assert torch.equal(g1, g2)
