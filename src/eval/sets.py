"""Evaluation sets: the items (a motion, or only a length, with its captions) that :mod:`src.eval.loop` evaluates.

The ids of a split list of a HumanML3D-format folder (``kw_splits/test-w-<concept>`` = forget,
``-wo-`` = retain). As upstream's evaluation dataset: motions shorter than ``min_motion_length`` or of 200 frames or
more are skipped, and a caption with a ``from#to`` range becomes its own sub-clip item. Unlike upstream, which
crops a random window (and randomly drops one more unit) in every repeat, the motion is the first
``min(T, max_motion_length) // unit_length * unit_length`` frames, always: the ground truth is then fixed, so its
embeddings can be cached, and the requested length is the same for every model. Prompt-only sets
(:func:`prompt_set`, e.g. synth's implicit prompts) have captions and lengths but no motions.
"""
from __future__ import annotations

import logging

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from src.common.datasets import crop_length
from src.common.errors import HmuError

UPSTREAM_MAX_FRAMES = 200  # upstream's eval dataset skips motions of 200 frames or more

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalCaption:
    text: str
    tokens: tuple[str, ...]   # "word/POS"


@dataclass(frozen=True)
class CaptionedMotion:
    """One evaluation item: a (sub-)motion and its captions. ``motion`` is None for prompt-only sets."""

    key: str
    length: int                         # frames asked of the generator (= len(motion) when there is one)
    captions: tuple[EvalCaption, ...]
    motion: np.ndarray | None = None    # (length, dim_pose) raw features


@dataclass(frozen=True)
class EvalSet:
    name: str
    items: tuple[CaptionedMotion, ...]
    source: str = ""

    @property
    def has_motion(self) -> bool:
        return all(it.motion is not None for it in self.items)

    @property
    def n_captions(self) -> int:
        return sum(len(it.captions) for it in self.items)

    def __len__(self) -> int:
        return len(self.items)


def load_eval_set(root: str | os.PathLike, split: str | os.PathLike | Sequence[str], *, name: str | None = None,
                  unit_length: int = 4, min_motion_length: int = 40, max_motion_length: int = 196, fps: int = 20
                  ) -> EvalSet:
    """Items of a split of a HumanML3D-format folder (module docstring: skipping, sub-clips, cropping)."""
    from src.data.datasets import resolve_ids
    from src.data.humanml3d import HumanML3DFolder, SegmentAudit

    ids = resolve_ids(root, split)
    folder = HumanML3DFolder(root)
    audit = SegmentAudit(f"split {split} of {root}")
    items: list[CaptionedMotion] = []
    for mid in ids:
        motion = folder.motion(mid)
        whole: list[EvalCaption] = []
        k = 0
        for cap in folder.captions(mid):
            ec = EvalCaption(cap.text, tuple(cap.tokens))
            if cap.start == 0.0 and cap.end == 0.0:
                whole.append(ec)
                continue
            seg = audit.frames(mid, cap, len(motion), fps)
            if seg is None:
                continue
            sub = motion[seg[0]:seg[1]]
            if min_motion_length <= len(sub) < UPSTREAM_MAX_FRAMES:
                items.append(_item(f"{chr(ord('A') + k) if k < 26 else k}_{mid}", sub, (ec,),
                                   unit_length=unit_length, max_motion_length=max_motion_length))
                k += 1
        if whole and min_motion_length <= len(motion) < UPSTREAM_MAX_FRAMES:
            items.append(_item(mid, motion, tuple(whole), unit_length=unit_length, max_motion_length=max_motion_length))
    audit.report()
    if not items:
        raise HmuError(f"split {split} of {root} has no motion between {min_motion_length} and "
                       f"{UPSTREAM_MAX_FRAMES - 1} frames")
    is_path = isinstance(split, (str, os.PathLike))
    default_name = Path(str(split)).name.removesuffix(".txt") if is_path else "eval"
    return EvalSet(name or default_name, tuple(items), source=str(split) if is_path else f"{len(ids)} ids")


def _item(key: str, motion: np.ndarray, captions: tuple[EvalCaption, ...], *, unit_length: int,
          max_motion_length: int) -> CaptionedMotion:
    n = crop_length(len(motion), unit_length=unit_length, max_motion_length=max_motion_length)
    return CaptionedMotion(key, n, captions, np.ascontiguousarray(motion[:n], dtype=np.float32))


def prompt_set(prompts: Sequence[Mapping[str, Any]], *, name: str, unit_length: int = 4,
               max_motion_length: int = 196, source: str = "") -> EvalSet:
    """A prompt-only set from ``[{"text", "tokens", "length"}, ...]`` (synth's implicit_prompts.json)."""
    items = []
    for i, p in enumerate(prompts):
        try:
            text, tokens, length = str(p["text"]), tuple(p["tokens"]), int(p["length"])
        except (KeyError, TypeError, ValueError) as exc:
            raise HmuError(f"prompt {i} of {source or name} lacks text/tokens/length ({exc})") from None
        n = crop_length(length, unit_length=unit_length, max_motion_length=max_motion_length)
        if n < unit_length:
            raise HmuError(f"prompt {i} of {source or name} has length {length} < unit_length {unit_length}")
        items.append(CaptionedMotion(f"prompt{i:04d}", n, (EvalCaption(text, tokens),)))
    if not items:
        raise HmuError(f"no prompts in {source or name}")
    return EvalSet(name, tuple(items), source=source)


def tag_free_prompts(prompts: Sequence[Mapping[str, Any]], *, texts_dir=None, vectorizer=None
                     ) -> tuple[list[dict], str | None]:
    """Give ``tokens`` to prompts that lack them (free-form text) -> (prompts, name of the tagger, None if none ran).

    Tags come from spaCy when installed, else the dataset's POS map (:func:`src.data.pos.tag_prompts`). Prompts with
    no known word are refused and mostly unknown ones warned about (:func:`src.data.prompt_check.check_prompts`); the
    words they bring are added to ``vectorizer`` from GloVe when its vectors are glove.6B.50d.
    """
    out = [dict(p) for p in prompts]
    free = [i for i, p in enumerate(out) if not p.get("tokens")]
    if not free:
        return out, None
    from src.data.pos import tag_prompts
    from src.data.prompt_check import check_prompts

    texts = [str(out[i].get("text", "")) for i in free]
    check_prompts(texts, glove_dir=getattr(vectorizer, "source", None), what="free-form prompt")
    tokens, tagger = tag_prompts(texts, texts_dir=texts_dir)
    for i, toks in zip(free, tokens):
        out[i]["tokens"] = toks
    if vectorizer is not None and hasattr(vectorizer, "extend"):
        vectorizer.extend(t.split("/")[0] for toks in tokens for t in toks)
    log.info("POS tags of %d free-form prompts: %s", len(free), tagger)
    return out, tagger
