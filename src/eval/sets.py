"""Evaluation sets: the items (a motion, or only a length, with its captions) that :mod:`src.eval.loop` evaluates.

The ids of a split list of a HumanML3D-format folder (``kw_splits/test-w-<concept>`` = forget, ``-wo-`` = retain).
Two protocols (``protocol=``), both skipping, as upstream's evaluation dataset does, every motion shorter than
``min_motion_length`` or of 200 frames or more (with all its captions), and cutting a caption's ``#from#to`` range
with upstream's rule (:func:`segment_bounds`):

``hmu`` (upstream's, the HMU fork's ``Text2MotionDatasetEval``)
    one item per caption line, whole motion or its own segment, kept if the segment has 40..199 frames, items sorted
    by length (stable). ``motion`` is the whole segment; every repeat draws a crop (:func:`hmu_draws`): a random
    start, and a 1/3 chance of one unit shorter, on the generated and the ground-truth side alike.
``fixed``
    one item per motion holding all its whole-motion captions (one drawn per repeat), plus one item per caption
    with a segment; the motion is its first ``min(T, max_motion_length) // unit_length * unit_length`` frames,
    always: the ground truth is then fixed, so its embeddings can be cached, and the length asked is the same in
    every repeat and for every model.

Prompt-only sets (:func:`prompt_set`, e.g. synth's implicit prompts) have captions and lengths but no motions.
"""
from __future__ import annotations

import logging

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from src.common.datasets import crop_length
from src.common.errors import HmuError
from src.eval.protocol import Protocol

log = logging.getLogger(__name__)

UPSTREAM_MAX_FRAMES = 200  # upstream's eval dataset skips motions of 200 frames or more
HMU_COIN = ("single", "single", "double")  # upstream: one unit shorter with chance 1/3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalCaption:
    text: str
    tokens: tuple[str, ...]   # "word/POS"


@dataclass(frozen=True)
class CaptionedMotion:
    """One evaluation item: a (sub-)motion and its captions. ``motion`` is None for prompt-only sets."""

    key: str
    length: int                         # frames = len(motion) when there is one; asked of the generator under
                                        # "fixed" (under "hmu" each repeat asks for its crop's length)
    captions: tuple[EvalCaption, ...]
    motion: np.ndarray | None = None    # (length, dim_pose) raw features


@dataclass(frozen=True)
class EvalSet:
    name: str
    items: tuple[CaptionedMotion, ...]
    source: str = ""
    protocol: str = "fixed"    # the name of its src.eval.protocol.Protocol ("hmu": every repeat crops item.motion)

    @property
    def has_motion(self) -> bool:
        return all(it.motion is not None for it in self.items)

    @property
    def n_captions(self) -> int:
        return sum(len(it.captions) for it in self.items)

    def __len__(self) -> int:
        return len(self.items)


def segment_bounds(start_s: float, end_s: float, n_frames: int, fps: int) -> tuple[int, int]:
    """Upstream's ``#from#to`` rule: ``[int(from*fps) if from > 0 else 0, int(to*fps) if to > 0 else n_frames)``
    (``2.5#0.0`` runs to the end; an end past the clip is cut by the slice)."""
    a = int(start_s * fps) if start_s > 0 else 0
    b = int(end_s * fps) if end_s > 0 else int(n_frames)
    return a, b


