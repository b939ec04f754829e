"""The embedded procedural dataset ``synth``: HumanML3D layout, action ground truth, its own word vectors.

``generate_synth(out, *, n, seed, ...)`` writes it; ``python -m src.data.synth --out dataset/synth`` is the CLI.
"""
from __future__ import annotations


def generate_synth(out, *, n: int = 3000, seed: int = 0, **kwargs) -> dict:
    """See :func:`src.data.synth.generate.generate_synth` (imported lazily so ``--help`` stays instant)."""
    from .generate import generate_synth as _gen

    return _gen(out, n=n, seed=seed, **kwargs)


__all__ = ["generate_synth"]
