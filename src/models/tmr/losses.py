"""TMR losses: Gaussian KL between two diagonal distributions and InfoNCE with near-duplicate negative filtering."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cosine_sim_matrix(x: Tensor, y: Tensor) -> Tensor:
    """(N, D), (M, D) -> (N, M) cosine similarity of the L2-normalised rows."""
    return F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).transpose(-1, -2)


def kl_loss(q: tuple[Tensor, Tensor], p: tuple[Tensor, Tensor]) -> Tensor:
    """Element-mean KL(q || p) for diagonal Gaussians given as (mu, logvar) pairs of equal shape."""
    mu_q, logvar_q = q
    mu_p, logvar_p = p
    log_ratio = logvar_q - logvar_p
    div = 0.5 * (log_ratio.exp() + (mu_p - mu_q).pow(2) / logvar_p.exp() - 1 - log_ratio)
    return div.mean()


def negative_filter_mask(sent_emb: Tensor, *, threshold_selfsim: float) -> Tensor:
    """(B, D) unit sentence embeddings -> (B, B) bool, True for off-diagonal pairs too similar to be negatives.

    The threshold is on a [0, 1] score scale, so the cosine cut is ``2 * threshold - 1`` (0.80 -> cosine 0.6).
    """
    selfsim = sent_emb @ sent_emb.transpose(-1, -2)
    eye = torch.eye(selfsim.shape[0], dtype=torch.bool, device=selfsim.device)
    return (selfsim > 2 * threshold_selfsim - 1) & ~eye


def info_nce_with_filtering(text_latents: Tensor, motion_latents: Tensor, sent_emb: Tensor | None = None, *,
                            temperature: float, threshold_selfsim: float | None) -> Tensor:
    """Symmetric InfoNCE over (B, D) latents; negatives whose captions are near-duplicates are removed (-inf).

    Rows are texts, columns motions; the same filtered matrix is used in both directions.
    """
    logits = cosine_sim_matrix(text_latents, motion_latents) / temperature
    if sent_emb is not None and threshold_selfsim:
        logits = logits.masked_fill(negative_filter_mask(sent_emb, threshold_selfsim=threshold_selfsim),
                                    float("-inf"))
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.transpose(0, 1), labels)) / 2
