"""``python -m src.methods.gen_t2m_batch``: generate a motion for every motion of a dataset split, ``--repeat_times``
times, into ``generation/<run_name>/`` (upstream's batch generation, whose records the NCS metric reads).

    python -m src.methods.gen_t2m_batch --dataset_name synth --name t2m_tiny --res_name tres_tiny \\
        --run_name my_generation --split test --repeat_times 10 --skip_viz

Per repeat ``r`` and motion ``<id>``: ``feats/<r>/<id>.npy`` (raw features (T, dim_pose)), ``joints/<r>/<id>.npy``
((T, joints, 3)), without ``--skip_viz`` ``animations/<r>/<id>.mp4`` (gif without ffmpeg) and with ``--ik_viz``
``animations/<r>/<id>.bvh`` (inverse kinematics). ``records.json``
holds upstream's metadata (``dataset_name``, ``ckpt``, ``split``) and one record per generation with upstream's keys
(``caption, name, joint_path, feats_path, video_path, length, batch, sample, repeat``; paths relative to the
records file). Each motion is generated at its own length (cropped to a multiple of the VQ's unit, at most the
dataset's maximum); motions shorter than the dataset's minimum are skipped, as upstream's loader does. Which
captions: ``--records caption`` (default, upstream's) generates once per whole-motion caption line, so a motion with
three caption lines has three records per repeat under its one ``name`` and NCS takes its best rank over them (file
stem ``<id>_<line>``); ``--records motion`` generates once per motion from one of its caption lines drawn with
``--seed`` (one chance per repeat: NCS values of the two are not comparable). The same seed gives the same files.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.common.paths import ENV_GENERATION, generation_root  # noqa: F401  (re-exported: one root for all)
from src.common.validate import POSITIVE
from src.config.command import DeviceOptions, Locations, RunOptions, group, opt
from src.gen.generate import SAMPLING_DEFAULTS

log = logging.getLogger(__name__)

PROG = "python -m src.methods.gen_t2m_batch"
UPSTREAM_MAX_FRAMES = 200  # upstream's evaluation loader skips motions of 200 frames or more


def check_run_name(run_name: str) -> str:
    """A plain folder name (no separators, not '.'/'..'): generation/<run_name>/ stays inside generation/."""
    if not run_name or run_name in (".", "..") or "/" in run_name or "\\" in run_name or os.sep in run_name:
        raise HmuError(f"--run_name {run_name!r} must be a plain folder name")
    return run_name


@dataclasses.dataclass(kw_only=True)
class SamplingOptions:
    """sampling"""

    time_steps: int = opt(10, help="mask-predict iterations (upstream's batch generation: 10; src.gen: "
                                   f"{SAMPLING_DEFAULTS['time_steps']})")
    cond_scale: float = opt(SAMPLING_DEFAULTS["cond_scale"], help="cond scale")
    res_cond_scale: float = opt(SAMPLING_DEFAULTS["res_cond_scale"], help="res cond scale")
    temperature: float = opt(SAMPLING_DEFAULTS["temperature"], help="temperature")
    topkr: float = opt(SAMPLING_DEFAULTS["topkr"], help="topkr")
    gumbel_sample: bool = opt(SAMPLING_DEFAULTS["gumbel_sample"], action="store_true",
                              help="Gumbel-max instead of multinomial sampling")


@dataclasses.dataclass(kw_only=True)
class GenBatchConfig:
    """Generate a motion for every motion of a dataset split, --repeat_times times, into generation/<run_name>/."""

    # models (upstream flag names)
    dataset_name: str = opt("synth", help="dataset name or alias (synth, HumanML3D/t2m, Motion-X)")
    name: str = opt("t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns", help="masked-transformer (or BAMM) run")
    res_name: str | None = opt(None, help="residual-transformer run ('' = base layer only; default: the dataset's "
                                          "res run from src/common/run_names.py)")
    vq_name: str | None = opt(None, help="VQ run (default: the one the transformer was trained on)")
    ckpt: str = opt("net_best_fid.tar", help="transformer checkpoint file in each run's model/ (base.tar: upstream's "
                                             "released file)")
    model_name: str | None = opt(None, choices=("momask", "bamm"),
                                 help="model family of --name (default: read from its opt.txt)")
    # generation
    split: str = opt("test", help="split to generate: a name (test) or an id file (kw_splits/...)")
    run_name: str = opt("t2m_gen", help="output folder generation/<run_name>/")
    repeat_times: int = opt(1, range=POSITIVE, help="generations per motion")
    records: str = opt("caption", choices=("caption", "motion"),
                       help="caption: one generation per whole-motion caption line (upstream's); motion: one per "
                            "motion from a caption drawn with --seed")
    batch_size: int = opt(32, range=POSITIVE, help="captions per generator call")
    seed: int = opt(10107, help="seed of the caption draws and of sampling")
    skip_viz: bool = opt(False, action="store_true", help="no videos")
    ik_viz: bool = opt(False, action="store_true",
                       help="also write animations/<r>/<id>.bvh, the skeleton fitted by inverse kinematics")
    sampling: SamplingOptions = group(SamplingOptions)
    generation_dir: str | None = opt(None, help=f"output root (env {ENV_GENERATION}; default <repo>/generation)")
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "glove_dir", "clip_path"))
    device: DeviceOptions = group(DeviceOptions)
    run: RunOptions = group(RunOptions, only=("force", "no_progress"))

    def check(self) -> None:
        check_run_name(self.run_name)


CONFIG = GenBatchConfig


def split_items(root: Path, split: str, *, spec, unit_length: int) -> list[tuple[str, int, list[str]]]:
    """[(motion id, frames to generate, its whole-motion captions)] of a split, upstream's skipping rule applied."""
    from src.data.datasets import resolve_ids
    from src.data.humanml3d import HumanML3DFolder

    folder = HumanML3DFolder(root, spec)
    items = []
    for mid in resolve_ids(root, split):
        n = len(folder.motion(mid))
        if not spec.min_motion_length <= n < UPSTREAM_MAX_FRAMES:
            continue
        caps = folder.captions(mid)
        texts = [c.text for c in caps if c.start == 0.0 and c.end == 0.0] or [c.text for c in caps]
        if not texts:
            continue
        length = min(n, spec.max_motion_length) // unit_length * unit_length
        items.append((mid, length, texts))
    if not items:
        raise HmuError(f"split {split} of {root} has no motion between {spec.min_motion_length} and "
                       f"{UPSTREAM_MAX_FRAMES - 1} frames")
    return items


