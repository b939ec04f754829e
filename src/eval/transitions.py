"""Transition artefacts at LCR's replaced codes: motion quality on the frames decoded from a replaced code and their
neighbours, for the LCR-edited model and, on the same frames, for the original.

LCR edits only the VQ codebook (the rows of the removed codes get replacement vectors); the transformers are the
original's. So with the same prompts, lengths and seed both models sample the same code ids and differ only in what
the decoder makes of the replaced ones: the frames in question are where the ids hit a removed code
(:func:`src.eval.quality.replaced_token_mask`), each token's ``unit_length`` frames widened by ``pad`` frames each
side (:func:`src.eval.quality.frames_from_tokens`). The mask comes from the edited model's ids and is applied to both
models' motions; ``ids_equal`` records whether the two models did sample the same ids (they do for an LCR run used
with the original transformers; if not, the original's frames are those same positions, not the same tokens).

The masked figures are :func:`src.eval.quality.quality_metrics`'s ``masked_*`` keys (jerk, skating, floor, bone
drift on the samples that touch a masked frame); the unmasked keys come along for the whole motions.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from src.common.errors import HmuError

DEFAULT_PAD = 4   # frames each side of a replaced token's frames: one token's worth (unit_length 4)


def removed_codes(checkpoint: str | os.PathLike | Mapping[str, Any]) -> dict[int, list[int]]:
    """``{layer: [codes]}`` of an LCR checkpoint (its upstream ``removed_codes``: one list per layer), from the file
    (loaded with ``weights_only``) or an already loaded dict. Layers with no code are left out."""
    from src.common.io import torch_load

    ck = checkpoint if isinstance(checkpoint, Mapping) else torch_load(checkpoint, "LCR checkpoint")
    removed = ck.get("removed_codes")
    if removed is None:
        raise HmuError(f"{checkpoint if not isinstance(checkpoint, Mapping) else 'checkpoint'} has no removed_codes: "
                       "not an LCR run")
    if isinstance(removed, Mapping):
        items = ((int(k), v) for k, v in removed.items())
    else:
        items = enumerate(removed)
    return {int(q): [int(c) for c in codes] for q, codes in items if len(codes)}


def replaced_frame_masks(codes: Sequence[np.ndarray], removed: Mapping[int, Sequence[int]], *, unit: int,
                         pad: int = DEFAULT_PAD) -> list[np.ndarray]:
    """One bool (T_i' * unit,) frame mask per motion's ids (T_i', Q): the frames decoded from a removed code of any
    listed layer, widened by ``pad`` frames each side."""
    from src.eval.quality import frames_from_tokens, replaced_token_mask

    out = []
    for ids in codes:
        ids = np.asarray(ids)
        layers = {q: c for q, c in removed.items() if q < (ids.shape[1] if ids.ndim == 2 else 1)}
        tok = replaced_token_mask(ids, layers) if layers else np.zeros(len(ids), bool)
        out.append(frames_from_tokens(tok, unit=unit, pad=pad, n_frames=len(ids) * unit))
    return out


def transition_figures(original: Any, edited: Any, removed: Mapping[int, Sequence[int]], captions: Sequence[str],
                       lengths: Sequence[int], *, seed: int, pad: int = DEFAULT_PAD, joints_num: int = 22,
                       quality: Any = None) -> dict[str, Any]:
    """Generate ``captions`` (frame ``lengths``) with both models (``MotionGenerator``s) from one seed, mask the
    edited model's replaced-code frames, and return ``{"original": figures, "edited": figures, "masked_frames",
    "frames", "replaced_tokens", "ids_equal", "pad", "unit"}`` (figures: :func:`src.eval.quality.quality_metrics`
    with the masks, so ``masked_*`` are the transition artefacts)."""
    from src.common.seed import torch_generator
    from src.data.motion import recover_from_ric
    from src.eval.quality import QualityConfig, quality_metrics

    if len(captions) != len(lengths) or not captions:
        raise HmuError(f"need one length per caption and at least one caption, got {len(captions)} captions and "
                       f"{len(lengths)} lengths")
    if original.unit_length != edited.unit_length:
        raise HmuError(f"the two models' tokens differ in length: {original.unit_length} vs {edited.unit_length} "
                       "frames")
    unit = int(edited.unit_length)
    feats_o, ids_o = original.generate_coded(list(captions), list(lengths), generator=torch_generator(seed))
    feats_e, ids_e = edited.generate_coded(list(captions), list(lengths), generator=torch_generator(seed))
    masks = replaced_frame_masks(ids_e, removed, unit=unit, pad=pad)
    cfg = quality or QualityConfig()

    def figures(feats):
        joints = [recover_from_ric(np.asarray(f, np.float64), joints_num) for f in feats]
        return quality_metrics(joints, masks=masks, cfg=cfg)

    tokens = sum(int(np.isin(i[:, q] if i.ndim == 2 else i, list(c)).sum())
                 for i in ids_e for q, c in removed.items() if i.ndim == 1 or q < i.shape[1])
    return {"original": figures(feats_o), "edited": figures(feats_e),
            "masked_frames": int(sum(int(m.sum()) for m in masks)), "frames": int(sum(len(m) for m in masks)),
            "replaced_tokens": tokens,
            "ids_equal": len(ids_o) == len(ids_e) and all(np.array_equal(a, b) for a, b in zip(ids_o, ids_e)),
            "pad": pad, "unit": unit}


__all__ = ["DEFAULT_PAD", "removed_codes", "replaced_frame_masks", "transition_figures"]
