"""UCE (Unified Concept Editing, Gandikota et al. 2024): a closed-form edit of the text projections ``cond_emb``.

For each projection ``y = W x + b`` (CLIP text embedding -> transformer latent) UCE solves

    min_W'  lamb ||W' - W||^2 + erase_scale sum_i ||W' c_i - w_i||^2 + preserve_scale sum_r ||W' r - p_r||^2

    =>  W' = (lamb W + e sum_i w_i c_iᵀ + s sum_r p_r rᵀ) (lamb I + e sum_i c_i c_iᵀ + s sum_r r rᵀ)⁻¹

with concept embeddings ``c_i`` paired row by row with target embeddings ``t_i`` and preserved embeddings ``r``.
The output target of a concept is ``v_i = W t_i + b`` ("replace") or, by default ("tensor", as upstream), that output
with its component along the concept's own output ``u_i = (W c_i + b) / ||W c_i + b||`` removed.

Two variants, differing only in how the bias enters (b never changes in either):

- ``"bias"`` (default, ours): only ``W`` is solved for, so the targets are written for ``W`` alone:
  ``w_i = v_i - b`` (then ``W' c_i + b ≈ v_i``) and ``p_r = W r`` (then ``W' r + b ≈ W r + b``). With no concept pairs
  the solution is exactly ``W``; with dominant ``erase_scale`` the concept output lands on ``v_i``.
- ``"hmu"``: upstream's formula, ``w_i = v_i`` and ``p_r = W r + b``. The bias is counted twice at the output, so the
  edit pulls ``b`` into ``W`` and moves ``W`` even with no concept to erase. Kept for parity with
  ``uce_rece_float{32,64}.npz``; it follows upstream's order of operations (``mat1 @ inverse(mat2)``) in the layer dtype.

Defaults are upstream's function defaults (lamb 0.1, erase_scale 0.1, preserve_scale 0.1, technique "tensor");
upstream's ``scripts/eval/rece_uce.sh`` runs with ``preserve_scale 0.5``.
"""
from __future__ import annotations


import copy
from collections.abc import Sequence

import torch
from torch import nn

from src.common.errors import HmuError

from src.methods.edit_targets import cond_emb_layers

VARIANTS = ("bias", "hmu")
TECHNIQUES = ("tensor", "replace")


def as_pairs(forget_emb: torch.Tensor, target_emb: torch.Tensor, retain_emb: torch.Tensor | None, *, dim: int):
    """Check shapes: forget (n, dim), target (n, dim) or one row (dim,)/(1, dim) broadcast, retain (m, dim) or None."""
    forget_emb = torch.as_tensor(forget_emb)
    if forget_emb.ndim == 1:
        forget_emb = forget_emb[None]
    target_emb = torch.as_tensor(target_emb)
    if target_emb.ndim == 1:
        target_emb = target_emb[None]
    if target_emb.shape[0] == 1 and forget_emb.shape[0] != 1:
        target_emb = target_emb.expand(forget_emb.shape[0], -1)
    retain_emb = torch.zeros(0, dim) if retain_emb is None else torch.as_tensor(retain_emb)
    if retain_emb.ndim == 1:
        retain_emb = retain_emb[None]
    for name, x in (("forget", forget_emb), ("target", target_emb), ("retain", retain_emb)):
        if x.ndim != 2 or x.shape[1] != dim:
            raise HmuError(f"{name} embeddings have shape {tuple(x.shape)}, expected (N, {dim}) for cond_emb")
    if target_emb.shape[0] != forget_emb.shape[0]:
        raise HmuError(f"{forget_emb.shape[0]} forget embeddings but {target_emb.shape[0]} target embeddings "
                       "(give one target per concept, or a single one)")
    return forget_emb, target_emb, retain_emb


def concept_targets(W: torch.Tensor, b: torch.Tensor, forget_emb: torch.Tensor, target_emb: torch.Tensor, *,
                    technique: str = "tensor") -> torch.Tensor:
    """Output-space targets v (n, out) of each concept under ``y = W x + b``: the target's output, minus its part along
    the concept's own output direction for ``technique="tensor"``."""
    if technique not in TECHNIQUES:
        raise HmuError(f"unknown UCE technique {technique!r} (choose {', '.join(TECHNIQUES)})")
    out_t = target_emb @ W.T + b
    if technique == "replace":
        return out_t
    out_c = forget_emb @ W.T + b
    u = out_c / out_c.norm(dim=1, keepdim=True)
    return out_t - (u * out_t).sum(dim=1, keepdim=True) * u


