"""The shared command line of the two text-projection edits, ``python -m src.methods.uce`` and
``python -m src.methods.rece`` (their ``__main__`` modules call ``run_cli``): edit the text projections (``cond_emb``) of the
masked AND residual transformers (or BAMM's with ``--model bamm``) and save them as NEW runs.

    python -m src.methods.rece --dataset_name synth --concept violence --trans_name mtrans --res_name rtrans \\
        --name mtrans_rece            # -> checkpoints/synth/mtrans_rece/ and checkpoints/synth/mtrans_rece_res/

Upstream's call, where ``--name`` is the SOURCE masked transformer (``--trans_name`` not given and ``--name`` an
existing run), keeps that meaning: the edits are saved as upstream names its files, runs ``RECE<epochs>_<preserve_scale>``
(rece, which like upstream's rece.py also saves its first step as ``UCE_<preserve_scale>``) or ``UCE_<preserve_scale>``
(uce), each with ``..._res``; the choice is printed.

Text embeddings come from the model's own text encoder (``text_encoder`` in its opt.txt: embedded for synth, CLIP
for real data). Defaults follow upstream's ``scripts/eval/rece_uce.sh``: forget texts = the concept's keywords
(assets/splits.json), its retain word list, target text "", preserve_scale 0.5, RECE epochs 1.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

from src.common.errors import HmuError, cli
from src.common.run_names import help_default, with_run_defaults
from src.config.command import DeviceOptions, Locations, RunOptions, group, opt

log = logging.getLogger(__name__)

# upstream scripts/eval/rece_uce.sh (one text embedding per word)
RETAIN_TEXTS = ["walk", "walking", "run", "running", "jog", "step", "turn", "dance", "dancing", "move", "moving", "steps", "raise", "arm", "leg", "forward", "front", "backward", "sit", "dodge", "moves"]
VARIANTS = {"uce": {"default": "bias", "bias": "bias", "hmu": "hmu"},
            "rece": {"default": "paper", "paper": "paper", "hmu": "hmu"}}


@dataclasses.dataclass(kw_only=True)
class UceConfig:
    """UCE on the text projections (cond_emb) of the masked and residual transformers, saved as NEW runs."""

    method = "uce"  # not a field: the edit this config runs
    # models
    dataset_name: str = opt("synth", help="dataset name or alias (synth, HumanML3D/t2m, Motion-X)")
    concept: str = opt("violence", aliases=("--split_name",),
                       help="concept in assets/splits.json (its keywords are the default --forget_text)")
    name: str = opt(None, required=True, aliases=("--out_name",),
                    help="NEW run folder for the edited masked (or BAMM) transformer")
    res_out_name: str | None = opt(None, help="NEW run folder for the edited residual transformer (default "
                                              "<name>_res)")
    model: str = opt("momask", choices=("momask", "bamm"), help="model family of --trans_name")
    trans_name: str | None = opt(None, help="source masked-transformer (or BAMM) run, read only ("
                                            + help_default("mask") + "; without it an existing --name is the source, "
                                                                     "as upstream)")
    res_name: str | None = opt(None, help="source residual-transformer run, read only ('none': edit only "
                                          "--trans_name; " + help_default("res") + ")")
    vq_name: str | None = opt(None, help="upstream's: the VQ run the transformers use (checked against their opt.txt; "
                                         "the edit does not change it)")
    ckpt: str = opt("net_best_fid.tar", help="checkpoint file in each source run's model/ (base.tar: upstream's link)")
    # texts
    forget_text: list[str] | None = opt(None, help="concept texts (default: the concept's keywords)")
    retain_text: list[str] = opt(factory=lambda: list(RETAIN_TEXTS), nargs="*",
                                 help="texts whose outputs are preserved")
    target_text: str = opt("", help="what the concept texts should map to")
    # edit
    variant: str = opt("default", choices=sorted(VARIANTS["uce"]),
                       help="'default' = ours (" + VARIANTS["uce"]["default"] + "), 'hmu' = upstream's formula")
    preserve_scale: float = opt(0.5, help="weight of the retain texts (rece_uce.sh: 0.5)")
    erase_scale: float = opt(0.1, help="weight of the concept texts")
    lamb: float = opt(0.1, help="weight of staying close to the original W")
    technique: str = opt("tensor", choices=("tensor", "replace"), help="UCE target construction")
    seed: int = opt(0, help="recorded (the closed forms use no randomness)")
    device: DeviceOptions = group(DeviceOptions)
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "glove_dir", "clip_path"))
    run: RunOptions = group(RunOptions)

    def resolved(self):
        """Source runs from the run-name table when not given, the dataset by its canonical name."""
        from src.common.datasets import get_spec

        cfg = with_run_defaults(self, self.dataset_name, trans_name="mask", res_name="res")
        return dataclasses.replace(cfg, dataset_name=get_spec(self.dataset_name).name)


@dataclasses.dataclass(kw_only=True)
class ReceConfig(UceConfig):
    """RECE on the text projections (cond_emb) of the masked and residual transformers, saved as NEW runs."""

    method = "rece"
    variant: str = opt("default", choices=sorted(VARIANTS["rece"]),
                       help="'default' = ours (" + VARIANTS["rece"]["default"] + "), 'hmu' = upstream's formula")
    epochs: int = opt(1, help="RECE epochs (rece_uce.sh: 1; upstream CLI default 3)")
    reg: float = opt(1e-3, help="regulariser of the adversarial embedding")


CONFIGS = {"uce": UceConfig, "rece": ReceConfig}


def load_sources(paths, edit: UceConfig):
    """[(kind, model, config, run folder, checkpoint path)] of the transformers to edit (masked/BAMM first)."""
    from src.config import VQConfig
    from src.models.checkpoint import checkpoint_file, find_run_dir, load_mask_transformer, load_res_transformer

    out = []
    if edit.res_name and edit.res_name.lower() != "none":  # a source pair left by two different edits: refused
        from src.models.edit_pair import check_pair

        check_pair(find_run_dir(paths, edit.dataset_name, edit.trans_name),
                   find_run_dir(paths, edit.dataset_name, edit.res_name))
    if edit.model == "bamm":
        from src.models.bamm.config import BAMMTransConfig
        from src.models.bamm.load import load_bamm_run

        d = find_run_dir(paths, edit.dataset_name, edit.trans_name)
        opt = BAMMTransConfig.load(d / "opt.txt")
        vq_cfg = VQConfig.load(find_run_dir(paths, edit.dataset_name, opt.vq_name) / "opt.txt")
        model, opt = load_bamm_run(d, vq=vq_cfg, which=edit.ckpt)
        out.append(("mask", model, opt, d, checkpoint_file(d, edit.ckpt, "bamm")))
    else:
        model, cfg, d = load_mask_transformer(paths, edit.dataset_name, edit.trans_name, ckpt=edit.ckpt)
        out.append(("mask", model, cfg, d, checkpoint_file(d, edit.ckpt, "mask")))
    if edit.res_name and edit.res_name.lower() != "none":
        model, cfg, d = load_res_transformer(paths, edit.dataset_name, edit.res_name, ckpt=edit.ckpt)
        out.append(("res", model, cfg, d, checkpoint_file(d, edit.ckpt, "res")))
    return out


def text_embeddings(paths, cfg, edit: UceConfig, texts: Sequence[str], device):
    """(N, clip_dim) features of ``texts`` from the text encoder the model was trained with."""
    from src.models.text_encoders import build_text_encoder

    glove = edit.where.glove_dir or paths.glove(cfg.dataset_name)
    enc = build_text_encoder(cfg.text_encoder, clip_path=edit.where.clip_path, glove_dir=glove, dim=cfg.clip_dim,
                             device=device)
    return enc.encode(list(texts)).float()


def run_edit(edit: UceConfig, ctx) -> dict:
    """UCE or RECE (``edit.method``) on the source transformers of ``edit`` (resolved); writes the new runs and
    returns a summary."""
    from src.data.keywords import forget_keywords
    from src.methods.edit_targets import find_cond_emb
    from src.methods.run_output import edit_meta, model_checkpoint, output_dir, write_run
    from src.config.command import flat_dict

    t0 = time.perf_counter()
    method, paths, spec, device = edit.method, ctx.paths, ctx.dataset, ctx.device
    keywords = forget_keywords(spec.name, edit.concept)  # unknown concept: one line, before any work
    forget_texts = list(edit.forget_text) if edit.forget_text else keywords
    sources = load_sources(paths, edit)
    outs = [edit.name, edit.res_out_name or f"{edit.name}_res"][:len(sources)]
    dests = [output_dir(paths, spec.name, o, force=ctx.force, sources=tuple(s[3] for s in sources)) for o in outs]
    if len(set(dests)) != len(dests):
        raise HmuError(f"--name and --res_out_name give the same folder {dests[0]}")
    for kind, model, _, d, _ in sources:
        find_cond_emb(model, what=f"{kind} transformer {d.name}")
    cfg = sources[0][2]
    if edit.vq_name and edit.vq_name != cfg.vq_name:
        raise HmuError(f"--vq_name {edit.vq_name}: transformer {edit.trans_name} was trained on VQ {cfg.vq_name}")
    from src.data.prompt_check import check_prompts

    glove = paths.glove(spec.name)
    check_prompts(forget_texts, glove_dir=glove, what="--forget_text")
    if edit.target_text.strip():  # the default target is the empty (unconditional) prompt
        check_prompts([edit.target_text], glove_dir=glove, what="--target_text")
    if edit.retain_text:
        check_prompts(edit.retain_text, glove_dir=glove, what="--retain_text")
    forget = text_embeddings(paths, cfg, edit, forget_texts, device).cpu()
    target = text_embeddings(paths, cfg, edit, [edit.target_text], device).cpu()
    retain = text_embeddings(paths, cfg, edit, edit.retain_text, device).cpu() if edit.retain_text else None
    known = forget.abs().sum(dim=1) > 0
    if not known.any():
        raise HmuError(f"--forget_text: none of {forget_texts} has a text embedding (words unknown to the "
                       f"{cfg.text_encoder} encoder)")
    if not known.all():  # a zero embedding would add nothing to the edit: say so and leave it out
        dropped = [t for t, k in zip(forget_texts, known.tolist()) if not k]
        log.warning("forget texts unknown to the %s encoder, left out: %s", cfg.text_encoder, ", ".join(dropped))
        forget_texts = [t for t, k in zip(forget_texts, known.tolist()) if k]
        forget = forget[known]
    models = [s[1] for s in sources]
    variant = VARIANTS[method][edit.variant]
    kw = {"lamb": edit.lamb, "erase_scale": edit.erase_scale, "preserve_scale": edit.preserve_scale,
          "technique": edit.technique}
    t1 = time.perf_counter()
    if method == "uce":
        from src.methods.uce.edit import uce

        edited = uce(models, forget, target, retain, variant=variant, **kw)
    else:
        from src.methods.rece.edit import rece

        edited = rece(models, forget, target, retain, epochs=edit.epochs, variant=variant, reg=edit.reg, **kw).models
    t_edit = time.perf_counter() - t1
    wall = time.perf_counter() - t0
    from src.models.edit_pair import EDIT_FILE, new_edit, write_edit

    pair = new_edit(method, outs)  # one id for the runs of this edit: loaders refuse a mismatched pair
    written = []
    for (kind, _, _, src_dir, src_ckpt), new, dest, out_name in zip(sources, edited, dests, outs):
        layers = [n for n, _ in find_cond_emb(new)]
        meta = edit_meta(method=method, args=flat_dict(edit), source_ckpt=src_ckpt, variant=variant,
                         forget_texts=forget_texts, retain_texts=list(edit.retain_text), target_text=edit.target_text,
                         edited_layers=layers, wall_time_s=wall, edit_id=pair["edit_id"])
        # the edit keeps the source file's name; upstream's base.tar (a link name) becomes hmu's net_best_fid.tar
        keep = edit.ckpt.endswith(".tar") and edit.ckpt != "base.tar"
        write_run(dest, source_run=src_dir, out_name=out_name,
                  checkpoints={edit.ckpt if keep else "net_best_fid.tar":
                               model_checkpoint(kind, new.cpu(), hmu_meta=meta)}, force=ctx.force,
                  extra_files={EDIT_FILE: lambda p: write_edit(p, pair)})
        written.append(str(dest))
    return {"out": written, "edit_s": t_edit, "wall_time_s": time.perf_counter() - t0, "forget_texts": forget_texts,
            "variant": variant}


def run_cli(method: str, argv: Sequence[str] | None = None) -> int:
    """``main`` of ``python -m src.methods.<method>`` (uce or rece)."""
    from src.config.command import command_context, parse_config

    cfg = parse_config(CONFIGS[method], argv, prog=f"python -m src.methods.{method}", doc=__doc__)
    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run)
    edits = [cfg]
    if cfg.trans_name is None:
        upstream = upstream_outputs(cfg, ctx.paths)
        if upstream:
            print(f"--name {cfg.name} is an existing run: upstream's meaning, the source; the edits are saved as "
                  f"{', '.join(e.name for e in upstream)} (pass --trans_name to make --name the output)")
            edits = upstream
    for e in edits:
        s = run_edit(e.resolved(), ctx)
        print(f"{e.method.upper()} ({s['variant']}) erasing {', '.join(s['forget_texts'])}: edit {s['edit_s']:.3f}s, "
              f"wall time {s['wall_time_s']:.2f}s")
        for d in s["out"]:
            print(f"saved {d}")
    return 0


def upstream_outputs(cfg: UceConfig, paths) -> list[UceConfig]:
    """Upstream's call (``--name`` an existing run, no ``--trans_name``) -> the edits it writes, as configs, with
    upstream's file names: rece -> UCE_<ps> (a UCE edit) then RECE<epochs>_<ps>, uce -> UCE_<ps>; [] otherwise."""
    from src.models.checkpoint import run_dir_candidates

    if not any((d / "opt.txt").is_file() for d in run_dir_candidates(paths, cfg.dataset_name, cfg.name)):
        return []
    common = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(UceConfig)}
    out = [UceConfig(**{**common, "variant": cfg.variant if cfg.variant in VARIANTS["uce"] else "default",
                        "trans_name": cfg.name, "name": f"UCE_{cfg.preserve_scale}", "res_out_name": None})]
    if cfg.method == "rece":
        out.append(dataclasses.replace(cfg, trans_name=cfg.name, name=f"RECE{cfg.epochs}_{cfg.preserve_scale}",
                                       res_out_name=None))
    return out


def cli_main(method: str):
    """``main(argv=None) -> int`` of ``python -m src.methods.<method>`` (uce or rece)."""

    @cli
    def main(argv: Sequence[str] | None = None) -> int:
        return run_cli(method, argv)

    main.__name__ = main.__qualname__ = "main"
    return main
