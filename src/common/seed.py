"""Seeding: one call fixes python, numpy and torch; library code takes explicit generators instead."""
from __future__ import annotations

import random


def fix_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def torch_generator(seed: int, device=None):
    import torch

    g = torch.Generator(device=device or "cpu")
    g.manual_seed(int(seed))
    return g
