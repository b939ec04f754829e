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
import dataclasses
import time
from collections.abc import Sequence

from src.common.errors import HmuError, cli
from src.config.command import DeviceOptions, Locations, RunOptions, WandbFlags, group, opt

PROG = "python -m src.methods.retrain"


@dataclasses.dataclass(kw_only=True)
class RetrainConfig:
    """Retain-only reference D_r: train VQ, masked and residual transformers from scratch on the retain ids only."""

    dataset_name: str = opt("synth", help="dataset name or alias")
    concept: str = opt("violence", aliases=("--split_name",), help="concept left out")
    name: str = opt(None, required=True, help="base name: runs <name>_vq, <name>, <name>_res")
    main_split: str = opt("train", help="split whose retain part trains (the originals' train split)")
    val_main_split: str = opt("val", help="split whose retain part validates")
    parts: str = opt("vq,mask,res", help="which models to train (comma-separated: vq, mask, res)")
    vq_name: str | None = opt(None, help="VQ run the transformers use when vq is not in --parts, e.g. the original's "
                                         "to share it (default: <name>_vq)")
    like_vq: str | None = opt(None, help="original VQ run whose preset is reused")
    like_trans: str | None = opt(None, help="original masked-transformer run whose preset is reused")
    like_res: str | None = opt(None, help="original residual-transformer run whose preset is reused")
    is_continue: bool = opt(False, help="resume every run from its latest.tar")
    seed: int | None = opt(None, help="seed passed to every trainer")
    trainer_args: list[str] | None = opt(None, flag="trainer_args", nargs=argparse.REMAINDER,
                                         help="after --: flags for every trainer")
    device: DeviceOptions = group(DeviceOptions, only=("gpu_id",))
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir"))
    run: RunOptions = group(RunOptions, only=("force", "no_progress"))
    wandb: WandbFlags = group(WandbFlags)

    def part_list(self) -> list[str]:
        parts = [p.strip() for p in self.parts.split(",") if p.strip()]
        if not parts or any(p not in ("vq", "mask", "res") for p in parts):
            raise HmuError(f"--parts {self.parts!r}: choose from vq, mask, res")
        return parts

    def check(self) -> None:
        parts = self.part_list()
        if self.vq_name and "vq" in parts:
            raise HmuError("--vq_name names a VQ to share; it cannot be combined with training one (--parts includes "
                           "vq)")


CONFIG = RetrainConfig


def original_preset(paths, dataset_name: str, run: str | None) -> str | None:
    """The ``preset`` an original run was trained with (its opt.txt), or None."""
    if not run:
        return None
    from src.config.opt_txt import read_opt_file
    from src.models.checkpoint import find_run_dir

    return read_opt_file(find_run_dir(paths, dataset_name, run) / "opt.txt").get("preset")


def trainer_argv(kind: str, cfg: RetrainConfig, *, split: str, val_split: str, preset: str | None,
                 vq_name: str) -> list[str]:
    """The argv one trainer gets (pure; tested)."""
    name = {"vq": f"{cfg.name}_vq", "mask": cfg.name, "res": f"{cfg.name}_res"}[kind]
    argv = ["--name", name, "--dataset_name", cfg.dataset_name, "--split", split, "--val_split", val_split,
            "--gpu_id", str(cfg.device.gpu_id)]
    if kind != "vq":
        argv += ["--vq_name", vq_name]
    for flag, value in (("--preset", preset), ("--seed", cfg.seed), ("--checkpoints_dir", cfg.where.checkpoints_dir),
                        ("--dataset_dir", cfg.where.dataset_dir)):
        if value is not None:
            argv += [flag, str(value)]
    for flag, on in (("is_continue", cfg.is_continue), ("force", cfg.run.force), ("no_progress", cfg.run.no_progress)):
        if on:
            argv.append(f"--{flag}")
    argv += cfg.wandb.options().argv()
    rest = list(cfg.trainer_args or [])
    return argv + (rest[1:] if rest[:1] == ["--"] else rest)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.config.command import command_context, parse_config

    cfg = parse_config(RetrainConfig, argv, prog=PROG, doc=__doc__)
    ctx = command_context(cfg.dataset_name, where=cfg.where, run=cfg.run, wandb=cfg.wandb, needs_device=False)
    return run_retrain(dataclasses.replace(cfg, dataset_name=ctx.dataset.name), ctx)


def run_retrain(cfg: RetrainConfig, ctx) -> int:
    """Train each part of ``cfg`` on the retain ids, with the training library's commands, in this process."""
    import importlib

    from src.data.datasets import resolve_ids
    from src.data.keywords import forget_keywords, split_paths

    paths, spec = ctx.paths, ctx.dataset
    forget_keywords(spec.name, cfg.concept)
    parts = cfg.part_list()
    root = ctx.data_root
    split = f"kw_splits/{split_paths(root, cfg.main_split, cfg.concept)[1].stem}"
    val_split = f"kw_splits/{split_paths(root, cfg.val_main_split, cfg.concept)[1].stem}"
    for s in (split, val_split):
        resolve_ids(root, s)  # missing/empty: one line before anything trains
    vq_name = cfg.vq_name or f"{cfg.name}_vq"
    if "vq" not in parts:
        from src.models.checkpoint import find_run_dir

        find_run_dir(paths, spec.name, vq_name)  # a missing shared VQ: one line before anything trains
    likes = {"vq": cfg.like_vq, "mask": cfg.like_trans, "res": cfg.like_res}
    trainers = {}
    for kind in parts:
        try:
            trainers[kind] = importlib.import_module({"vq": "src.train.vq", "mask": "src.train.mask",
                                                      "res": "src.train.residual"}[kind]).main
        except ImportError as exc:
            raise HmuError(f"the {kind} trainer is not available ({exc})") from None
    total = 0.0
    for kind in parts:
        preset = original_preset(paths, spec.name, likes[kind])
        t0 = time.perf_counter()
        rc = trainers[kind](trainer_argv(kind, cfg, split=split, val_split=val_split, preset=preset,
                                         vq_name=vq_name))
        total += time.perf_counter() - t0
        if rc:
            raise HmuError(f"training the retain-only {kind} model failed (exit status {rc})")
    print(f"retain-only reference trained on {split}: {', '.join(parts)} in {total:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
