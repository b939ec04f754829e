"""Content hashes of arrays (cache keys of evaluator embeddings and of the evaluator itself)."""
from __future__ import annotations

import hashlib

import numpy as np


def hash_arrays(h: hashlib._Hash, *arrays: np.ndarray) -> None:
    """Feed dtype, shape and bytes of each array into ``h``."""
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
