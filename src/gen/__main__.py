"""``python -m src.gen``: generate motions from text with a trained MoMask or BAMM; writes features, joints, prompts.json.

The generators themselves are :mod:`src.gen.generate` (library)."""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.config.command import DeviceOptions, Locations, RunOptions, command_context, config_parser, group, parse_config
from src.config.flags import opt, which_epoch_opt

PROG = "python -m src.gen"
# sampling defaults: src.gen.generate.SAMPLING_DEFAULTS (tests/test_gen.py checks these agree; the library is not
# imported here so that --help stays instant)


@dataclasses.dataclass(kw_only=True)
class GenConfig:
    """Generate motions from text with a trained MoMask or BAMM (family read from opt.txt)."""

    name: str = opt(None, required=True, help="masked transformer (or BAMM) run")
    res_name: str = opt("", help="residual transformer run ('' = base layer only)")
    vq_name: str | None = opt(None, help="VQ run (default: the one the transformer was trained on)")
    len_name: str | None = opt(None, help="length estimator run (default: length_estimator, if present)")
    dataset_name: str = opt("synth", help="synth, t2m/HumanML3D, kit, Motion-X")
    text_prompt: str = opt("", help="one prompt")
    text_path: str = opt("", help="file of prompts, one per line, 'text' or 'text#frames'")
    motion_length: int = opt(0, help="frames for --text_prompt (0 = estimate)")
    repeat_times: int = opt(1, help="samples per prompt")
    seed: int = opt(10107, help="sampling seed (same seed, same motions)")
    out: str | None = opt(None, help="output folder (default results/gen/<name>/<ext>)")
    ext: str = opt("default", help="sub-folder name under results/gen/<name>")
    ckpt: str = opt("net_best_fid.tar", help="transformer checkpoint file (or latest.tar)")
    which_epoch: str | None = which_epoch_opt()
    batch_size: int = opt(64, help="prompts per forward pass")
    time_steps: int = opt(18, help="time steps")
    cond_scale: float = opt(4.0, help="cond scale")
    res_cond_scale: float = opt(5.0, help="res cond scale")
    temperature: float = opt(1.0, help="temperature")
    topkr: float = opt(0.9, help="topkr")
    gumbel_sample: bool = opt(False, action="store_true", help="Gumbel-max instead of multinomial sampling")
    clip_path: str | None = opt(None, help="CLIP ViT-B-32.pt for clip-conditioned models")
    animate: bool = opt(True, action="store_true",
                        help="write videos/<motion>.mp4, a stick figure titled with its prompt (as upstream's "
                             "gen_t2m.py)")
    no_animate: bool | None = dataclasses.field(default=None, metadata={
        "help": "motions only, no videos", "dest": "animate", "action": "store_false", "default": argparse.SUPPRESS})
    gif: bool = opt(False, action="store_true", help="videos as gif instead of mp4")
    bvh: bool = opt(False, action="store_true", help="also write bvh/<motion>.bvh (skeleton fitted by inverse "
                                                     "kinematics)")
    where: Locations = group(Locations, only=("glove_dir", "checkpoints_dir", "dataset_dir"))
    device: DeviceOptions = group(DeviceOptions)
    run: RunOptions = group(RunOptions)

    def sampling(self) -> dict:
        from src.gen.generate import SAMPLING_DEFAULTS

        return {k: getattr(self, k) for k in SAMPLING_DEFAULTS}

    def prompts(self) -> tuple[list[str], list[int | None]]:
        """(--text_prompt, --motion_length) or the lines of --text_path ('text' or 'text#frames')."""
        if self.text_prompt:
            return [self.text_prompt], [self.motion_length or None]
        from src.data.prompts import read_prompt_lines

        prompts = read_prompt_lines(self.text_path, what="--text_path")
        return [p.text for p in prompts], [p.length for p in prompts]

    def check(self) -> None:
        if bool(self.text_prompt) == bool(self.text_path):
            raise HmuError("give exactly one of --text_prompt and --text_path")
        if self.repeat_times < 1:
            raise HmuError(f"--repeat_times must be >= 1, got {self.repeat_times}")


def build_parser() -> argparse.ArgumentParser:
    return config_parser(GenConfig, prog=PROG, doc=__doc__)


def parse(argv: Sequence[str] | None = None) -> GenConfig:
    return parse_config(GenConfig, argv, prog=PROG, doc=__doc__)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse(argv)
    return generate_files(cfg, command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run))


def generate_files(cfg: GenConfig, ctx) -> int:
    """Generate ``cfg``'s prompts and write features, joints, videos and prompts.json (see :func:`main`)."""
    from src.common.io import atomic_save_npy, atomic_write_json, begin_staged_folder, commit_staged_folder
    from src.common.seed import torch_generator
    from src.data.motion import recover_from_ric
    from src.data.prompt_check import check_prompts
    from src.gen.generate import check_generation_count, load_generator
    from src.viz.compare import save_comparison
    from src.viz.export import write_outputs

    texts, lengths = cfg.prompts()
    check_generation_count(len(texts), cfg.repeat_times)
    spec, paths, device = ctx.dataset, ctx.paths, ctx.device
    check_prompts(texts, glove_dir=paths.glove(spec.name))
    out = Path(cfg.out) if cfg.out else paths.results_dir / "gen" / cfg.name / cfg.ext
    final_out = out  # everything is built in a hidden sibling and swapped in whole at the end (issue 26)
    out = begin_staged_folder(final_out, force=ctx.force, index="prompts.json", what="generation folder")
    gen = load_generator(dataset_name=cfg.dataset_name, name=cfg.name, res_name=cfg.res_name,
                         vq_name=cfg.vq_name, checkpoints_dir=paths.checkpoints_dir, dataset_dir=paths.dataset_dir,
                         ckpt=cfg.ckpt, device=device, len_name=cfg.len_name, clip_path=cfg.clip_path,
                         glove_dir=cfg.where.glove_dir, batch_size=cfg.batch_size, **cfg.sampling())
    caps = [t for _ in range(cfg.repeat_times) for t in texts]
    lens = [n for _ in range(cfg.repeat_times) for n in lengths]
    feats = gen.generate(caps, lens, generator=torch_generator(cfg.seed, device=device))
    items, joints = [], []
    for i, f in enumerate(feats):
        k, r = i % len(texts), i // len(texts)
        stem = f"p{k:03d}_r{r}"
        joints.append(recover_from_ric(f, spec.joints_num))
        atomic_save_npy(out / "features" / f"{stem}.npy", f)
        atomic_save_npy(out / "joints" / f"{stem}.npy", joints[-1])
        items.append({"prompt_id": k, "repeat": r, "text": texts[k], "requested_length": lengths[k],
                      "length": len(f), "features": f"features/{stem}.npy", "joints": f"joints/{stem}.npy"})
    write_outputs(out, items, joints, chain=spec.kinematic_chain, fps=spec.fps, animate=cfg.animate, gif=cfg.gif,
                  bvh=cfg.bvh, progress=ctx.progress, save_video=save_comparison)
    atomic_write_json(out / "prompts.json", {**gen.sources, "dataset_name": cfg.dataset_name, "seed": cfg.seed,
                                             "sampling": gen.sampling(), "items": items})
    commit_staged_folder(out, final_out, index="prompts.json", what="generation folder")
    out = final_out
    extra = (", videos" if cfg.animate else "") + (", bvh" if cfg.bvh else "")
    print(f"{len(items)} motions{extra} ({len(texts)} prompts x {cfg.repeat_times}) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
