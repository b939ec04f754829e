"""Masking, schedules and sampling helpers shared by the MoMask transformers (pure tensor functions)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True at valid (non-padded) positions."""
    return torch.arange(max_len, device=lengths.device).expand(len(lengths), max_len) < lengths.unsqueeze(1)


def remask(scores: torch.Tensor, m_lens: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """Mask-predict's re-masking at ``timestep`` in [0, 1]: (B, T) bool, True at each row's cos-scheduled number
    (at least 1) of lowest-confidence positions (pads carry score 1e5, so they come last)."""
    num_masked = torch.round(cosine_schedule(timestep) * m_lens).clamp(min=1)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < num_masked.unsqueeze(-1)


def decode_start(m_lens: torch.Tensor, *, pad_id: int, mask_id: int, device) -> tuple[torch.Tensor, ...]:
    """Mask-predict's first state: token lengths (B,) -> (lengths on ``device``, padding mask (B, max len)
    True = pad, ids (all ``mask_id``, ``pad_id`` at pads), confidence scores (0, 1e5 at pads: never re-masked))."""
    m_lens = m_lens.to(device)
    padding_mask = ~lengths_to_mask(m_lens, int(m_lens.max()))
    return (m_lens, padding_mask, torch.where(padding_mask, pad_id, mask_id), torch.where(padding_mask, 1e5, 0.0))


def cosine_schedule(t: torch.Tensor) -> torch.Tensor:
    """Fraction of tokens masked at time t in [0, 1]: cos(pi t / 2) (1 at t=0, 0 at t=1)."""
    return torch.cos(t * math.pi * 0.5)


def q_schedule(bs: int, *, low: int, high: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Residual layer ids in [low, high) for training, biased towards small ids (1 - cosine of a uniform draw)."""
    u = torch.rand((bs,), generator=generator, device=device)
    return torch.round((1 - cosine_schedule(u)) * (high - low - 1)).long() + low


def uniform(shape, *, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device)


def mask_subset(mask: torch.Tensor, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep each True of ``mask`` with probability ``prob``."""
    return (torch.rand(mask.shape, generator=generator, device=mask.device) < prob) & mask


def gumbel_noise(t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gumbel noise shaped and *laid out* like ``t``, as upstream's ``torch.zeros_like(t).uniform_(0, 1)``.

    ``empty_like`` keeps ``t``'s strides, so the uniform draws fill ``t``'s memory order: for the generate loops'
    permuted (B, N, K) logits that is (B, K, N) order. A contiguous ``torch.rand(t.shape)`` would draw the same
    numbers but place them elsewhere, and the sampled ids would differ from upstream's for the same seed.
    """
    u = torch.empty_like(t).uniform_(0, 1, generator=generator)
    return -torch.log((-torch.log(u.clamp(min=1e-20))).clamp(min=1e-20))


def gumbel_sample(t: torch.Tensor, *, temperature: float = 1.0, dim: int = -1,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    return ((t / max(temperature, 1e-10)) + gumbel_noise(t, generator)).argmax(dim=dim)


def top_k(logits: torch.Tensor, thres: float = 0.9, dim: int = -1) -> torch.Tensor:
    """Keep the ceil((1 - thres) * n) largest logits along ``dim``; the rest become -inf."""
    k = max(1, math.ceil((1 - thres) * logits.shape[dim]))
    val, ind = logits.topk(k, dim=dim)
    return torch.full_like(logits, float("-inf")).scatter_(dim, ind, val)


def categorical_sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample one class per row of (..., C) probabilities, exactly as upstream's ``Categorical(probs).sample()``.

    Categorical renormalises (``probs / probs.sum(-1)``) and draws ``torch.multinomial(rows, 1, True)`` over
    every row in row-major order (padded positions included), so the RNG stream and the ids match upstream's.
    """
    probs = probs / probs.sum(-1, keepdim=True)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, True, generator=generator).view(probs.shape[:-1])


def cal_performance(pred: torch.Tensor, labels: torch.Tensor, ignore_index: int):
    """Cross-entropy over (B, C, N) logits, arg-max prediction (B, N) and accuracy over non-ignored labels."""
    loss = F.cross_entropy(pred, labels, ignore_index=ignore_index)
    pred_id = pred.argmax(dim=1)
    keep = labels.ne(ignore_index)
    acc = (pred_id == labels).masked_select(keep).float().mean().item() if keep.any() else 0.0
    return loss, pred_id, acc
