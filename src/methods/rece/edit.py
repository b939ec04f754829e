"""RECE (Reliable and Efficient Concept Erasure, Gong et al. 2024): UCE, then repeatedly erase adversarial embeddings.

After an edit, some other text embedding ``c'`` may still produce the concept's ORIGINAL outputs. RECE finds it in
closed form (paper Eq. 8), summed over the edited projections l:

    c' = argmin_x  sum_l ||W_edit,l x - W_orig,l c||^2 + reg ||x||^2
       = (sum_l W_edit,lᵀ W_edit,l + reg I)⁻¹ (sum_l W_edit,lᵀ W_orig,l) c

(the bias cancels: both sides carry the same, unedited, b), and then erases it with UCE.

Variants:

- ``"paper"`` (default): per epoch, find ``c'`` for every concept under the current edit (edited vs ORIGINAL weights),
  add them to the erase set (each paired with its concept's target), and re-solve UCE from the ORIGINAL weights with
  the whole set (concepts plus every adversarial embedding so far). Re-solving from the original weights, rather than
  editing the current ones again, makes each epoch the exact minimiser of one objective anchored at the original
  model: the ``lamb ||W' - W||`` regulariser and the preserve targets ``W r`` always refer to the original model, so the
  retain outputs do not drift from edit to edit and earlier erasures are never undone by a later solve. UCE uses the
  bias-correct variant unless ``uce_variant`` says otherwise.
- ``"hmu"``: upstream (Mamiglia/hmu ``src/methods/rece.py``). Its ``close_form_emb_regzero`` multiplies the CURRENT
  weights with themselves on both sides, ``c' = (sum WᵀW + reg I)⁻¹ (sum WᵀW) c``: a regularised projection of ``c`` on
  the row space of the current weights, not an adversarial embedding (≈ c when in_dim <= sum of out_dims). Each epoch
  then applies upstream UCE (bias pulled into W) to the current, already edited, weights with only the new
  embeddings as the erase set; upstream did that in place on the modules, reproduced here on copies. Equals
  ``uce_rece_float{32,64}.npz``.
"""
from __future__ import annotations


import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from src.common.errors import HmuError

from src.methods.edit_targets import cond_emb_layers
from src.methods.uce.edit import as_pairs, set_weights, uce_weight

VARIANTS = ("paper", "hmu")


def adversarial_embedding(edited: Sequence[torch.Tensor], original: Sequence[torch.Tensor], concepts: torch.Tensor, *,
                          reg: float = 1e-3, variant: str = "paper") -> torch.Tensor:
    """Adversarial embeddings (n, D) of ``concepts`` (n, D) given the edited and original weights (out_l, D) per layer.

    ``variant="hmu"`` ignores ``original`` and uses the edited weights on both sides (upstream), computed as upstream
    does in the weights' dtype: ``inverse(reg I + sum WᵀW) @ sum WᵀW``, then applied to the concepts.
    """
    if variant not in VARIANTS:
        raise HmuError(f"unknown RECE variant {variant!r} (choose {', '.join(VARIANTS)})")
    concepts = torch.as_tensor(concepts)
    if concepts.ndim == 1:
        concepts = concepts[None]
    if variant == "hmu":
        W0 = edited[0]
        dt = {"dtype": W0.dtype, "device": W0.device}
        mat1 = torch.eye(W0.shape[1], **dt) * reg
        mat2 = torch.zeros(W0.shape[1], W0.shape[1], **dt)
        for W in edited:
            mat1 = mat1 + W.T @ W
            mat2 = mat2 + W.T @ W
        coef = torch.inverse(mat1) @ mat2
        return concepts.to(**dt) @ coef.T
    f64 = {"dtype": torch.float64, "device": edited[0].device}
    gram = reg * torch.eye(edited[0].shape[1], **f64)
    cross = torch.zeros_like(gram)
    for We, Wo in zip(edited, original, strict=True):
        We, Wo = We.to(**f64), Wo.to(**f64)
        gram = gram + We.T @ We
        cross = cross + We.T @ Wo
    # c'ᵀ = cᵀ crossᵀ gram⁻¹ (gram symmetric) => c' rows = solve(gram, cross cᵀ)ᵀ
    return torch.linalg.solve(gram, cross @ concepts.to(**f64).T).T.to(edited[0].dtype)


@dataclass
class RECEResult:
    """The edited copies after UCE and ``epochs`` RECE epochs, and what each epoch found (for logs and tests)."""

    models: tuple[nn.Module, ...]
    uce_models: tuple[nn.Module, ...]
    adv_emb: list[torch.Tensor] = field(default_factory=list)  # per epoch, (n, D)
    weights: list[list[torch.Tensor]] = field(default_factory=list)  # per epoch, per cond_emb layer, (out, D)


@torch.no_grad()
def rece(models: Sequence[nn.Module], forget_emb: torch.Tensor, target_emb: torch.Tensor,
         retain_emb: torch.Tensor | None = None, *, epochs: int = 3, variant: str = "paper",
         uce_variant: str | None = None, reg: float = 1e-3, lamb: float = 0.1, erase_scale: float = 0.1,
         preserve_scale: float = 0.1, technique: str = "tensor") -> RECEResult:
    """UCE then ``epochs`` RECE epochs on every ``cond_emb`` of ``models``; returns new models (inputs untouched).

    ``forget_emb`` (n, D), ``target_emb`` (n, D) or one row, ``retain_emb`` (m, D). ``uce_variant`` defaults to
    ``"bias"`` for ``variant="paper"`` and ``"hmu"`` for ``variant="hmu"``. Defaults as upstream (epochs 3 in its CLI;
    its script uses epochs 1, preserve_scale 0.5).
    """
    if variant not in VARIANTS:
        raise HmuError(f"unknown RECE variant {variant!r} (choose {', '.join(VARIANTS)})")
    if epochs < 0:
        raise HmuError(f"--epochs must be >= 0, got {epochs}")
    uce_variant = uce_variant or ("hmu" if variant == "hmu" else "bias")
    models = tuple(models)
    originals = cond_emb_layers(models)
    W_orig = [l.weight.detach().clone() for l in originals]
    biases = [None if l.bias is None else l.bias.detach().clone() for l in originals]
    forget_emb, target_emb, retain_emb = as_pairs(forget_emb, target_emb, retain_emb, dim=W_orig[0].shape[1])
    kw = {"variant": uce_variant, "lamb": lamb, "erase_scale": erase_scale, "preserve_scale": preserve_scale,
          "technique": technique}

    def solve(Ws, erase, targets):
        return [uce_weight(W, b, erase, targets, retain_emb, **kw) for W, b in zip(Ws, biases)]

    current = solve(W_orig, forget_emb, target_emb)
    uce_models = copy.deepcopy(models)
    set_weights(cond_emb_layers(uce_models), current)

    result = RECEResult(models=(), uce_models=uce_models)
    erase, targets = forget_emb, target_emb
    for _ in range(epochs):
        adv = adversarial_embedding(current, W_orig, forget_emb, reg=reg, variant=variant)
        if variant == "hmu":
            current = solve(current, adv, target_emb)
        else:
            erase = torch.cat([erase, adv.to(erase.dtype)])
            targets = torch.cat([targets, target_emb])
            current = solve(W_orig, erase, targets)
        result.adv_emb.append(adv)
        result.weights.append([w.clone() for w in current])

    new = copy.deepcopy(models)
    set_weights(cond_emb_layers(new), current)
    result.models = new
    return result
