"""``python -m src.viz.animate``: joint arrays (T, J, 3) side by side as a stick-figure video (mp4 or gif).

The drawing is :mod:`src.viz.compare` (library)."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.viz.compare import resolve_output, save_comparison, save_still


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m src.viz.animate",
        description="Render joint arrays (T, J, 3) .npy files side by side as a stick-figure video (mp4 or gif).")
    p.add_argument("--joints", action="append", required=True, metavar="NPY",
                   help="joint positions (T, J, 3), y up, metres; repeat for each panel (first = original)")
    p.add_argument("--labels", nargs="+", default=None, help="one panel name per --joints (default: file names)")
    p.add_argument("--title", default=None, help="title above the panels (e.g. the prompt)")
    p.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
    p.add_argument("--dataset_name", "--dataset", dest="dataset_name", default="HumanML3D",
                   help="dataset whose kinematic chain to draw (HumanML3D, KIT-ML, synth, ...)")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default: the dataset's rate)")
    p.add_argument("--gif", action="store_true", help="write a gif instead of an mp4")
    p.add_argument("--camera", choices=("auto", "fixed", "follow"), default="auto",
                   help="fixed: one view for the whole clip; follow: move with the root; auto: follow beyond 3 m")
    p.add_argument("--no_trajectory", action="store_true", help="do not draw the root path on the floor")
    p.add_argument("--size", type=int, nargs=2, default=(320, 320), metavar=("W", "H"), help="panel size in pixels")
    p.add_argument("--still", default=None, metavar="PNG", help="also write one frame as a PNG (e.g. for a README)")
    p.add_argument("--still_frame", type=int, default=-1, help="frame index for --still (negative: from the end)")
    p.add_argument("--force", action="store_true", help="overwrite --out (and --still) if they exist")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


_FOLLOW = {"auto": None, "fixed": False, "follow": True}


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import numpy as np

    from src.common.io import ensure_writable_dir, refuse_overwrite
    from src.common.logging import setup_logging
    from src.common.datasets import get_spec

    setup_logging()
    spec = get_spec(args.dataset_name)
    if not spec.kinematic_chain:
        raise HmuError(f"--dataset_name {spec.name} has no kinematic chain")
    labels = args.labels or [Path(j).stem for j in args.joints]
    if len(labels) != len(args.joints):
        raise HmuError(f"--labels: {len(labels)} names for {len(args.joints)} --joints files")
    if len(set(labels)) != len(labels):
        raise HmuError(f"--labels: names must be unique, got {labels}")
    motions = {}
    for label, f in zip(labels, args.joints):
        if not Path(f).is_file():
            raise HmuError(f"--joints file not found: {f}")
        try:
            a = np.load(f, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise HmuError(f"--joints {f} is not a readable .npy file ({type(exc).__name__})") from None
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        motions[label] = a
        # validate here so the message names the file, not the label
        from .skeleton import check_joints

        check_joints(a, spec.kinematic_chain, name=f"--joints {f}")
    fmt = "gif" if args.gif else None
    out = Path(args.out)
    target, _ = resolve_output(out, fmt)
    refuse_overwrite(target, args.force, "--out")
    ensure_writable_dir(target.parent)  # fail before rendering, not after
    if args.still:
        refuse_overwrite(args.still, args.force, "--still")
    written = save_comparison(out, motions, chain=spec.kinematic_chain, title=args.title,
                              fps=args.fps or spec.fps, fmt=fmt, panel_size=tuple(args.size),
                              follow=_FOLLOW[args.camera],
                              trajectory=not args.no_trajectory, progress=not args.no_progress)
    T = max(len(m) for m in motions.values())
    print(f"wrote {written} ({len(motions)} panels, {T} frames)")
    if args.still:
        save_still(args.still, motions, chain=spec.kinematic_chain, title=args.title, frame=args.still_frame,
                   panel_size=tuple(args.size), follow=_FOLLOW[args.camera], trajectory=not args.no_trajectory)
        print(f"wrote {args.still} (frame {args.still_frame})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
