"""Build MoMask models from typed configs (sizes only; weights come from src.models.checkpoint)."""
from __future__ import annotations

from src.config import LenEstConfig, MaskTransConfig, ResTransConfig, VQConfig

from .transformer import MaskTransformer, ResidualTransformer
from .vq import RVQVAE, LengthEstimator


def build_vq(cfg: VQConfig, *, input_width: int | None = None) -> RVQVAE:
    """RVQVAE for ``cfg``; ``input_width`` defaults to the dataset's feature size (dim_pose)."""
    width = cfg.dataset_spec.dim_pose if input_width is None else input_width
    return RVQVAE(**cfg.model_kwargs(input_width=width))


def build_mask_transformer(cfg: MaskTransConfig, vq: VQConfig, *, clip_dim: int | None = None) -> MaskTransformer:
    kw = cfg.model_kwargs(vq)
    if clip_dim is not None:
        kw["clip_dim"] = clip_dim
    return MaskTransformer(**kw)


def build_res_transformer(cfg: ResTransConfig, vq: VQConfig, *, clip_dim: int | None = None) -> ResidualTransformer:
    kw = cfg.model_kwargs(vq)
    if clip_dim is not None:
        kw["clip_dim"] = clip_dim
    return ResidualTransformer(**kw)


def build_len_estimator(cfg: LenEstConfig | None = None, *, input_size: int | None = None,
                        output_size: int | None = None) -> LengthEstimator:
    cfg = cfg or LenEstConfig()
    return LengthEstimator(input_size=input_size or cfg.input_size, output_size=output_size or cfg.output_size)
