"""``python -m src.gen``: generate motions from text with a trained MoMask or BAMM, into MoMask's layout.

Output folder ``generation/<ext>/`` (upstream gen_t2m.py's ``./generation/<ext>/``; ``generation/`` is
``--generation_dir``, env HMU_GENERATION, else ``<repo>/generation``; ``--out`` names a folder instead). For prompt
``k``, repeat ``r`` and generated length ``L`` frames, with ``S = sample<k>_repeat<r>_len<L>`` (upstream's names):

    joints/<k>/S.npy         (T, joints, 3) positions, as upstream
    features/<k>/S.npy       (T, dim_pose) raw features (hmu's addition: what the evaluation reads)
    animations/<k>/S.mp4     stick figure titled with the prompt (S.gif with --gif; none with --no_animate)
    animations/<k>/S.bvh     with --bvh (joint names: --bvh_names)
    prompts.json             the index: runs, sampling, seed, one item per motion with the paths above

``python -m src.momask_codes.gen_t2m`` is the same command under upstream's name (``--run_name`` = ``--ext``).
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
    res_name: str | None = opt(None, help="residual transformer run (default: the dataset's residual run, as the "
                                          "evaluation's, from src/common/run_names.py; 'none' = base layer only)")
    vq_name: str | None = opt(None, help="VQ run (default: the one the transformer was trained on)")
    len_name: str | None = opt(None, help="length estimator run (default: length_estimator, if present)")
    dataset_name: str = opt("synth", help="synth, t2m/HumanML3D, kit, Motion-X")
    text_prompt: str = opt("", help="one prompt")
    text_path: str = opt("", help="file of prompts, one per line: 'text', 'text#frames' or 'text#NA' (length "
                                  "predicted by the length estimator, as MoMask)")
    motion_length: int = opt(0, help="frames for --text_prompt (0 = estimate)")
    repeat_times: int = opt(1, help="samples per prompt")
    seed: int = opt(10107, help="sampling seed (same seed, same motions)")
    ext: str = opt("text2motion", help="output folder generation/<ext>/ (upstream's --ext and default)")
    generation_dir: str | None = opt(None, help="root of the output folders (env HMU_GENERATION; default "
                                                "<repo>/generation)")
    out: str | None = opt(None, help="output folder instead of generation/<ext>/")
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
    bvh: bool = opt(False, action="store_true", help="also write animations/<k>/<motion>.bvh (skeleton fitted by "
                                                     "inverse kinematics)")
    bvh_names: str = opt("smpl", choices=("smpl", "momask", "mixamo"),
                         help="BVH joint names: smpl (Pelvis, L_Hip, ...), momask (MoMask's template: Hips, "
                              "LeftUpLeg, ...), mixamo (mixamorig:Hips, mixamorig:LeftUpLeg, ...)")
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

    def residual(self) -> str | None:
        """The residual run to load: --res_name, else the dataset's default (as the evaluation); None for 'none'."""
        if self.res_name is None:
            from src.common.run_names import default_run_name

            return default_run_name(self.dataset_name, "res")
        return None if self.res_name.strip().lower() in ("", "none") else self.res_name

    def output_folder(self) -> Path:
        """--out, else generation/<ext>/ under --generation_dir / HMU_GENERATION / <repo>/generation."""
        if self.out:
            return Path(self.out)
        from src.common.paths import generation_root

        return generation_root(self.generation_dir) / self.ext

    def check(self) -> None:
        if not self.ext or self.ext in (".", "..") or "/" in self.ext or "\\" in self.ext:
            raise HmuError(f"--ext {self.ext!r} must be a plain folder name")
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


def sample_stem(k: int, r: int, length: int) -> str:
    """Upstream gen_t2m.py's file name of prompt ``k``, repeat ``r``, ``length`` frames (no suffix)."""
    return f"sample{k}_repeat{r}_len{length}"


def generate_files(cfg: GenConfig, ctx) -> int:
    """Generate ``cfg``'s prompts and write the layout of this module's docstring; returns 0."""
    import logging

    from src.common.io import atomic_save_npy, atomic_write_json, begin_staged_folder, commit_staged_folder
    from src.common.progress import progress
    from src.common.seed import torch_generator
    from src.data.motion import recover_from_ric
    from src.data.prompt_check import check_prompts
    from src.gen.generate import check_generation_count, load_generator
    from src.viz.compare import save_comparison
    from src.viz.export import write_outputs

    log = logging.getLogger("src.gen")
    texts, lengths = cfg.prompts()
    check_generation_count(len(texts), cfg.repeat_times)
    spec, paths, device = ctx.dataset, ctx.paths, ctx.device
    check_prompts(texts, glove_dir=paths.glove(spec.name))
    res_name = cfg.residual()
    final_out = cfg.output_folder()  # built in a hidden sibling and swapped in whole at the end (issue 26)
    out = begin_staged_folder(final_out, force=ctx.force, index="prompts.json", what="generation folder")
    # loading (text encoder above all) is the slow, silent part: say what is happening first
    log.info("loading %s%s on %s ...", cfg.name, f" + residual {res_name}" if res_name else " (base layer only)",
             device)
    gen = load_generator(dataset_name=cfg.dataset_name, name=cfg.name, res_name=res_name,
                         vq_name=cfg.vq_name, checkpoints_dir=paths.checkpoints_dir, dataset_dir=paths.dataset_dir,
                         ckpt=cfg.ckpt, device=device, len_name=cfg.len_name, clip_path=cfg.clip_path,
                         glove_dir=cfg.where.glove_dir, batch_size=cfg.batch_size, **cfg.sampling())
    caps = [t for _ in range(cfg.repeat_times) for t in texts]
    lens = [n for _ in range(cfg.repeat_times) for n in lengths]
    generator = torch_generator(cfg.seed, device=device)
    feats: list = []
    step = max(1, int(getattr(gen, "batch_size", cfg.batch_size)))
    # one call per batch with the same torch.Generator: the motions of one call over all of them
    with progress(total=len(caps), desc="generating", unit="motion", enabled=ctx.progress) as bar:
        for i in range(0, len(caps), step):
            feats += gen.generate(caps[i:i + step], lens[i:i + step], generator=generator)
            bar.update(len(caps[i:i + step]))
    items, joints, stems = [], [], []
    for i, f in enumerate(feats):
        k, r = i % len(texts), i // len(texts)
        name = f"{k}/{sample_stem(k, r, len(f))}"
        joints.append(recover_from_ric(f, spec.joints_num))
        atomic_save_npy(out / "features" / f"{name}.npy", f)
        atomic_save_npy(out / "joints" / f"{name}.npy", joints[-1])
        stems.append(f"animations/{name}")
        items.append({"prompt_id": k, "repeat": r, "text": texts[k], "requested_length": lengths[k],
                      "length": len(f), "features": f"features/{name}.npy", "joints": f"joints/{name}.npy"})
    write_outputs(out, items, joints, chain=spec.kinematic_chain, fps=spec.fps, stems=stems, animate=cfg.animate,
                  gif=cfg.gif, bvh=cfg.bvh, bvh_names=cfg.bvh_names, progress=ctx.progress,
                  save_video=save_comparison)
    atomic_write_json(out / "prompts.json", {**gen.sources, "dataset_name": cfg.dataset_name, "seed": cfg.seed,
                                             "sampling": gen.sampling(), "items": items})
    commit_staged_folder(out, final_out, index="prompts.json", what="generation folder")
    extra = (", videos" if cfg.animate else "") + (", bvh" if cfg.bvh else "")
    print(f"{len(items)} motions{extra} ({len(texts)} prompts x {cfg.repeat_times}) -> {final_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
