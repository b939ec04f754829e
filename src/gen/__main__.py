"""``python -m src.gen``: generate motions from text with a trained MoMask or BAMM; writes features, joints, prompts.json.

The generators themselves are :mod:`src.gen.generate` (library)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.common.validate import parse_checked
from src.config.flags import HelpFormatter
from src.data.prompts import read_prompt_lines
from src.gen.generate import SAMPLING_DEFAULTS, check_generation_count, load_generator

def build_parser():
    import argparse

    from src.config.flags import add_device_flags

    p = argparse.ArgumentParser(description="Generate motions from text with a trained MoMask or BAMM (family read from opt.txt).",
                                formatter_class=HelpFormatter)
    p.add_argument("--name", required=True, help="masked transformer (or BAMM) run")
    p.add_argument("--res_name", default="", help="residual transformer run ('' = base layer only)")
    p.add_argument("--vq_name", default=None, help="VQ run (default: the one the transformer was trained on)")
    p.add_argument("--len_name", default=None, help="length estimator run (default: length_estimator, if present)")
    p.add_argument("--dataset_name", default="synth", help="synth, t2m/HumanML3D, kit, Motion-X")
    p.add_argument("--text_prompt", default="", help="one prompt")
    p.add_argument("--text_path", default="", help="file of prompts, one per line, 'text' or 'text#frames'")
    p.add_argument("--motion_length", type=int, default=0, help="frames for --text_prompt (0 = estimate)")
    p.add_argument("--repeat_times", type=int, default=1, help="samples per prompt")
    p.add_argument("--seed", type=int, default=10107, help="sampling seed (same seed, same motions)")
    p.add_argument("--out", default=None, help="output folder (default results/gen/<name>/<ext>)")
    p.add_argument("--ext", default="default", help="sub-folder name under results/gen/<name>")
    p.add_argument("--ckpt", default="net_best_fid.tar", help="transformer checkpoint file (or latest.tar)")
    from src.config.flags import add_which_epoch_flag

    add_which_epoch_flag(p)
    p.add_argument("--batch_size", type=int, default=64, help="prompts per forward pass")
    for k, v in SAMPLING_DEFAULTS.items():
        if isinstance(v, bool):
            p.add_argument(f"--{k}", action="store_true", help="Gumbel-max instead of multinomial sampling")
        else:
            p.add_argument(f"--{k}", type=type(v), default=v, help=k.replace("_", " "))
    p.add_argument("--clip_path", default=None, help="CLIP ViT-B-32.pt for clip-conditioned models")
    p.add_argument("--glove_dir", default=None, help="word vectors for the embedded text encoder")
    p.add_argument("--checkpoints_dir", default=None, help="checkpoints root (env HMU_CHECKPOINTS)")
    p.add_argument("--dataset_dir", default=None, help="datasets root (env HMU_DATASET)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output folder's files")
    p.add_argument("--animate", dest="animate", action="store_true", default=True,
                   help="write videos/<motion>.mp4, a stick figure titled with its prompt (as upstream's gen_t2m.py)")
    p.add_argument("--no_animate", dest="animate", action="store_false", default=argparse.SUPPRESS,
                   help="motions only, no videos")
    p.add_argument("--gif", action="store_true", help="videos as gif instead of mp4")
    p.add_argument("--bvh", action="store_true",
                   help="also write bvh/<motion>.bvh (skeleton fitted by inverse kinematics)")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    add_device_flags(p)
    return p


def read_prompts(args) -> tuple[list[str], list[int | None]]:
    """(--text_prompt, --motion_length) or the lines of --text_path ('text' or 'text#frames')."""
    if bool(args.text_prompt) == bool(args.text_path):
        raise HmuError("give exactly one of --text_prompt and --text_path")
    if args.text_prompt:
        return [args.text_prompt], [args.motion_length or None]
    prompts = read_prompt_lines(args.text_path, what="--text_path")
    return [p.text for p in prompts], [p.length for p in prompts]


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_checked(build_parser(), argv)
    texts, lengths = read_prompts(args)
    check_generation_count(len(texts), args.repeat_times)

    from src.common.device import resolve_device
    from src.common.io import atomic_save_npy, atomic_write_json, begin_staged_folder, commit_staged_folder
    from src.common.logging import setup_logging
    from src.common.paths import Paths
    from src.common.seed import torch_generator
    from src.data.motion import recover_from_ric
    from src.common.datasets import get_spec
    from src.common.progress import apply_progress_flag
    from src.viz.compare import save_comparison
    from src.viz.export import write_outputs

    setup_logging()
    from src.data.prompt_check import check_prompts

    check_prompts(texts, glove_dir=Paths.default(dataset_dir=args.dataset_dir,
                                                 glove_dir=args.glove_dir).glove(get_spec(args.dataset_name).name))
    device = resolve_device(args.gpu_id, args.device)
    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir)
    out = Path(args.out) if args.out else paths.results_dir / "gen" / args.name / args.ext
    final_out = out  # everything is built in a hidden sibling and swapped in whole at the end (issue 26)
    out = begin_staged_folder(final_out, force=args.force, index="prompts.json", what="generation folder")
    sampling = {k: getattr(args, k) for k in SAMPLING_DEFAULTS}
    gen = load_generator(dataset_name=args.dataset_name, name=args.name, res_name=args.res_name,
                         vq_name=args.vq_name, checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir,
                         ckpt=args.ckpt, device=device, len_name=args.len_name, clip_path=args.clip_path,
                         glove_dir=args.glove_dir, batch_size=args.batch_size, **sampling)
    caps = [t for _ in range(args.repeat_times) for t in texts]
    lens = [l for _ in range(args.repeat_times) for l in lengths]
    feats = gen.generate(caps, lens, generator=torch_generator(args.seed, device=device))
    joints_num = get_spec(args.dataset_name).joints_num
    items, joints = [], []
    for i, f in enumerate(feats):
        k, r = i % len(texts), i // len(texts)
        stem = f"p{k:03d}_r{r}"
        joints.append(recover_from_ric(f, joints_num))
        atomic_save_npy(out / "features" / f"{stem}.npy", f)
        atomic_save_npy(out / "joints" / f"{stem}.npy", joints[-1])
        items.append({"prompt_id": k, "repeat": r, "text": texts[k], "requested_length": lengths[k],
                      "length": len(f), "features": f"features/{stem}.npy", "joints": f"joints/{stem}.npy"})
    spec = get_spec(args.dataset_name)
    write_outputs(out, items, joints, chain=spec.kinematic_chain, fps=spec.fps, animate=args.animate, gif=args.gif,
                  bvh=args.bvh, progress=apply_progress_flag(args), save_video=save_comparison)
    atomic_write_json(out / "prompts.json", {**gen.sources, "dataset_name": args.dataset_name, "seed": args.seed,
                                             "sampling": gen.sampling(), "items": items})
    commit_staged_folder(out, final_out, index="prompts.json", what="generation folder")
    out = final_out
    extra = (", videos" if args.animate else "") + (", bvh" if args.bvh else "")
    print(f"{len(items)} motions{extra} ({len(texts)} prompts x {args.repeat_times}) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