def write_video(path: Path, joints, *, caption: str, spec) -> Path:
    """One generated motion as a video (mp4, or gif without ffmpeg); returns the file written."""
    from src.viz.animate import save_comparison

    return save_comparison(path, {"generated": joints}, chain=spec.kinematic_chain, title=caption, fps=spec.fps)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.config.command import command_context, parse_config

    cfg = parse_config(GenBatchConfig, argv, prog=PROG, doc=__doc__)
    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run)
    if cfg.res_name is None:
        from src.common.run_names import default_run_name

        cfg = dataclasses.replace(cfg, res_name=default_run_name(ctx.dataset.name, "res"))
    return generate_batch(cfg, ctx)


def generation_jobs(items: Sequence[tuple[str, int, list[str]]], per: str, rng) -> list[tuple[str, str, int, str]]:
    """[(motion id, file stem, frames, caption)] of one repeat: every caption line of every motion (``per`` =
    'caption', stem ``<id>_<line>``), or one line per motion drawn from ``rng`` (``per`` = 'motion', stem ``<id>``)."""
    if per == "caption":
        return [(mid, f"{mid}_{j}", n, t) for mid, n, texts in items for j, t in enumerate(texts)]
    return [(mid, mid, n, texts[int(rng.integers(len(texts)))]) for mid, n, texts in items]


