"""What ``python -m src.gen`` writes beside each motion: a stick-figure video titled with its prompt, and a BVH.

The video is the report's renderer (:func:`src.viz.animate.save_comparison`) with one panel; the BVH is
:func:`src.viz.bvh.write`. Both are written atomically.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def motion_video(path: str | os.PathLike, joints: np.ndarray, *, chain: Sequence[Sequence[int]], title: str,
                 fps: float, save_video: Callable[..., Path], gif: bool = False, label: str = "") -> Path:
    """One-panel video of ``joints`` (T, J, 3) with ``title`` (the prompt) above it; returns the file written.

    ``save_video`` is :func:`src.viz.animate.save_comparison`, handed in by the CLI (that module is a CLI module,
    which a library module may not import)."""
    return save_video(path, {label: joints}, chain=chain, title=title, fps=fps, fmt="gif" if gif else None)


def motion_bvh(path: str | os.PathLike, joints: np.ndarray, *, chain: Sequence[Sequence[int]], fps: float,
               names: str = "smpl") -> Path:
    """``joints`` (T, J, 3) fitted to the skeleton by inverse kinematics, as a BVH file whose joints carry the
    ``names`` map's names (smpl, momask, mixamo: :data:`src.viz.bvh.BVH_NAME_MAPS`)."""
    from .bvh import joint_names, write

    return write(path, joints, chain, fps=fps, names=joint_names(names, joints.shape[1]))


def write_outputs(out: Path, items: list[dict], joints: Sequence[np.ndarray], *, chain: Sequence[Sequence[int]],
                  fps: float, stems: Sequence[str], animate: bool = True, gif: bool = False, bvh: bool = False,
                  bvh_names: str = "smpl", progress: bool = True,
                  save_video: Callable[..., Path] | None = None) -> None:
    """For each generated item (a dict with ``text``, ``repeat``) write ``<stem>.mp4`` (``.gif`` with ``gif``) and/or
    ``<stem>.bvh`` under ``out`` (``stems``: one relative path without suffix per item), and record their relative
    paths in the item (``video``, ``bvh``)."""
    from src.common.progress import progress as progress_bar

    if not (animate or bvh):
        return
    if animate and save_video is None:
        raise ValueError("write_outputs: animate needs save_video (src.viz.animate.save_comparison)")
    if len(stems) != len(items):
        raise ValueError(f"write_outputs: {len(items)} items but {len(stems)} stems")
    for item, j, stem in progress_bar(list(zip(items, joints, stems)), desc="videos" if animate else "bvh",
                                      unit="motion", enabled=progress):
        if animate:
            label = f"repeat {item['repeat']}" if item.get("repeat") else ""
            v = motion_video(out / f"{stem}.mp4", j, chain=chain, title=item["text"], fps=fps, gif=gif,
                             label=label, save_video=save_video)
            item["video"] = v.relative_to(out).as_posix()
        if bvh:
            b = motion_bvh(out / f"{stem}.bvh", j, chain=chain, fps=fps, names=bvh_names)
            item["bvh"] = b.relative_to(out).as_posix()
