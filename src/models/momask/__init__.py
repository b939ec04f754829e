"""MoMask model family: residual VQ-VAE, masked and residual transformers, length estimator."""
from .build import build_len_estimator, build_mask_transformer, build_res_transformer, build_vq
from .transformer import MaskTransformer, PositionalEncoding, ResidualTransformer
from .vq import LengthEstimator, QuantizeEMAReset, ResidualVQ, RVQVAE

__all__ = ["RVQVAE", "ResidualVQ", "QuantizeEMAReset", "LengthEstimator", "MaskTransformer", "ResidualTransformer",
           "PositionalEncoding", "build_vq", "build_mask_transformer", "build_res_transformer", "build_len_estimator"]
