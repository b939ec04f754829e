"""What the attacks need from a model: conditioning features in, motions out, and two differentiable paths.

:class:`AttackTarget` is the interface; :class:`MoMaskTarget` implements it for MoMask around src/gen/generate.py's
MotionGenerator. :class:`MotionEmbedder` is the evaluator's motion encoder with gradients (``Evaluator.encode_motion``
runs under ``no_grad``).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from src.common.modes import eval_mode

FOOT_CONTACT_DIMS = 4


class AttackTarget(Protocol):
    cond_dim: int
    unit_length: int

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """(B,) captions -> conditioning features (B, cond_dim)."""

    def generate(self, cond: torch.Tensor, lengths: Sequence[int], *, generator: torch.Generator
                 ) -> list[np.ndarray]:
        """Real (discrete) decoding: features (B, cond_dim), frames (B,) -> raw motions (T_i, dim_pose)."""

    def relaxed_motion(self, cond: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
        """Differentiable stand-in for generation: (B, cond_dim) -> raw motions (B, max(lengths), dim_pose)."""

    def token_targets(self, motions: Sequence[np.ndarray]) -> Any:
        """What :meth:`token_loss` reconstructs, computed once from raw motions (the model's own tokens)."""

    def token_loss(self, cond: torch.Tensor, targets: Any, *, generator: torch.Generator) -> torch.Tensor:
        """Scalar training loss of the frozen model on ``targets`` conditioned on ``cond`` (B, cond_dim)."""


def _no_cudnn():
    # cuDNN's RNN backward refuses eval mode; the evaluator's GRU is run in eval mode with gradients here
    return torch.backends.cudnn.flags(enabled=False)


class _Features:
    """A text encoder that returns given conditioning features: rows of ``feats`` for keys "0".."B-1"."""

    def __init__(self, feats: torch.Tensor):
        self.feats = feats
        self.dim = int(feats.shape[1])

    def encode(self, keys: Sequence[str]) -> torch.Tensor:
        return self.feats[[int(k) for k in keys]]


@dataclass
class MoMaskTarget:
    """MoMask as an attack target, around a :class:`src.gen.generate.MotionGenerator` (the one generation path: its models,
    normalisation and sampling settings). The models are used as given (eval mode, never modified)."""

    gen: Any   # src.gen.generate.MotionGenerator

    @classmethod
    def from_models(cls, *, vq, mask, res, text_encoder, mean, std, **sampling) -> MoMaskTarget:
        from src.gen.generate import MotionGenerator

        return cls(MotionGenerator(vq=vq, mask=mask, res=res, text_encoder=text_encoder, mean=mean, std=std,
                                   **sampling))

    vq = property(lambda self: self.gen.vq)
    mask = property(lambda self: self.gen.mask)
    res = property(lambda self: self.gen.res)
    text_encoder = property(lambda self: self.gen.text_encoder)
    cond_scale = property(lambda self: self.gen.cond_scale)

    @property
    def cond_dim(self) -> int:
        return int(self.mask.clip_dim)

    @property
    def unit_length(self) -> int:
        return int(self.gen.unit_length)

    @property
    def device(self) -> torch.device:
        return next(self.mask.parameters()).device

    def _stats(self):
        dev = self.device
        return (torch.as_tensor(np.asarray(self.gen.mean, np.float32), device=dev),
                torch.as_tensor(np.asarray(self.gen.std, np.float32), device=dev))

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.text_encoder.encode(list(texts)).to(self.device, torch.float32)

    @torch.no_grad()
    def generate(self, cond: torch.Tensor, lengths: Sequence[int], *, generator: torch.Generator) -> list[np.ndarray]:
        """Real decoding from features through src/gen/generate.py: ``generate_from_features`` when it exists, otherwise its
        ``generate`` with a text encoder that hands back ``cond`` (the same computation)."""
        cond = cond.detach().to(self.device, torch.float32)
        if hasattr(self.gen, "generate_from_features"):
            return list(self.gen.generate_from_features(cond, list(lengths), generator=generator))
        shim = copy.copy(self.gen)
        shim.text_encoder = _Features(cond)
        return list(shim.generate([str(i) for i in range(len(cond))], list(lengths), generator=generator))

    def relaxed_motion(self, cond: torch.Tensor, lengths: Sequence[int], *, tau: float = 1.0) -> torch.Tensor:
        """One-step relaxed generation: from all-mask tokens, the guided base-layer logits -> softmax over the codebook
        -> straight-through code vectors (hard arg-max forward, soft gradient) -> VQ decoder -> raw features.

        Residual layers are left out: they refine details, the concept is carried by the base layer's tokens.
        """
        from src.models.momask.tools import lengths_to_mask

        dev = self.device
        lens = torch.as_tensor([int(n) for n in lengths], device=dev)
        tok = lens // self.unit_length
        n = int(tok.max())
        pad = ~lengths_to_mask(tok, n)
        ids = torch.where(pad, self.mask.pad_id, self.mask.mask_id)
        with eval_mode(self.vq, self.mask):
            logits = self.mask.forward_with_cond_scale(ids, cond, pad, cond_scale=self.cond_scale)  # (B, K, n)
            probs = F.softmax(logits.permute(0, 2, 1) / tau, dim=-1)                                 # (B, n, K)
            book = self.vq.quantizer.codebooks[0]                                                    # (K, D)
            soft = probs @ book
            hard = F.one_hot(probs.argmax(-1), book.shape[0]).to(book.dtype) @ book
            codes = (hard + soft - soft.detach()).masked_fill(pad.unsqueeze(-1), 0.0)
            x = self.vq.decoder(codes.permute(0, 2, 1))
        mean, std = self._stats()
        return x * std + mean

    @torch.no_grad()
    def token_targets(self, motions: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Base-layer VQ tokens of raw motions -> (ids (B, T'), token lengths (B,)) (pads = pad_id)."""
        dev = self.device
        mean, std = self._stats()
        unit = self.unit_length
        lens = [len(m) // unit * unit for m in motions]
        ids_list = []
        with eval_mode(self.vq):
            for m, n in zip(motions, lens):
                x = (torch.as_tensor(np.asarray(m[:n], np.float32), device=dev) - mean) / std
                code_idx, _ = self.vq.encode(x.unsqueeze(0))
                ids_list.append(code_idx[0, :, 0])
        tl = torch.tensor([len(i) for i in ids_list], device=dev)
        ids = torch.full((len(ids_list), int(tl.max())), self.mask.pad_id, dtype=torch.long, device=dev)
        for i, t in enumerate(ids_list):
            ids[i, : len(t)] = t
        return ids, tl

    def token_loss(self, cond: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor], *,
                   generator: torch.Generator) -> torch.Tensor:
        """The masked transformer's own training loss (cosine-scheduled masking, cross-entropy on masked tokens)."""
        ids, tl = targets
        with eval_mode(self.mask):  # no dropout, no condition drop: the model is frozen, only ``cond`` learns
            loss, _, _ = self.mask(ids, cond, tl, generator=generator)
        return loss


@dataclass
class MotionEmbedder:
    """The evaluator's motion embedding with gradients: raw (B, T, dim_pose) + lengths -> (B, D)."""

    model: Any          # src.models.evaluator.Evaluator
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_t2m(cls, ev) -> MotionEmbedder:
        """From :class:`src.models.t2m_evaluator.T2MEvaluator`."""
        return cls(ev.model, ev.mean, ev.std)

    def embed(self, raw: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
        cfg = self.model.config
        dev = raw.device
        mean = torch.as_tensor(np.asarray(self.mean, np.float32), device=dev)
        std = torch.as_tensor(np.asarray(self.std, np.float32), device=dev)
        lens = torch.as_tensor([int(n) for n in lengths])
        order = torch.argsort(-lens, stable=True)
        x = ((raw - mean) / std)[order.to(dev)]
        with eval_mode(self.model), _no_cudnn():
            mov = self.model.movement_encoder(x[..., : cfg.dim_pose - FOOT_CONTACT_DIMS])
            out = self.model.motion_encoder(mov, lens[order] // cfg.unit_length)
        res = torch.empty_like(out)
        res[order.to(out.device)] = out
        return res

    @torch.no_grad()
    def embed_motions(self, motions: Sequence[np.ndarray]) -> torch.Tensor:
        """Raw motions of any lengths -> (N, D), batched by equal length."""
        dev = next(self.model.parameters()).device
        out = [None] * len(motions)
        by_len: dict[int, list[int]] = {}
        unit = int(self.model.config.unit_length)
        for i, m in enumerate(motions):
            by_len.setdefault(len(m) // unit * unit, []).append(i)
        for n, idx in by_len.items():
            x = torch.as_tensor(np.stack([np.asarray(motions[i][:n], np.float32) for i in idx]), device=dev)
            e = self.embed(x, [n] * len(idx))
            for j, i in enumerate(idx):
                out[i] = e[j]
        return torch.stack(out)
