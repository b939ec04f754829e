"""TMR: text and motion encoders into one latent space, a shared motion decoder, and its training loss."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import TMRConfig
from .losses import cosine_sim_matrix, info_nce_with_filtering, kl_loss
from .modules import ACTORStyleDecoder, ACTORStyleEncoder

Modality = Literal["auto", "text", "motion"]
MODULE_NAMES = ("motion_encoder", "text_encoder", "motion_decoder")


def lengths_to_mask(lengths: Sequence[int] | Tensor, *, max_len: int | None = None,
                    device: torch.device | None = None) -> Tensor:
    """(B,) lengths -> (B, T) bool, True on valid frames; T = max(lengths) unless given."""
    lengths = torch.as_tensor(lengths, device=device)
    t = int(lengths.max()) if max_len is None else max_len
    return torch.arange(t, device=lengths.device)[None] < lengths[:, None]


def get_sim_matrix(text_latents: Tensor, motion_latents: Tensor) -> Tensor:
    """(N, D), (M, D) -> (N, M) cosine similarities, text rows x motion columns."""
    return cosine_sim_matrix(text_latents, motion_latents)


def get_score_matrix(text_latents: Tensor, motion_latents: Tensor) -> Tensor:
    """Cosine similarity mapped to [0, 1]: sim / 2 + 0.5."""
    return get_sim_matrix(text_latents, motion_latents) / 2 + 0.5


class TMR(nn.Module):
    """Text-to-motion retrieval model (Petrovich et al. 2023). The three submodules are passed in, not built here."""

    def __init__(self, *, motion_encoder: ACTORStyleEncoder, text_encoder: ACTORStyleEncoder,
                 motion_decoder: ACTORStyleDecoder, config: TMRConfig) -> None:
        super().__init__()
        self.motion_encoder = motion_encoder
        self.text_encoder = text_encoder
        self.motion_decoder = motion_decoder
        self.config = config
        self.vae = config.vae
        self.fact = 1.0 if config.fact is None else config.fact
        # Training samples the VAE (upstream default); retrieval passes sample_mean=True explicitly.
        self.sample_mean = config.sample_mean

    @classmethod
    def from_config(cls, config: TMRConfig) -> TMR:
        """Build fresh modules in upstream's order (motion encoder, text encoder, decoder), so seeded inits match."""
        return cls(motion_encoder=ACTORStyleEncoder(config.motion_encoder),
                   text_encoder=ACTORStyleEncoder(config.text_encoder),
                   motion_decoder=ACTORStyleDecoder(config.motion_decoder), config=config)

    def _find_encoder(self, x: Tensor, modality: Modality) -> ACTORStyleEncoder:
        if modality == "text":
            return self.text_encoder
        if modality == "motion":
            return self.motion_encoder
        if modality != "auto":
            raise ValueError(f"modality must be 'auto', 'text' or 'motion', not {modality!r}")
        m, t = self.motion_encoder.nfeats, self.text_encoder.nfeats
        if m == t:
            raise ValueError("cannot pick the encoder from the feature size: text and motion both have "
                             f"{m} features (pass modality=)")
        if x.shape[-1] == m:
            return self.motion_encoder
        if x.shape[-1] == t:
            return self.text_encoder
        raise ValueError(f"input has {x.shape[-1]} features; motion expects {m}, text {t}")

    def encode(self, x: Tensor, mask: Tensor, *, modality: Modality = "auto", sample_mean: bool | None = None,
               fact: float | None = None, generator: torch.Generator | None = None,
               return_distribution: bool = False) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """x (B, T, F), mask (B, T) -> latent (B, D) [, (mu, logvar)].

        ``sample_mean`` returns mu; otherwise mu + fact * eps * std with eps drawn from ``generator``.
        """
        sample_mean = self.sample_mean if sample_mean is None else sample_mean
        fact = self.fact if fact is None else fact
        encoded = self._find_encoder(x, modality)(x, mask)
        if not self.vae:
            return (encoded[:, 0], None) if return_distribution else encoded[:, 0]
        mu, logvar = encoded.unbind(1)
        if sample_mean:
            latent = mu
        else:
            std = (0.5 * logvar).exp()
            eps = torch.randn(std.shape, generator=generator, dtype=std.dtype, device=std.device)
            latent = mu + fact * eps * std
        return (latent, (mu, logvar)) if return_distribution else latent

    def decode(self, latent: Tensor, *, mask: Tensor | None = None,
               lengths: Sequence[int] | Tensor | None = None) -> Tensor:
        """latent (B, D) -> motion features (B, T, nfeats); give ``mask`` (B, T) or ``lengths`` (B,)."""
        if mask is None:
            if lengths is None:
                raise ValueError("decode needs mask= or lengths=")
            mask = lengths_to_mask(lengths, device=latent.device)
        return self.motion_decoder(latent, mask)

    def forward(self, x: Tensor, mask: Tensor, *, out_mask: Tensor, sample_mean: bool | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
        """Encode x then decode to ``out_mask`` frames -> (motions, latent, (mu, logvar))."""
        latent, dists = self.encode(x, mask, sample_mean=sample_mean, generator=generator, return_distribution=True)
        return self.decode(latent, mask=out_mask), latent, dists

    def compute_loss(self, *, text_x: Tensor, text_mask: Tensor, motion_x: Tensor, motion_mask: Tensor,
                     sent_emb: Tensor | None = None, generator: torch.Generator | None = None,
                     decoder: bool = True) -> dict[str, Tensor]:
        """Upstream's training objective: {'recons', 'kl', 'latent', 'contrastive', 'loss'} (scalar tensors).

        recons = SmoothL1(text->motion) + SmoothL1(motion->motion) over all padded elements; kl sums four element-mean
        KLs (t||m, m||t, m||N(0,I), t||N(0,I)); latent = SmoothL1(t, m); loss = sum(lmd[k] * losses[k]).
        ``decoder=False`` (for ``lmd['recons'] == 0``) never runs the decoder and leaves out 'recons': the same
        other terms (the same latent draws from ``generator``) in about a third of a tiny-preset step.
        """
        t_lat, t_dists = self.encode(text_x, text_mask, modality="text", generator=generator,
                                     return_distribution=True)
        t_motions = self.decode(t_lat, mask=motion_mask) if decoder else None
        m_lat, m_dists = self.encode(motion_x, motion_mask, modality="motion", generator=generator,
                                     return_distribution=True)
        losses: dict[str, Tensor] = {}
        if decoder:
            m_motions = self.decode(m_lat, mask=motion_mask)
            losses["recons"] = F.smooth_l1_loss(t_motions, motion_x) + F.smooth_l1_loss(m_motions, motion_x)
        if self.vae:
            ref = (torch.zeros_like(m_dists[0]), torch.zeros_like(m_dists[1]))
            losses["kl"] = (kl_loss(t_dists, m_dists) + kl_loss(m_dists, t_dists)
                            + kl_loss(m_dists, ref) + kl_loss(t_dists, ref))
        losses["latent"] = F.smooth_l1_loss(t_lat, m_lat)
        losses["contrastive"] = info_nce_with_filtering(t_lat, m_lat, sent_emb, temperature=self.config.temperature,
                                                        threshold_selfsim=self.config.threshold_selfsim)
        lmd = self.config.lmd
        losses["loss"] = sum(lmd[k] * v for k, v in losses.items() if k in lmd)
        return losses
