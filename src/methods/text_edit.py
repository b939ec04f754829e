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

import argparse
import logging
import time
from collections.abc import Sequence

from src.common.errors import HmuError, cli
from src.common.run_names import fill_run_defaults, help_default
from src.common.validate import parse_checked

log = logging.getLogger(__name__)

# upstream scripts/eval/rece_uce.sh (one text embedding per word)
RETAIN_TEXTS = ["walk", "walking", "run", "running", "jog", "step", "turn", "dance", "dancing", "move", "moving", "steps", "raise", "arm", "leg", "forward", "front", "backward", "sit", "dodge", "moves"]
VARIANTS = {"uce": {"default": "bias", "bias": "bias", "hmu": "hmu"},
            "rece": {"default": "paper", "paper": "paper", "hmu": "hmu"}}


def build_parser(method: str) -> argparse.ArgumentParser:
    from src.config.flags import add_device_flags, add_location_flags
    from src.methods.flags import method_parser

    p, g = method_parser(f"python -m src.methods.{method}", __doc__,
                         concept_help="concept in assets/splits.json (its keywords are the default --forget_text)",
                         name_help="NEW run folder for the edited masked (or BAMM) transformer")
    g.add_argument("--res_out_name", default=None, help="NEW run folder for the edited residual transformer "
                                                         "(default <name>_res)")
    g.add_argument("--model", choices=("momask", "bamm"), default="momask", help="model family of --trans_name")
    g.add_argument("--trans_name", default=None,
                   help="source masked-transformer (or BAMM) run, read only (" + help_default("mask") + "; without it "
                        "an existing --name is the source, as upstream)")
    g.add_argument("--res_name", default=None,
                   help="source residual-transformer run, read only ('none': edit only --trans_name; "
                        + help_default("res") + ")")
    g.add_argument("--vq_name", default=None, help="upstream's: the VQ run the transformers use (checked against their "
                                                   "opt.txt; the edit does not change it)")
    g.add_argument("--ckpt", default="net_best_fid.tar",
                   help="checkpoint file in each source run's model/ (base.tar: upstream's link)")
    g = p.add_argument_group("texts")
    g.add_argument("--forget_text", nargs="+", default=None, help="concept texts (default: the concept's keywords)")
    g.add_argument("--retain_text", nargs="*", default=list(RETAIN_TEXTS), help="texts whose outputs are preserved")
    g.add_argument("--target_text", default="", help="what the concept texts should map to")
    add_location_flags(g, "clip_path", "glove_dir")
    g = p.add_argument_group("edit")
    g.add_argument("--variant", choices=sorted(VARIANTS[method]), default="default",
                   help="'default' = ours (" + VARIANTS[method]["default"] + "), 'hmu' = upstream's formula")
    g.add_argument("--preserve_scale", type=float, default=0.5, help="weight of the retain texts (rece_uce.sh: 0.5)")
    g.add_argument("--erase_scale", type=float, default=0.1, help="weight of the concept texts")
    g.add_argument("--lamb", type=float, default=0.1, help="weight of staying close to the original W")
    g.add_argument("--technique", choices=("tensor", "replace"), default="tensor", help="UCE target construction")
    if method == "rece":
        g.add_argument("--epochs", type=int, default=1, help="RECE epochs (rece_uce.sh: 1; upstream CLI default 3)")
        g.add_argument("--reg", type=float, default=1e-3, help="regulariser of the adversarial embedding")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0, help="recorded (the closed forms use no randomness)")
    g.add_argument("--force", action="store_true", help="overwrite existing output runs")
    add_device_flags(g)
    add_location_flags(g, "checkpoints_dir", "dataset_dir")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    from src.common.progress import add_progress_flag

    add_progress_flag(p)
    return p


