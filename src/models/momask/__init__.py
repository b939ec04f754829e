"""MoMask model family: residual VQ-VAE, masked and residual transformers, length estimator."""
from .build import build_len_estimator, build_mask_transformer, build_res_transformer, build_vq
from .transformer import MaskTransformer, PositionalEncoding, ResidualTransformer
from .vq import RVQVAE, LengthEstimator, QuantizeEMAReset, ResidualVQ

__all__ = [
           "RVQVAE",
           "LengthEstimator",
           "MaskTransformer",
           "PositionalEncoding",
           "QuantizeEMAReset",
           "ResidualTransformer",
           "ResidualVQ",
           "build_len_estimator",
           "build_mask_transformer",
           "build_res_transformer",
           "build_vq",
]
