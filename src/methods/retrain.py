"""Retain-only reference D_r: train VQ, masked and residual transformers from scratch on the retain ids only.

    python -m src.methods.retrain --dataset_name synth --concept violence --name dr [--like_trans mtrans] [-- ...]

Runs the training library's CLIs (src/train/vq.py, mask.py, residual.py) in this process with
``--split kw_splits/<main_split>-wo-<concept>`` and ``--val_split kw_splits/val-wo-<concept>``: the original models
train on ``train`` and validate on ``val``, so D_r sees the same data minus the forget motions. Runs written:
``<name>_vq``, ``<name>`` (masked transformer), ``<name>_res``. The preset is the original's (``--like_vq`` /
``--like_trans`` / ``--like_res`` name the original runs; their opt.txt ``preset`` is reused), else the dataset's
default (``tiny`` for synth). Any flag after ``--`` is passed to every trainer (e.g. ``-- --max_epoch 2``).
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from src.common.errors import HmuError, cli


def build_parser() -> argparse.ArgumentParser:
    from src.config.flags import HelpFormatter, add_device_flags, add_location_flags

    p = argparse.ArgumentParser(prog="python -m src.methods.retrain", description=__doc__.split("\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--dataset_name", default="synth", help="dataset name or alias")
    p.add_argument("--concept", "--split_name", dest="concept", default="violence", help="concept left out")
    p.add_argument("--name", required=True, help="base name: runs <name>_vq, <name>, <name>_res")
    p.add_argument("--main_split", default="train", help="split whose retain part trains (the originals' train split)")
    p.add_argument("--val_main_split", default="val", help="split whose retain part validates")
    p.add_argument("--parts", default="vq,mask,res", help="which models to train (comma-separated: vq, mask, res)")
    p.add_argument("--vq_name", default=None,
                   help="VQ run the transformers use when vq is not in --parts, e.g. the original's to share it "
                        "(default: <name>_vq)")
    p.add_argument("--like_vq", default=None, help="original VQ run whose preset is reused")
    p.add_argument("--like_trans", default=None, help="original masked-transformer run whose preset is reused")
    p.add_argument("--like_res", default=None, help="original residual-transformer run whose preset is reused")
    p.add_argument("--is_continue", action="store_true", help="resume every run from its latest.tar")
    p.add_argument("--force", action="store_true", help="start the runs over")
    p.add_argument("--seed", type=int, default=None, help="seed passed to every trainer")
    add_device_flags(p, device=False)
    add_location_flags(p, "checkpoints_dir", "dataset_dir")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    p.add_argument("trainer_args", nargs=argparse.REMAINDER, help="after --: flags for every trainer")
    return p


def original_preset(paths, dataset_name: str, run: str | None) -> str | None:
    """The ``preset`` an original run was trained with (its opt.txt), or None."""
    if not run:
        return None
    from src.config.opt_txt import read_opt_file
    from src.models.checkpoint import find_run_dir

    return read_opt_file(find_run_dir(paths, dataset_name, run) / "opt.txt").get("preset")


def trainer_argv(kind: str, args, *, split: str, val_split: str, preset: str | None, vq_name: str) -> list[str]:
    """The argv one trainer gets (pure; tested)."""
    name = {"vq": f"{args.name}_vq", "mask": args.name, "res": f"{args.name}_res"}[kind]
    argv = ["--name", name, "--dataset_name", args.dataset_name, "--split", split, "--val_split", val_split,
            "--gpu_id", str(args.gpu_id)]
    if kind != "vq":
        argv += ["--vq_name", vq_name]
    for flag, value in (("--preset", preset), ("--seed", args.seed), ("--checkpoints_dir", args.checkpoints_dir),
                        ("--dataset_dir", args.dataset_dir)):
        if value is not None:
            argv += [flag, str(value)]
    for flag in ("is_continue", "force", "no_progress"):
        if getattr(args, flag):
            argv.append(f"--{flag}")
    rest = list(args.trainer_args or [])
    return argv + (rest[1:] if rest[:1] == ["--"] else rest)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from src.common.paths import Paths
    from src.data.datasets import resolve_ids
    from src.common.datasets import get_spec
    from src.data.keywords import forget_keywords, split_paths

    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir)
    spec = get_spec(args.dataset_name)
    args.dataset_name = spec.name
    forget_keywords(spec.name, args.concept)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not parts or any(p not in ("vq", "mask", "res") for p in parts):
        raise HmuError(f"--parts {args.parts!r}: choose from vq, mask, res")
    root = paths.data_root(spec.name)
    split = f"kw_splits/{split_paths(root, args.main_split, args.concept)[1].stem}"
    val_split = f"kw_splits/{split_paths(root, args.val_main_split, args.concept)[1].stem}"
    for s in (split, val_split):
        resolve_ids(root, s)  # missing/empty: one line before anything trains
    if args.vq_name and "vq" in parts:
        raise HmuError("--vq_name names a VQ to share; it cannot be combined with training one (--parts includes vq)")
    vq_name = args.vq_name or f"{args.name}_vq"
    if "vq" not in parts:
        from src.models.checkpoint import find_run_dir

        find_run_dir(paths, spec.name, vq_name)  # a missing shared VQ: one line before anything trains
    likes = {"vq": args.like_vq, "mask": args.like_trans, "res": args.like_res}
    trainers = {}
    for kind in parts:
        import importlib

        try:
            trainers[kind] = importlib.import_module({"vq": "src.train.vq", "mask": "src.train.mask",
                                                      "res": "src.train.residual"}[kind]).main
        except ImportError as exc:
            raise HmuError(f"the {kind} trainer is not available ({exc})") from None
    total = 0.0
    for kind in parts:
        preset = original_preset(paths, spec.name, likes[kind])
        t0 = time.perf_counter()
        rc = trainers[kind](trainer_argv(kind, args, split=split, val_split=val_split, preset=preset,
                                         vq_name=vq_name))
        total += time.perf_counter() - t0
        if rc:
            raise HmuError(f"training the retain-only {kind} model failed (exit status {rc})")
    print(f"retain-only reference trained on {split}: {', '.join(parts)} in {total:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
