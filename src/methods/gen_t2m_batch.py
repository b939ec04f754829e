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
dataset's maximum) from one of its whole-motion captions, drawn with ``--seed``; motions shorter than the dataset's
minimum are skipped, as upstream's loader does. The same seed gives the same files.
"""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from src.config.flags import HelpFormatter
from src.common.errors import HmuError, cli

log = logging.getLogger(__name__)

ENV_GENERATION = "HMU_GENERATION"
UPSTREAM_MAX_FRAMES = 200  # upstream's evaluation loader skips motions of 200 frames or more


def generation_root(flag: str | os.PathLike | None = None) -> Path:
    """``--generation_dir``, else env HMU_GENERATION, else ``<repo>/generation`` (upstream's ``./generation``)."""
    from src.common.paths import REPO_ROOT

    if flag:
        return Path(flag).expanduser().resolve()
    env = os.environ.get(ENV_GENERATION)
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "generation"


def check_run_name(run_name: str) -> str:
    """A plain folder name (no separators, not '.'/'..'): generation/<run_name>/ stays inside generation/."""
    if not run_name or run_name in (".", "..") or "/" in run_name or "\\" in run_name or os.sep in run_name:
        raise HmuError(f"--run_name {run_name!r} must be a plain folder name")
    return run_name


def build_parser() -> argparse.ArgumentParser:
    from src.gen.generate import SAMPLING_DEFAULTS

    p = argparse.ArgumentParser(prog="python -m src.methods.gen_t2m_batch", description=__doc__.split("\n")[0],
                                formatter_class=HelpFormatter)
    g = p.add_argument_group("models (upstream flag names)")
    g.add_argument("--dataset_name", default="synth", help="dataset name or alias (synth, HumanML3D/t2m, Motion-X)")
    g.add_argument("--name", default="t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns",
                   help="masked-transformer (or BAMM) run")
    g.add_argument("--res_name", default="tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2",
                   help="residual-transformer run ('' = base layer only)")
    g.add_argument("--vq_name", default=None, help="VQ run (default: the one the transformer was trained on)")
    g.add_argument("--ckpt", default="net_best_fid.tar",
                   help="transformer checkpoint file in each run's model/ (base.tar: upstream's released file)")
    g.add_argument("--model_name", choices=("momask", "bamm"), default=None,
                   help="model family of --name (default: read from its opt.txt)")
    g = p.add_argument_group("generation")
    g.add_argument("--split", default="test", help="split to generate: a name (test) or an id file (kw_splits/...)")
    g.add_argument("--run_name", default="t2m_gen", help="output folder generation/<run_name>/")
    g.add_argument("--repeat_times", type=int, default=1, help="generations per motion")
    g.add_argument("--batch_size", type=int, default=32, help="captions per generator call")
    g.add_argument("--seed", type=int, default=10107, help="seed of the caption draws and of sampling")
    g.add_argument("--skip_viz", action="store_true", help="no videos")
    g.add_argument("--ik_viz", action="store_true",
                   help="also write animations/<r>/<id>.bvh, the skeleton fitted by inverse kinematics")
    for k, v in SAMPLING_DEFAULTS.items():
        if isinstance(v, bool):
            g.add_argument(f"--{k}", action="store_true", help="Gumbel-max instead of multinomial sampling")
        else:
            g.add_argument(f"--{k}", type=type(v), default=v, help=k.replace("_", " "))
    g = p.add_argument_group("locations and device")
    g.add_argument("--generation_dir", default=None,
                   help=f"output root (env {ENV_GENERATION}; default <repo>/generation)")
    g.add_argument("--checkpoints_dir", default=None, help="checkpoints root (env HMU_CHECKPOINTS)")
    g.add_argument("--dataset_dir", default=None, help="datasets root (env HMU_DATASET)")
    g.add_argument("--glove_dir", default=None, help="word vectors for the embedded text encoder")
    g.add_argument("--clip_path", default=None, help="CLIP ViT-B-32.pt for clip-conditioned models")
    g.add_argument("--force", action="store_true", help="overwrite an existing generation/<run_name>/records.json")
    g.add_argument("--gpu_id", type=int, default=-1, help="GPU index, -1 for CPU")
    g.add_argument("--device", default=None, help="torch device string; overrides --gpu_id")
    g.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


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
    args = build_parser().parse_args(argv)
    if args.repeat_times < 1:
        raise HmuError("--repeat_times must be >= 1")
    if args.batch_size < 1:
        raise HmuError("--batch_size must be >= 1")
    check_run_name(args.run_name)

    import numpy as np
    from tqdm import tqdm

    from src.common.device import resolve_device
    from src.common.io import atomic_save_npy, atomic_write_json, refuse_overwrite
    from src.common.logging import setup_logging
    from src.common.paths import Paths
    from src.common.seed import torch_generator
    from src.data.motion import recover_from_ric
    from src.common.datasets import get_spec
    from src.gen.generate import SAMPLING_DEFAULTS, load_generator

    setup_logging()
    spec = get_spec(args.dataset_name)
    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir)
    out = generation_root(args.generation_dir) / args.run_name
    records_path = out / "records.json"
    refuse_overwrite(records_path, args.force, what="generation records")
    root = paths.data_root(spec.name)
    if not root.is_dir():
        raise HmuError(f"dataset folder not found: {root}")
    device = resolve_device(args.gpu_id, args.device)
    gen = load_generator(dataset_name=spec.name, name=args.name, res_name=args.res_name, vq_name=args.vq_name,
                         checkpoints_dir=paths.checkpoints_dir, dataset_dir=paths.dataset_dir, ckpt=args.ckpt,
                         device=device, clip_path=args.clip_path, glove_dir=args.glove_dir, model=args.model_name,
                         batch_size=args.batch_size, **{k: getattr(args, k) for k in SAMPLING_DEFAULTS})
    rng = np.random.default_rng(args.seed)
    items = split_items(root, args.split, spec=spec, unit_length=gen.unit_length)
    g = torch_generator(args.seed, device=device)
    records = []
    total = args.repeat_times * len(items)
    bar = tqdm(total=total, desc=f"generate {args.split}", unit="motion", disable=args.no_progress)
    for r in range(args.repeat_times):
        for b, start in enumerate(range(0, len(items), args.batch_size)):
            batch = items[start:start + args.batch_size]
            caps = [texts[int(rng.integers(len(texts)))] for _, _, texts in batch]
            feats = gen.generate(caps, [n for _, n, _ in batch], generator=g)
            for k, ((mid, _, _), cap, f) in enumerate(zip(batch, caps, feats)):
                rel = {"feats_path": f"feats/{r}/{mid}.npy", "joint_path": f"joints/{r}/{mid}.npy"}
                joints = recover_from_ric(f, spec.joints_num)
                atomic_save_npy(out / rel["feats_path"], f)
                atomic_save_npy(out / rel["joint_path"], joints)
                video = None
                if not args.skip_viz:
                    video = str(write_video(out / "animations" / str(r) / f"{mid}.mp4", joints, caption=cap,
                                            spec=spec).relative_to(out))
                bvh = None
                if args.ik_viz:
                    from src.viz.export import motion_bvh

                    bvh = str(motion_bvh(out / "animations" / str(r) / f"{mid}.bvh", joints,
                                         chain=spec.kinematic_chain, fps=spec.fps).relative_to(out))
                records.append({"caption": cap, "name": mid, **rel, "video_path": video, "length": int(len(f)),
                                "batch": b, "sample": k, "repeat": r, **({"bvh_path": bvh} if bvh else {})})
                bar.update(1)
    bar.close()
    atomic_write_json(records_path, {"dataset_name": spec.name, "ckpt": args.ckpt, "split": args.split,
                                     "seed": args.seed, "models": gen.sources, "sampling": gen.sampling(),
                                     "paths": "relative to this file", "records": records})
    print(f"{len(records)} motions ({len(items)} x {args.repeat_times} repeats) -> {out}")
    print(f"Saved records to {records_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
