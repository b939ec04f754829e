"""Torch datasets over a HumanML3D-format folder: feature windows for VQ training and (caption, motion) pairs.

Both follow upstream MoMask (``data/t2m_dataset.py``: ``MotionDataset``, ``Text2MotionDataset``) in what an item is,
with two deliberate changes: randomness comes from a numpy Generator seeded by ``(seed, epoch, index)`` (so an item is
the same whatever the number of DataLoader workers, and ``set_epoch`` re-draws it), and sub-clip ids are deterministic.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from src.common.errors import HmuError
from src.data.humanml3d import HumanML3DFolder, read_split

log = logging.getLogger(__name__)

Split = str | os.PathLike | Sequence[str]


# ---------------------------------------------------------------------------------------------------------------------
# Folder access

def resolve_ids(root: str | os.PathLike, split: Split) -> list[str]:
    """Ids of a split: a name (``train`` -> ``<root>/train.txt``), an id file (``kw_splits/test-w-violence[.txt]``,
    relative to ``root`` or absolute) or an explicit list of ids. Blank lines are skipped; an empty split is an error."""
    if not isinstance(split, (str, os.PathLike)):
        ids = [str(i) for i in split]
        if not ids:
            raise HmuError("empty id list given as split")
        return ids
    root = Path(root)
    p = Path(split)
    cands = [p] if p.is_absolute() else [root / p]
    if p.suffix != ".txt":
        cands = [c.with_name(c.name + ".txt") for c in cands] + cands
    return read_split(next((c for c in cands if c.is_file()), cands[0]))


def _folder(folder: Any) -> HumanML3DFolder:
    """A ``HumanML3DFolder`` for a path (no spec: any feature size), or the folder object itself."""
    return folder if isinstance(folder, HumanML3DFolder) else HumanML3DFolder(folder)


def _norm_stats(mean: Any, std: Any, dim: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    mean = np.asarray(mean, dtype=np.float32).reshape(-1)
    std = np.asarray(std, dtype=np.float32).reshape(-1)
    if mean.shape != (dim,) or std.shape != (dim,):
        raise HmuError(f"mean/std have {mean.shape[0]}/{std.shape[0]} features but motions in {where} have {dim}")
    return mean, std


def _item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng((int(seed), int(epoch), int(index)))


# ---------------------------------------------------------------------------------------------------------------------
# VQ training: fixed-size windows

class MotionWindowDataset(Dataset):
    """Every ``window``-frame slice of every motion in a split, z-normalised: item ``(window, D)`` float32.

    Motions shorter than ``window`` are skipped (upstream). Upstream indexes ``T - window`` starts per motion and
    repeats item 0; here each valid start ``0..T-window`` appears exactly once. The DataLoader's shuffling makes the
    windows random, as upstream.
    """

    def __init__(self, folder: Any, split: Split, *, window: int, mean: Any, std: Any):
        if window < 1:
            raise HmuError(f"window must be >= 1, got {window}")
        data = _folder(folder)
        ids = resolve_ids(data.root, split)
        self.window = int(window)
        self.ids: list[str] = []
        self.motions: list[np.ndarray] = []
        for mid in _progress(ids, "motions"):
            m = data.motion(mid)
            if len(m) >= self.window:
                self.ids.append(mid)
                self.motions.append(m)
        if not self.motions:
            raise HmuError(f"no motion of split '{split}' in {data.root} has {self.window} frames or more")
        self.mean, self.std = _norm_stats(mean, std, self.motions[0].shape[1], str(data.root))
        self.cumsum = np.cumsum([0] + [len(m) - self.window + 1 for m in self.motions])
        log.info("%d motions, %d windows of %d frames", len(self.motions), self.cumsum[-1], self.window)

    def __len__(self) -> int:
        return int(self.cumsum[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """``(motion index, start frame)`` of window ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = int(np.searchsorted(self.cumsum, index, side="right")) - 1
        return k, int(index - self.cumsum[k])

    def __getitem__(self, index: int) -> np.ndarray:
        k, start = self.locate(index)
        return ((self.motions[k][start:start + self.window] - self.mean) / self.std).astype(np.float32)

    def inv_transform(self, x):
        return x * self.std + self.mean


# ---------------------------------------------------------------------------------------------------------------------
# Text to motion: (caption, tokens, motion, length)

