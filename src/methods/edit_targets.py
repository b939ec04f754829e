"""What the unlearning edits need from a model: its text projections (``cond_emb``) and its VQ codebooks.

Methods depend on these attributes, not on model classes, so MoMask, BAMM or a tiny test module all work.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from src.common.errors import HmuError

COND_EMB = "cond_emb"


def find_cond_emb(model: nn.Module, *, what: str = "model") -> list[tuple[str, nn.Linear]]:
    """The text projections of ``model``: ``model.cond_emb`` if present, else every submodule named ``cond_emb``.

    Returns ``[(qualified_name, linear), ...]``; HmuError if there is none or one is not an ``nn.Linear``.
    """
    direct = getattr(model, COND_EMB, None)
    if isinstance(direct, nn.Module):
        found = [(COND_EMB, direct)]
    else:
        found = [(name, m) for name, m in model.named_modules() if name.rsplit(".", 1)[-1] == COND_EMB]
    if not found:
        raise HmuError(f"{what} ({type(model).__name__}) has no {COND_EMB} text projection to edit")
    for name, m in found:
        if not isinstance(m, nn.Linear):
            raise HmuError(f"{what} ({type(model).__name__}).{name} is a {type(m).__name__}, expected nn.Linear")
    return found


def cond_emb_layers(models: Sequence[nn.Module]) -> list[nn.Linear]:
    """All ``cond_emb`` projections of ``models`` in order (masked transformer first, then residual, as upstream)."""
    layers: list[nn.Linear] = []
    for i, model in enumerate(models):
        layers.extend(m for _, m in find_cond_emb(model, what=f"model {i}"))
    if len({(l.in_features) for l in layers}) > 1:
        raise HmuError("the cond_emb projections take different text-embedding sizes: "
                       + ", ".join(str(l.in_features) for l in layers))
    return layers


def codebook_layers(vq_model: nn.Module) -> list[nn.Module]:
    """The quantizer layers of a residual VQ: ``vq_model.quantizer.layers`` (RVQVAE) or ``vq_model.layers`` (ResidualVQ).

    Each must hold a 2-D ``codebook`` tensor (nb_code, code_dim); HmuError otherwise.
    """
    quantizer = getattr(vq_model, "quantizer", vq_model)
    layers = getattr(quantizer, "layers", None)
    if layers is None or len(layers) == 0:
        raise HmuError(f"VQ model ({type(vq_model).__name__}) has no quantizer.layers[i].codebook to edit")
    for i, layer in enumerate(layers):
        cb = getattr(layer, "codebook", None)
        if cb is None or getattr(cb, "ndim", 0) != 2:
            raise HmuError(f"VQ model ({type(vq_model).__name__}) quantizer.layers[{i}] has no 2-D codebook")
    return list(layers)