def uce_weight(W: torch.Tensor, b: torch.Tensor | None, forget_emb: torch.Tensor, target_emb: torch.Tensor,
               retain_emb: torch.Tensor | None, *, variant: str = "bias", lamb: float = 0.1, erase_scale: float = 0.1,
               preserve_scale: float = 0.1, technique: str = "tensor") -> torch.Tensor:
    """The edited weight W' (out, in) of one projection ``y = W x + b``; see the module docstring. Inputs untouched."""
    if variant not in VARIANTS:
        raise HmuError(f"unknown UCE variant {variant!r} (choose {', '.join(VARIANTS)})")
    W = W.detach()
    b = torch.zeros(W.shape[0], dtype=W.dtype, device=W.device) if b is None else b.detach()
    forget_emb, target_emb, retain_emb = as_pairs(forget_emb, target_emb, retain_emb, dim=W.shape[1])
    if variant == "hmu":
        return _uce_weight_hmu(W, b, forget_emb, target_emb, retain_emb, lamb=lamb, erase_scale=erase_scale,
                               preserve_scale=preserve_scale, technique=technique)
    # Ours: float64 and a linear solve (the normal matrix can be ill-conditioned when lamb is small).
    f64 = {"dtype": torch.float64, "device": W.device}
    W64, b64 = W.to(**f64), b.to(**f64)
    c, t, r = forget_emb.to(**f64), target_emb.to(**f64), retain_emb.to(**f64)
    v = concept_targets(W64, b64, c, t, technique=technique)
    lhs = lamb * W64 + erase_scale * (v - b64).T @ c + preserve_scale * (r @ W64.T).T @ r
    gram = lamb * torch.eye(W.shape[1], **f64) + erase_scale * c.T @ c + preserve_scale * r.T @ r
    # W' gram = lhs, gram symmetric  =>  W'ᵀ = gram⁻¹ lhsᵀ
    return torch.linalg.solve(gram, lhs.T).T.to(W.dtype)


def _uce_weight_hmu(W, b, forget_emb, target_emb, retain_emb, *, lamb, erase_scale, preserve_scale, technique):
    """Upstream ``edit_model_adversarial`` for one layer, same operations in the same order, in W's dtype."""
    if technique not in TECHNIQUES:
        raise HmuError(f"unknown UCE technique {technique!r} (choose {', '.join(TECHNIQUES)})")
    dt = {"dtype": W.dtype, "device": W.device}
    mat1 = lamb * W
    mat2 = lamb * torch.eye(W.shape[1], **dt)
    for c, t in zip(forget_emb.to(**dt), target_emb.to(**dt)):
        out_t = torch.nn.functional.linear(t, W, b)
        if technique == "tensor":
            u = torch.nn.functional.linear(c, W, b)
            u = u / u.norm()
            value = out_t - (u * out_t).sum() * u
        else:
            value = out_t
        mat1 = mat1 + erase_scale * torch.outer(value, c)
        mat2 = mat2 + erase_scale * torch.outer(c, c)
    for r in retain_emb.to(**dt):
        mat1 = mat1 + preserve_scale * torch.outer(torch.nn.functional.linear(r, W, b), r)
        mat2 = mat2 + preserve_scale * torch.outer(r, r)
    return mat1 @ torch.inverse(mat2)


def set_weights(layers: Sequence[nn.Linear], weights: Sequence[torch.Tensor]) -> None:
    """Write new weights into (already copied) layers, keeping each Parameter object, dtype and device."""
    with torch.no_grad():
        for layer, w in zip(layers, weights):
            layer.weight.copy_(w)


@torch.no_grad()
def uce(models: Sequence[nn.Module], forget_emb: torch.Tensor, target_emb: torch.Tensor,
        retain_emb: torch.Tensor | None = None, *, variant: str = "bias", lamb: float = 0.1, erase_scale: float = 0.1,
        preserve_scale: float = 0.1, technique: str = "tensor") -> tuple[nn.Module, ...]:
    """UCE on every ``cond_emb`` of ``models`` (e.g. ``[masked_transformer, res_transformer]``); returns edited copies.

    ``forget_emb`` (n, D) text embeddings of the concepts, ``target_emb`` (n, D) or one row, ``retain_emb`` (m, D).
    Each projection is solved independently from its own weights. The input models are not modified.
    """
    models = tuple(models)
    new = copy.deepcopy(models)  # one deepcopy keeps submodules shared between the models shared
    layers = cond_emb_layers(new)
    weights = [uce_weight(l.weight, l.bias, forget_emb, target_emb, retain_emb, variant=variant, lamb=lamb,
                          erase_scale=erase_scale, preserve_scale=preserve_scale, technique=technique) for l in layers]
    set_weights(layers, weights)
    return new