def load_eval_set(root: str | os.PathLike, split: str | os.PathLike | Sequence[str], *, name: str | None = None,
                  protocol: str | Protocol = "fixed", unit_length: int = 4, min_motion_length: int = 40,
                  max_motion_length: int = 196, fps: int = 20) -> EvalSet:
    """Items of a split of a HumanML3D-format folder under ``protocol`` (module docstring)."""
    from src.data.datasets import resolve_ids
    from src.data.humanml3d import HumanML3DFolder, SegmentAudit

    protocol = Protocol.named(protocol)
    ids = resolve_ids(root, split)
    folder = HumanML3DFolder(root)
    audit = SegmentAudit(f"split {split} of {root}")
    items: list[CaptionedMotion] = []
    missing: list[str] = []
    for mid in ids:
        if protocol.upstream_items and not (folder.motion_path(mid).is_file() and folder.text_path(mid).is_file()):
            missing.append(mid)   # upstream's loader skips an id whose files are missing (try/except)
            continue
        motion = folder.motion(mid)
        if not min_motion_length <= len(motion) < UPSTREAM_MAX_FRAMES:
            continue              # the whole clip, all its captions (upstream's order of checks)
        whole: list[EvalCaption] = []
        k = 0
        for line, cap in enumerate(folder.captions(mid)):
            ec = EvalCaption(cap.text, tuple(cap.tokens))
            if not protocol.upstream_items and cap.start == 0.0 and cap.end == 0.0:
                whole.append(ec)
                continue
            if protocol.upstream_items:
                f0, f1 = segment_bounds(cap.start, cap.end, len(motion), fps)   # upstream's rule, exactly
            else:  # hmu's own: reversed segments or starts past the end skipped, ends cut, all warned with counts
                seg = audit.frames(mid, cap, len(motion), fps)
                if seg is None:
                    continue
                f0, f1 = seg
            sub = motion[f0:f1]
            if not min_motion_length <= len(sub) < UPSTREAM_MAX_FRAMES:
                continue
            if protocol.upstream_items:
                items.append(CaptionedMotion(f"{line}%{mid}", len(sub), (ec,),
                                             np.ascontiguousarray(sub, dtype=np.float32)))
            else:
                items.append(_item(f"{chr(ord('A') + k) if k < 26 else k}_{mid}", sub, (ec,),
                                   unit_length=unit_length, max_motion_length=max_motion_length))
                k += 1
        if whole:
            items.append(_item(mid, motion, tuple(whole), unit_length=unit_length, max_motion_length=max_motion_length))
    audit.report()
    if missing:
        log.warning("%d id(s) of %s have no motion or text file and are skipped, as upstream does: %s",
                    len(missing), split, " ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    if not items:
        raise HmuError(f"split {split} of {root} has no motion between {min_motion_length} and "
                       f"{UPSTREAM_MAX_FRAMES - 1} frames")
    if protocol.upstream_items:
        items.sort(key=lambda it: it.length)   # upstream sorts by length; stable: split order, then line order
    is_path = isinstance(split, (str, os.PathLike))
    default_name = Path(str(split)).name.removesuffix(".txt") if is_path else "eval"
    return EvalSet(name or default_name, tuple(items), source=str(split) if is_path else f"{len(ids)} ids",
                   protocol=protocol.name)


def _item(key: str, motion: np.ndarray, captions: tuple[EvalCaption, ...], *, unit_length: int,
          max_motion_length: int) -> CaptionedMotion:
    n = crop_length(len(motion), unit_length=unit_length, max_motion_length=max_motion_length)
    return CaptionedMotion(key, n, captions, np.ascontiguousarray(motion[:n], dtype=np.float32))


@dataclass(frozen=True)
class HmuDraw:
    """One item's draws of one repeat under the ``hmu`` protocol: caption index, coin, crop [start, start+length)."""

    caption: int
    coin: str
    start: int
    length: int


def hmu_draws(items: Sequence[CaptionedMotion], py_rng: random.Random, np_rng: np.random.RandomState, *,
              unit_length: int = 4) -> list[HmuDraw]:
    """Upstream ``__getitem__``'s draws for ``items`` in order, consuming the two generators as it does per item:
    ``random.choice`` of the caption, ``np.random.choice(['single','single','double'])`` (only when unit_length <
    10), then ``random.randint(0, T - m)`` with ``m = (T // unit - 1) * unit`` if 'double' else ``(T // unit) * unit``.

    ``random.Random(s)`` / ``np.random.RandomState(s)`` give the draws of ``random.seed(s); np.random.seed(s)``."""
    out = []
    for it in items:
        if it.motion is None:
            raise HmuError(f"item {it.key} has no motion to crop (the hmu protocol needs motions)")
        c = py_rng.choice(range(len(it.captions)))       # the same consumption as choice(text_list)
        coin = str(np_rng.choice(HMU_COIN)) if unit_length < 10 else "single"
        n = len(it.motion)
        m = (n // unit_length - (coin == "double")) * unit_length
        out.append(HmuDraw(c, coin, py_rng.randint(0, n - m), m))
    return out


def warn_small_set(eval_set: EvalSet, batch_size: int) -> bool:
    """Say (one warning) when ``eval_set`` has fewer items than an R-precision batch: R-precision then ranks each
    caption among all N < batch_size motions, whose chance level (k/N) is not the paper's (k/batch_size), so the
    number does not compare with full-batch figures. Returns whether it warned."""
    n = len(eval_set)
    if not eval_set.has_motion or n >= batch_size:
        return False
    log.warning("evaluation set %s (%s) has %d items, fewer than a batch of %d: R-precision is computed on one "
                "batch of %d (chance top-1 = 1/%d, not 1/%d) and does not compare with full-batch figures",
                eval_set.name, eval_set.source or "?", n, batch_size, n, n, batch_size)
    return True


def hmu_rngs(seed: int, repeat: int) -> tuple[random.Random, np.random.RandomState]:
    """The (Python, numpy) generators of one repeat's :func:`hmu_draws` in :func:`src.eval.loop.evaluate`."""
    s = int(np.random.SeedSequence([seed, repeat, 2]).generate_state(1)[0])
    return random.Random(s), np.random.RandomState(s)


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
