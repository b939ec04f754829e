"""Typed configs of the MoMask family, field names and defaults as upstream's option parsers write them."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from .base import OptConfig

TEXT_ENCODERS = ("clip", "minilm", "embedded")


@dataclasses.dataclass(kw_only=True)
class _RunFields(OptConfig):
    name: str = "test"
    dataset_name: str = "t2m"
    checkpoints_dir: str = "./checkpoints"
    gpu_id: int = -1
    seed: int = 3407
    batch_size: int = 64
    max_epoch: int = 500
    lr: float = 2e-4
    gamma: float = 0.1
    milestones: list[int] = dataclasses.field(default_factory=lambda: [50_000])
    warm_up_iter: int = 2000
    is_train: bool = True
    is_continue: bool = False
    log_every: int = 50
    eval_every_e: int = 10
    save_latest: int = 500


@dataclasses.dataclass(kw_only=True)
class VQConfig(_RunFields):
    """Residual VQ-VAE options (options/vq_option.py)."""

    batch_size: int = 256
    max_epoch: int = 50
    milestones: list[int] = dataclasses.field(default_factory=lambda: [150_000, 250_000])
    log_every: int = 10
    eval_every_e: int = 1
    window_size: int = 64
    weight_decay: float = 0.0
    commit: float = 0.02
    loss_vel: float = 0.5
    recons_loss: str = "l1_smooth"
    code_dim: int = 512
    nb_code: int = 512
    mu: float = 0.99
    down_t: int = 2
    stride_t: int = 2
    width: int = 512
    depth: int = 3
    dilation_growth_rate: int = 3
    output_emb_width: int = 512
    vq_act: str = "relu"
    vq_norm: str | None = None
    num_quantizers: int = 3
    shared_codebook: bool = False
    quantize_dropout_prob: float = 0.2
    ext: str = "default"
    save_every_e: int = 2
    feat_bias: float = 5.0
    which_epoch: str = "all"
    vq_name: str = "rvq_nq6_dc512_nc512_noshare_qdp0.2"

    def model_kwargs(self, *, input_width: int) -> dict:
        """Keyword arguments of ``RVQVAE`` (``input_width`` = feature size of the dataset)."""
        return {"input_width": input_width, "nb_code": self.nb_code, "code_dim": self.code_dim,
                    "output_emb_width": self.output_emb_width, "down_t": self.down_t, "stride_t": self.stride_t,
                    "width": self.width, "depth": self.depth, "dilation_growth_rate": self.dilation_growth_rate,
                    "activation": self.vq_act, "norm": self.vq_norm, "num_quantizers": self.num_quantizers,
                    "shared_codebook": self.shared_codebook, "quantize_dropout_prob": self.quantize_dropout_prob,
                    "mu": self.mu}


@dataclasses.dataclass(kw_only=True)
class _TransFields(_RunFields):
    HMU_ONLY: ClassVar[tuple[str, ...]] = ("text_encoder", "clip_dim")

    vq_name: str = "rvq"
    latent_dim: int = 384
    n_heads: int = 6
    n_layers: int = 8
    ff_size: int = 1024
    dropout: float = 0.2
    max_motion_length: int = 196
    unit_length: int = 4
    force_mask: bool = False
    cond_drop_prob: float = 0.1
    gumbel_sample: bool = False
    share_weight: bool = False
    # hmu-only: which text encoder produced the conditioning, and its size (upstream: CLIP, 512)
    text_encoder: str = "clip"
    clip_dim: int = 512

    def __post_init__(self):
        _check_text_encoder(self.text_encoder)


def _check_text_encoder(name: str) -> None:
    if name not in TEXT_ENCODERS:
        from src.common.errors import HmuError

        raise HmuError(f"text_encoder must be one of {', '.join(TEXT_ENCODERS)}, got '{name}'")


@dataclasses.dataclass(kw_only=True)
class MaskTransConfig(_TransFields):
    """Masked transformer options (options/train_option.py::TrainT2MOptions)."""

    def model_kwargs(self, vq: VQConfig) -> dict:
        """``MaskTransformer`` arguments; token count and code size come from the VQ (upstream does the same)."""
        return {"code_dim": vq.code_dim, "num_tokens": vq.nb_code, "latent_dim": self.latent_dim, "ff_size": self.ff_size,
                    "num_layers": self.n_layers, "num_heads": self.n_heads, "dropout": self.dropout, "clip_dim": self.clip_dim,
                    "cond_drop_prob": self.cond_drop_prob}


@dataclasses.dataclass(kw_only=True)
class ResTransConfig(_TransFields):
    """Residual transformer options (same parser as the masked transformer, ``--share_weight`` used)."""

    cond_drop_prob: float = 0.2

    def model_kwargs(self, vq: VQConfig) -> dict:
        return {"code_dim": vq.code_dim, "num_tokens": vq.nb_code, "num_quantizers": vq.num_quantizers,
                    "shared_codebook": vq.shared_codebook, "latent_dim": self.latent_dim, "ff_size": self.ff_size,
                    "num_layers": self.n_layers, "num_heads": self.n_heads, "dropout": self.dropout, "clip_dim": self.clip_dim,
                    "cond_drop_prob": self.cond_drop_prob, "share_weight": self.share_weight}


@dataclasses.dataclass(kw_only=True)
class LenEstConfig(OptConfig):
    """Length estimator options (upstream writes no opt.txt for it; ours does). Output bins are unit_length frames."""

    HMU_ONLY: ClassVar[tuple[str, ...]] = ("text_encoder", "input_size", "output_size")

    name: str = "length_estimator"
    dataset_name: str = "t2m"
    checkpoints_dir: str = "./checkpoints"
    gpu_id: int = -1
    batch_size: int = 64
    unit_length: int = 4
    max_text_len: int = 20
    max_epoch: int = 300
    lr: float = 1e-4
    is_continue: bool = False
    log_every: int = 50
    save_every_e: int = 5
    eval_every_e: int = 3
    save_latest: int = 500
    text_encoder: str = "clip"
    input_size: int = 512
    output_size: int = 50

    def __post_init__(self):
        _check_text_encoder(self.text_encoder)

    def model_kwargs(self) -> dict:
        return {"input_size": self.input_size, "output_size": self.output_size}
