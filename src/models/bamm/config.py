"""BAMM configs: the model's sizes (``BAMMConfig``) and its opt.txt options (``BAMMTransConfig``)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from src.common.errors import HmuError
from src.config import MaskTransConfig, VQConfig
from src.config.sizes import TransformerSizes

TRANS_KINDS = ("official",)


@dataclass(frozen=True, kw_only=True)
class BAMMConfig(TransformerSizes):
    """Sizes of BAMM's bidirectional autoregressive masked transformer.

    Token ids: ``0..num_tokens-1`` codes, ``end_id = num_tokens``, ``pad_id = num_tokens + 1``,
    ``mask_id = num_tokens + 2``; the head predicts ``num_tokens + 1`` classes (codes + END).
    """

    code_dim: int
    num_tokens: int
    # latent_dim, ff_size, num_layers, num_heads, dropout: src.config.sizes.TransformerSizes (released BAMM's)
    clip_dim: int = 512
    cond_drop_prob: float = 0.1
    trans: str = "official"

    def __post_init__(self) -> None:
        if self.trans not in TRANS_KINDS:
            raise HmuError(f"BAMM trans={self.trans!r} is not supported (only {', '.join(TRANS_KINDS)}; the released "
                           "model uses 'official')")

    @property
    def end_id(self) -> int:
        return self.num_tokens

    @property
    def pad_id(self) -> int:
        return self.num_tokens + 1

    @property
    def mask_id(self) -> int:
        return self.num_tokens + 2


@dataclasses.dataclass(kw_only=True)
class BAMMTransConfig(MaskTransConfig):
    """BAMM's opt.txt (its train options add ``--trans``; its base options default to ``./log/t2m``)."""

    checkpoints_dir: str = "./log/t2m"
    trans: str = "official"

    def model_config(self, vq: VQConfig | None = None, *, code_dim: int | None = None,
                     num_tokens: int | None = None) -> BAMMConfig:
        """Sizes from this file plus the VQ's (opt.txt has no code_dim/num_tokens: upstream reads them from the VQ)."""
        code_dim = vq.code_dim if vq is not None else code_dim
        num_tokens = vq.nb_code if vq is not None else num_tokens
        if code_dim is None or num_tokens is None:
            raise HmuError("BAMM needs the VQ's code_dim and nb_code (pass the VQ opt.txt)")
        return BAMMConfig(code_dim=code_dim, num_tokens=num_tokens, **self.sizes().size_kwargs(),
                          clip_dim=self.clip_dim, cond_drop_prob=self.cond_drop_prob, trans=self.trans)
