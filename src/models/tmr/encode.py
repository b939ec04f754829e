"""TMR encodings in evaluation mode: motions and token lists -> mean latents (retrieval, split refinement)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def encode_motions(model, motions: Sequence[Any], *, batch_size: int = 64):
    """(T_i, D) normalised numpy motions -> (N, latent) mean latents, on the model's device."""
    import numpy as np
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(motions), batch_size):
            chunk = motions[i:i + batch_size]
            t = max(len(m) for m in chunk)
            x = np.zeros((len(chunk), t, chunk[0].shape[1]), np.float32)
            for j, m in enumerate(chunk):
                x[j, :len(m)] = m
            mask = torch.arange(t)[None] < torch.tensor([len(m) for m in chunk])[:, None]
            out.append(model.encode(torch.from_numpy(x).to(device), mask.to(device), modality="motion",
                                    sample_mean=True))
    return torch.cat(out)


def encode_texts(model, text_side, tokens_list: Sequence[Sequence[str]], *, batch_size: int = 256):
    """Token lists -> (N, latent) mean text latents, on the model's device."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(tokens_list), batch_size):
            x, mask = text_side.token_features(tokens_list[i:i + batch_size])
            out.append(model.encode(x.to(device), mask.to(device), modality="text", sample_mean=True))
    return torch.cat(out)
