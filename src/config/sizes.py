"""The one home of a transformer stack's sizes.

MoMask's and BAMM's masked transformers and TMR's ACTOR-style encoders and decoder are all a
``torch.nn.TransformerEncoder`` sized by the same five numbers. Their configs inherit them from
:class:`TransformerSizes` instead of declaring them again; MoMask's opt.txt spells two of them ``n_layers`` and
``n_heads`` (upstream's file format) and turns them into these with ``sizes()``.
"""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformerSizes:
    """Width, feed-forward size, depth, heads and dropout of a transformer stack (defaults: upstream's released
    HumanML3D MoMask/BAMM transformers)."""

    latent_dim: int = 384
    ff_size: int = 1024
    num_layers: int = 8
    num_heads: int = 6
    dropout: float = 0.2

    def size_kwargs(self) -> dict[str, Any]:
        """``{latent_dim, ff_size, num_layers, num_heads, dropout}``: the keyword arguments of a model's constructor."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(TransformerSizes)}


SIZE_FIELDS = tuple(f.name for f in dataclasses.fields(TransformerSizes))

__all__ = ["SIZE_FIELDS", "TransformerSizes"]
