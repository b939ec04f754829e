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


def motion_bvh(path: str | os.PathLike, joints: np.ndarray, *, chain: Sequence[Sequence[int]], fps: float) -> Path:
    """``joints`` (T, J, 3) fitted to the skeleton by inverse kinematics, as a BVH file."""
    from .bvh import write

    return write(path, joints, chain, fps=fps)


def write_outputs(out: Path, items: list[dict], joints: Sequence[np.ndarray], *, chain: Sequence[Sequence[int]],
                  fps: float, animate: bool = True, gif: bool = False, bvh: bool = False,
                  progress: bool = True, save_video: Callable[..., Path] | None = None) -> None:
    """For each generated item (a dict with ``text``, ``features``) write ``videos/<stem>.mp4`` and/or
    ``bvh/<stem>.bvh`` under ``out``, and record their relative paths in the item (``video``, ``bvh``)."""
    from src.common.progress import progress as progress_bar

    if not (animate or bvh):
        return
    if animate and save_video is None:
        raise ValueError("write_outputs: animate needs save_video (src.viz.animate.save_comparison)")
    for item, j in progress_bar(list(zip(items, joints)), desc="videos" if animate else "bvh", unit="motion",
                                enabled=progress):
        stem = Path(item["features"]).stem
        if animate:
            label = f"repeat {item['repeat']}" if item.get("repeat") else ""
            v = motion_video(out / "videos" / f"{stem}.mp4", j, chain=chain, title=item["text"], fps=fps, gif=gif,
                             label=label, save_video=save_video)
            item["video"] = f"videos/{v.name}"
        if bvh:
            b = motion_bvh(out / "bvh" / f"{stem}.bvh", j, chain=chain, fps=fps)
            item["bvh"] = f"bvh/{b.name}"