class Text2MotionDataset(Dataset):
    """Caption/motion pairs of a split, as upstream MoMask's ``Text2MotionDataset``.

    A motion of ``T`` frames is kept when ``min_motion_length <= T < max_motion_length + unit_length`` (upstream:
    ``40 <= T < 200`` for HumanML3D). Its whole-motion captions (``#0.0#0.0``) form one entry; each caption with a
    ``from``/``to`` tag becomes its own entry on ``motion[int(from*fps):int(to*fps)]`` under a new id
    ``<letter>_<id>`` (``A_000123``, ``B_000123``, ... in file order; upstream draws the letter at random), with the
    same length filter. An item is ``(caption, tokens, motion, length)``: a random caption of the entry, its
    ``word/POS`` tokens, the z-normalised motion cropped at a random start to ``length`` frames (a multiple of
    ``unit_length``; one unit shorter with probability 1/3 when ``unit_length < 10``, upstream's "double" coin) and
    zero-padded to ``(max_motion_length, D)`` float32.
    """

    def __init__(self, folder: Any, split_ids: Split, *, mean: Any, std: Any, max_motion_length: int,
                 unit_length: int, min_motion_length: int = 40, fps: int = 20, seed: int = 0):
        if unit_length < 1 or max_motion_length < unit_length:
            raise HmuError(f"need 1 <= unit_length <= max_motion_length, got {unit_length} and {max_motion_length}")
        data = _folder(folder)
        ids = resolve_ids(data.root, split_ids)
        self.max_motion_length, self.unit_length, self.fps = int(max_motion_length), int(unit_length), int(fps)
        self.seed, self.epoch = int(seed), 0
        lo, hi = max(int(min_motion_length), self.unit_length), self.max_motion_length + self.unit_length

        def fits(n: int) -> bool:
            return lo <= n < hi

        self.names: list[str] = []
        self.entries: list[tuple[np.ndarray, list[tuple[str, list[str]]]]] = []
        for mid in _progress(ids, "captions"):
            motion = data.motion(mid)
            if not fits(len(motion)):
                continue
            whole, sub = [], 0
            for cap in data.captions(mid):
                start, end = _frames(cap.start, cap.end, self.fps)
                if start == 0 and end == 0:
                    whole.append((cap.text, list(cap.tokens)))
                    continue
                clip = motion[start:end]
                if not fits(len(clip)):
                    continue
                self.names.append(_subclip_name(mid, sub))
                self.entries.append((clip, [(cap.text, list(cap.tokens))]))
                sub += 1
            if whole:
                self.names.append(mid)
                self.entries.append((motion, whole))
        if not self.entries:
            raise HmuError(f"no motion of split '{split_ids}' in {data.root} has a length in [{lo}, {hi})")
        self.mean, self.std = _norm_stats(mean, std, self.entries[0][0].shape[1], str(data.root))
        self.lengths = np.array([len(m) for m, _ in self.entries])
        log.info("%d text-motion entries from %d ids", len(self.entries), len(ids))

    def set_epoch(self, epoch: int) -> None:
        """Re-draw captions and crops: items depend on ``(seed, epoch, index)`` only."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[str, list[str], np.ndarray, int]:
        motion, texts = self.entries[index]
        rng = _item_rng(self.seed, self.epoch, index)
        caption, tokens = texts[int(rng.integers(len(texts)))]
        unit = self.unit_length
        double = unit < 10 and rng.integers(3) == 2  # upstream: choice(['single', 'single', 'double'])
        length = (len(motion) // unit - (1 if double else 0)) * unit
        length = max(min(length, self.max_motion_length), unit)
        start = int(rng.integers(len(motion) - length + 1))
        out = np.zeros((self.max_motion_length, motion.shape[1]), dtype=np.float32)
        out[:length] = (motion[start:start + length] - self.mean) / self.std
        return caption, tokens, out, length

    def inv_transform(self, x):
        return x * self.std + self.mean


def collate(batch: Sequence[tuple[str, list[str], Any, int]]):
    """Batch ``Text2MotionDataset`` items, longest first (upstream ``collate_fn``), motions zero-padded to the longest.

    Returns ``(captions: list[str], tokens: list[list[str]], motions: (B, T, D) float32, lengths: (B,) int64)``.
    """
    items = sorted(batch, key=lambda it: it[3], reverse=True)
    motions = [torch.as_tensor(np.asarray(it[2]), dtype=torch.float32) for it in items]
    t = max(m.shape[0] for m in motions)
    out = motions[0].new_zeros((len(motions), t, motions[0].shape[1]))
    for i, m in enumerate(motions):
        out[i, :m.shape[0]] = m
    lengths = torch.tensor([int(it[3]) for it in items], dtype=torch.long)
    return [it[0] for it in items], [list(it[1]) for it in items], out, lengths


def _frames(start_s: float, end_s: float, fps: int) -> tuple[int, int]:
    """Seconds tags -> frame slice bounds (upstream ``int(tag * 20)``; humanml3d already reads NaN as 0)."""
    return int(start_s * fps), int(end_s * fps)


def _subclip_name(mid: str, k: int) -> str:
    return f"{chr(ord('A') + k)}_{mid}" if k < 26 else f"{k}_{mid}"


def _progress(items: Sequence[str], what: str):
    from src.common.progress import progress as progress_bar

    return progress_bar(items, desc=f"loading {what}", unit="id")