def load_sources(paths, args):
    """[(kind, model, config, run folder, checkpoint path)] of the transformers to edit (masked/BAMM first)."""
    from src.config import VQConfig
    from src.models.checkpoint import checkpoint_file, find_run_dir, load_mask_transformer, load_res_transformer

    out = []
    if args.res_name and args.res_name.lower() != "none":  # a source pair left by two different edits: refused
        from src.models.edit_pair import check_pair

        check_pair(find_run_dir(paths, args.dataset_name, args.trans_name),
                   find_run_dir(paths, args.dataset_name, args.res_name))
    if args.model == "bamm":
        from src.models.bamm.config import BAMMTransConfig
        from src.models.bamm.load import load_bamm_run

        d = find_run_dir(paths, args.dataset_name, args.trans_name)
        opt = BAMMTransConfig.load(d / "opt.txt")
        vq_cfg = VQConfig.load(find_run_dir(paths, args.dataset_name, opt.vq_name) / "opt.txt")
        model, opt = load_bamm_run(d, vq=vq_cfg, which=args.ckpt)
        out.append(("mask", model, opt, d, checkpoint_file(d, args.ckpt, "bamm")))
    else:
        model, cfg, d = load_mask_transformer(paths, args.dataset_name, args.trans_name, ckpt=args.ckpt)
        out.append(("mask", model, cfg, d, checkpoint_file(d, args.ckpt, "mask")))
    if args.res_name and args.res_name.lower() != "none":
        model, cfg, d = load_res_transformer(paths, args.dataset_name, args.res_name, ckpt=args.ckpt)
        out.append(("res", model, cfg, d, checkpoint_file(d, args.ckpt, "res")))
    return out


def text_embeddings(paths, cfg, args, texts: Sequence[str], device):
    """(N, clip_dim) features of ``texts`` from the text encoder the model was trained with."""
    from src.models.text_encoders import build_text_encoder

    glove = args.glove_dir or paths.glove(cfg.dataset_name)
    enc = build_text_encoder(cfg.text_encoder, clip_path=args.clip_path, glove_dir=glove, dim=cfg.clip_dim,
                             device=device)
    return enc.encode(list(texts)).float()


def run_edit(method: str, args, *, paths, device) -> dict:
    """UCE or RECE on the source transformers of ``args``; writes the new runs and returns a summary."""
    from src.common.datasets import get_spec
    from src.data.keywords import forget_keywords
    from src.methods.edit_targets import find_cond_emb
    from src.methods.run_output import edit_meta, model_checkpoint, output_dir, write_run

    t0 = time.perf_counter()
    fill_run_defaults(args, args.dataset_name, trans_name="mask", res_name="res")
    spec = get_spec(args.dataset_name)
    args.dataset_name = spec.name
    keywords = forget_keywords(spec.name, args.concept)  # unknown concept: one line, before any work
    forget_texts = list(args.forget_text) if args.forget_text else keywords
    sources = load_sources(paths, args)
    outs = [args.name, args.res_out_name or f"{args.name}_res"][:len(sources)]
    dests = [output_dir(paths, spec.name, o, force=args.force, sources=tuple(s[3] for s in sources)) for o in outs]
    if len(set(dests)) != len(dests):
        raise HmuError(f"--name and --res_out_name give the same folder {dests[0]}")
    for kind, model, _, d, _ in sources:
        find_cond_emb(model, what=f"{kind} transformer {d.name}")
    cfg = sources[0][2]
    if args.vq_name and args.vq_name != cfg.vq_name:
        raise HmuError(f"--vq_name {args.vq_name}: transformer {args.trans_name} was trained on VQ {cfg.vq_name}")
    from src.data.prompt_check import check_prompts

    glove = paths.glove(spec.name)
    check_prompts(forget_texts, glove_dir=glove, what="--forget_text")
    if args.target_text.strip():  # the default target is the empty (unconditional) prompt
        check_prompts([args.target_text], glove_dir=glove, what="--target_text")
    if args.retain_text:
        check_prompts(args.retain_text, glove_dir=glove, what="--retain_text")
    forget = text_embeddings(paths, cfg, args, forget_texts, device).cpu()
    target = text_embeddings(paths, cfg, args, [args.target_text], device).cpu()
    retain = text_embeddings(paths, cfg, args, args.retain_text, device).cpu() if args.retain_text else None
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
    variant = VARIANTS[method][args.variant]
    kw = {"lamb": args.lamb, "erase_scale": args.erase_scale, "preserve_scale": args.preserve_scale,
          "technique": args.technique}
    t1 = time.perf_counter()
    if method == "uce":
        from src.methods.uce.edit import uce

        edited = uce(models, forget, target, retain, variant=variant, **kw)
    else:
        from src.methods.rece.edit import rece

        edited = rece(models, forget, target, retain, epochs=args.epochs, variant=variant, reg=args.reg, **kw).models
    t_edit = time.perf_counter() - t1
    wall = time.perf_counter() - t0
    from src.models.edit_pair import EDIT_FILE, new_edit, write_edit

    edit = new_edit(method, outs)  # one id for the runs of this edit: loaders refuse a mismatched pair
    written = []
    for (kind, _, _, src_dir, src_ckpt), new, dest, out_name in zip(sources, edited, dests, outs):
        layers = [n for n, _ in find_cond_emb(new)]
        meta = edit_meta(method=method, args=vars(args), source_ckpt=src_ckpt, variant=variant,
                         forget_texts=forget_texts, retain_texts=list(args.retain_text), target_text=args.target_text,
                         edited_layers=layers, wall_time_s=wall, edit_id=edit["edit_id"])
        # the edit keeps the source file's name; upstream's base.tar (a link name) becomes hmu's net_best_fid.tar
        keep = args.ckpt.endswith(".tar") and args.ckpt != "base.tar"
        write_run(dest, source_run=src_dir, out_name=out_name,
                  checkpoints={args.ckpt if keep else "net_best_fid.tar":
                               model_checkpoint(kind, new.cpu(), hmu_meta=meta)}, force=args.force,
                  extra_files={EDIT_FILE: lambda p: write_edit(p, edit)})
        written.append(str(dest))
    return {"out": written, "edit_s": t_edit, "wall_time_s": time.perf_counter() - t0, "forget_texts": forget_texts,
            "variant": variant}