def generate_batch(cfg: GenBatchConfig, ctx) -> int:
    """Every motion of ``cfg.split``, ``cfg.repeat_times`` times: features, joints, videos and records.json."""
    import numpy as np
    from tqdm import tqdm

    from src.common.io import atomic_save_npy, atomic_write_json, refuse_overwrite
    from src.common.seed import torch_generator
    from src.data.motion import recover_from_ric
    from src.gen.generate import load_generator

    spec, paths = ctx.dataset, ctx.paths
    out = generation_root(cfg.generation_dir) / cfg.run_name
    records_path = out / "records.json"
    refuse_overwrite(records_path, ctx.force, what="generation records")
    root = paths.data_root(spec.name)
    if not root.is_dir():
        raise HmuError(f"dataset folder not found: {root}")
    device = ctx.device
    gen = load_generator(dataset_name=spec.name, name=cfg.name, res_name=cfg.res_name, vq_name=cfg.vq_name,
                         checkpoints_dir=paths.checkpoints_dir, dataset_dir=paths.dataset_dir, ckpt=cfg.ckpt,
                         device=device, clip_path=cfg.where.clip_path, glove_dir=cfg.where.glove_dir,
                         model=cfg.model_name,
                         batch_size=cfg.batch_size, **dataclasses.asdict(cfg.sampling))
    rng = np.random.default_rng(cfg.seed)
    items = split_items(root, cfg.split, spec=spec, unit_length=gen.unit_length)
    g = torch_generator(cfg.seed, device=device)
    records = []
    total = cfg.repeat_times * len(generation_jobs(items, cfg.records, np.random.default_rng(0)))
    bar = tqdm(total=total, desc=f"generate {cfg.split}", unit="motion", disable=not ctx.progress)
    for r in range(cfg.repeat_times):
        jobs = generation_jobs(items, cfg.records, rng)
        for b, start in enumerate(range(0, len(jobs), cfg.batch_size)):
            batch = jobs[start:start + cfg.batch_size]
            feats = gen.generate([cap for *_, cap in batch], [n for _, _, n, _ in batch], generator=g)
            for k, ((mid, stem, _, cap), f) in enumerate(zip(batch, feats)):
                rel = {"feats_path": f"feats/{r}/{stem}.npy", "joint_path": f"joints/{r}/{stem}.npy"}
                joints = recover_from_ric(f, spec.joints_num)
                atomic_save_npy(out / rel["feats_path"], f)
                atomic_save_npy(out / rel["joint_path"], joints)
                video = None
                if not cfg.skip_viz:
                    video = str(write_video(out / "animations" / str(r) / f"{stem}.mp4", joints, caption=cap,
                                            spec=spec).relative_to(out))
                bvh = None
                if cfg.ik_viz:
                    from src.viz.export import motion_bvh

                    bvh = str(motion_bvh(out / "animations" / str(r) / f"{stem}.bvh", joints,
                                         chain=spec.kinematic_chain, fps=spec.fps).relative_to(out))
                records.append({"caption": cap, "name": mid, **rel, "video_path": video, "length": int(len(f)),
                                "batch": b, "sample": k, "repeat": r, **({"bvh_path": bvh} if bvh else {})})
                bar.update(1)
    bar.close()
    atomic_write_json(records_path, {"dataset_name": spec.name, "ckpt": cfg.ckpt, "split": cfg.split,
                                     "seed": cfg.seed, "records_per": cfg.records, "models": gen.sources, "sampling": gen.sampling(),
                                     "paths": "relative to this file", "records": records})
    print(f"{len(records)} generations ({len(items)} motions, one per {cfg.records}, x {cfg.repeat_times} repeats) "
          f"-> {out}")
    print(f"Saved records to {records_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
