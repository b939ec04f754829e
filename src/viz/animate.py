"""``python -m src.viz.animate``: joint arrays (T, J, 3) side by side as a stick-figure video (mp4 or gif).

The drawing is :mod:`src.viz.compare` (library)."""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.config.command import RunOptions, config_parser, group, parse_config
from src.config.flags import opt
from src.viz.compare import resolve_output, save_comparison, save_still

PROG = "python -m src.viz.animate"


@dataclasses.dataclass(kw_only=True)
class AnimateConfig:
    """Render joint arrays (T, J, 3) .npy files side by side as a stick-figure video (mp4 or gif)."""

    joints: list[str] = opt(None, required=True, action="append", nargs=None, metavar="NPY",
                            help="joint positions (T, J, 3), y up, metres; repeat for each panel (first = original)")
    labels: list[str] | None = opt(None, help="one panel name per --joints (default: file names)")
    title: str | None = opt(None, help="title above the panels (e.g. the prompt)")
    out: str = opt(None, required=True, help="output video (.mp4 or .gif)")
    dataset_name: str = opt("HumanML3D", aliases=("--dataset",),
                            help="dataset whose kinematic chain to draw (HumanML3D, KIT-ML, synth, ...)")
    fps: float | None = opt(None, help="frames per second (default: the dataset's rate)")
    gif: bool = opt(False, action="store_true", help="write a gif instead of an mp4")
    camera: str = opt("auto", choices=("auto", "fixed", "follow"),
                      help="fixed: one view for the whole clip; follow: move with the root; auto: follow beyond 3 m")
    no_trajectory: bool = opt(False, action="store_true", help="do not draw the root path on the floor")
    size: list[int] = opt(factory=lambda: [320, 320], nargs=2, metavar=("W", "H"), help="panel size in pixels")
    still: str | None = opt(None, metavar="PNG", help="also write one frame as a PNG (e.g. for a README)")
    still_frame: int = opt(-1, help="frame index for --still (negative: from the end)")
    run: RunOptions = group(RunOptions)

    def check(self) -> None:
        labels = self.panel_labels()
        if len(labels) != len(self.joints):
            raise HmuError(f"--labels: {len(labels)} names for {len(self.joints)} --joints files")
        if len(set(labels)) != len(labels):
            raise HmuError(f"--labels: names must be unique, got {labels}")

    def panel_labels(self) -> list[str]:
        return list(self.labels or [Path(j).stem for j in self.joints])


def build_parser() -> argparse.ArgumentParser:
    return config_parser(AnimateConfig, prog=PROG)


_FOLLOW = {"auto": None, "fixed": False, "follow": True}


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(AnimateConfig, argv, prog=PROG)
    from src.config.command import command_context

    ctx = command_context(cfg.dataset_name, run=cfg.run)
    return animate(cfg, ctx)


def animate(cfg: AnimateConfig, ctx) -> int:
    """Render ``cfg``'s joint files (see :func:`main`)."""
    import numpy as np

    from src.common.io import ensure_writable_dir, refuse_overwrite

    from .skeleton import check_joints

    spec = ctx.dataset
    if not spec.kinematic_chain:
        raise HmuError(f"--dataset_name {spec.name} has no kinematic chain")
    motions = {}
    for label, f in zip(cfg.panel_labels(), cfg.joints):
        if not Path(f).is_file():
            raise HmuError(f"--joints file not found: {f}")
        try:
            a = np.load(f, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise HmuError(f"--joints {f} is not a readable .npy file ({type(exc).__name__})") from None
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        motions[label] = a
        check_joints(a, spec.kinematic_chain, name=f"--joints {f}")  # here, so the message names the file
    fmt = "gif" if cfg.gif else None
    out = Path(cfg.out)
    target, _ = resolve_output(out, fmt)
    refuse_overwrite(target, ctx.force, "--out")
    ensure_writable_dir(target.parent)  # fail before rendering, not after
    if cfg.still:
        refuse_overwrite(cfg.still, ctx.force, "--still")
    view = {"panel_size": tuple(cfg.size), "follow": _FOLLOW[cfg.camera], "trajectory": not cfg.no_trajectory}
    written = save_comparison(out, motions, chain=spec.kinematic_chain, title=cfg.title, fps=cfg.fps or spec.fps,
                              fmt=fmt, progress=ctx.progress, **view)
    T = max(len(m) for m in motions.values())
    print(f"wrote {written} ({len(motions)} panels, {T} frames)")
    if cfg.still:
        save_still(cfg.still, motions, chain=spec.kinematic_chain, title=cfg.title, frame=cfg.still_frame, **view)
        print(f"wrote {cfg.still} (frame {cfg.still_frame})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