def run_cli(method: str, argv: Sequence[str] | None = None) -> int:
    """``main`` of ``python -m src.methods.<method>`` (uce or rece)."""
    args = parse_checked(build_parser(method), argv)
    from src.common.device import resolve_device
    from src.common.logging import setup_logging
    from src.common.paths import Paths
    from src.common.progress import apply_progress_flag

    apply_progress_flag(args)
    setup_logging(args.verbose)
    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir)
    runs = [(method, args)]
    if args.trans_name is None:
        upstream = upstream_outputs(method, args, paths)
        if upstream:
            print(f"--name {args.name} is an existing run: upstream's meaning, the source; the edits are saved as "
                  f"{', '.join(n for n, _ in upstream)} (pass --trans_name to make --name the output)")
            runs = [(m, a) for (_, a), m in zip(upstream, ("uce", method) if len(upstream) == 2 else (method,))]
    device = resolve_device(args.gpu_id, args.device)
    for m, a in runs:
        s = run_edit(m, a, paths=paths, device=device)
        print(f"{m.upper()} ({s['variant']}) erasing {', '.join(s['forget_texts'])}: edit {s['edit_s']:.3f}s, "
              f"wall time {s['wall_time_s']:.2f}s")
        for d in s["out"]:
            print(f"saved {d}")
    return 0


def upstream_outputs(method: str, args, paths) -> list[tuple[str, argparse.Namespace]]:
    """Upstream's call (``--name`` an existing run, no ``--trans_name``) -> [(output name, args)] of the edits it
    writes, upstream's file names: rece -> UCE_<ps> then RECE<epochs>_<ps>, uce -> UCE_<ps>; [] otherwise."""
    import copy

    from src.models.checkpoint import run_dir_candidates

    if not any((d / "opt.txt").is_file() for d in run_dir_candidates(paths, args.dataset_name, args.name)):
        return []
    names = [f"UCE_{args.preserve_scale}"] + ([f"RECE{args.epochs}_{args.preserve_scale}"] if method == "rece" else [])
    out = []
    for n in names:
        a = copy.copy(args)
        a.trans_name, a.name, a.res_out_name = args.name, n, None
        out.append((n, a))
    return out


def cli_main(method: str):
    """``main(argv=None) -> int`` of ``python -m src.methods.<method>`` (uce or rece)."""

    @cli
    def main(argv: Sequence[str] | None = None) -> int:
        return run_cli(method, argv)

    main.__name__ = main.__qualname__ = "main"
    return main
