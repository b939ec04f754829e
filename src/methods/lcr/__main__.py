"""``python -m src.methods.lcr``: collect (cached) -> count -> select -> replace -> save a NEW VQ run.

    python -m src.methods.lcr --dataset_name synth --concept violence --vq_name rvq_tiny --name rvq_tiny_lcr

Sources are read only: ``--vq_name`` (the VQ run) and its ``--ckpt``. The output is ``checkpoints/<ds>/<--name>/``
(opt.txt and meta/ copied, ``model/net_best_fid.tar`` with upstream's ``removed_codes`` and ``hmu_meta``). Evaluate
it with the original transformers and ``--vq_name <--name>``.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.common.run_names import fill_run_defaults, help_default


def build_parser() -> argparse.ArgumentParser:
    from src.config.flags import add_device_flags, add_location_flags
    from src.methods.flags import method_parser

    p, g = method_parser("python -m src.methods.lcr", __doc__,
                         concept_help="concept in assets/splits.json; its kw_splits are the forget/retain sets",
                         name_help="NEW run folder for the edited VQ: checkpoints/<dataset>/<name>/")
    g.add_argument("--vq_name", default=None, help="source VQ run (read only; " + help_default("vq") + ")")
    g.add_argument("--ckpt", default="net_best_fid.tar", help="source VQ checkpoint file in <vq_name>/model/")
    g = p.add_argument_group("data")
    g.add_argument("--main_split", default="train_val", help="split the keyword splits were made from")
    g.add_argument("--forget_split", default=None, help="forget ids (default kw_splits/<main_split>-w-<concept>)")
    g.add_argument("--retain_split", default=None, help="retain ids (default kw_splits/<main_split>-wo-<concept>)")
    g.add_argument("--n_crops", type=int, default=1, help="crops per motion (1 = the whole motion, deterministic)")
    g.add_argument("--upstream_collection", action="store_true",
                   help="upstream's collection: 20 random crops, one row per caption line (overrides --n_crops)")
    g.add_argument("--batch_size", type=int, default=256, help="motions per encoder call")
    g.add_argument("--cache_dir", default=None, help="code cache folder (default checkpoints/<ds>/cache/lcr_codes)")
    g.add_argument("--no_cache", action="store_true", help="neither read nor write the code cache")
    g = p.add_argument_group("selection and replacement")
    g.add_argument("--select", choices=("ratio", "upstream"), default="ratio",
                   help="ratio: rate-ratio lower bound (ours); upstream: union of two top-k lists")
    g.add_argument("--code_prune", type=int, default=16, help="at most this many codes per layer (upstream: exactly k..2k)")
    g.add_argument("--threshold", type=float, default=None, help="--select ratio: minimum rate-ratio lower bound (default 1; the synth sweep behind it is in src/methods/lcr/__init__.py)")
    g.add_argument("--layers", type=int, nargs="+", default=[0], help="quantizer layers to edit (0 = base layer)")
    g.add_argument("--dest_code_idx", type=int, default=0, help="safe code the selected rows are moved to")
    g.add_argument("--alpha", type=float, default=1.0, help="noise scale (x codebook std), or --orth strength")
    g.add_argument("--orth", action="store_true", help="remove the selected rows' mean direction instead")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0, help="seed of the crops, the destination draw and the noise")
    g.add_argument("--force", action="store_true", help="overwrite an existing output run")
    add_device_flags(g)
    add_location_flags(g, "checkpoints_dir", "dataset_dir")
    g.add_argument("--no_progress", action="store_true", help="no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def split_files(root: Path, args) -> tuple[Path, Path]:
    from src.data.keywords import split_paths

    forget, retain = split_paths(root, args.main_split, args.concept)
    if args.forget_split:
        forget = _as_file(root, args.forget_split)
    if args.retain_split:
        retain = _as_file(root, args.retain_split)
    for flag, p in (("--forget_split", forget), ("--retain_split", retain)):
        if not p.is_file():
            raise HmuError(f"{flag}: split file not found: {p} (make it: python -m src.data.split "
                           f"{args.dataset_name} {args.concept})")
    return forget, retain


def _as_file(root: Path, split: str) -> Path:
    p = Path(split)
    p = p if p.is_absolute() else root / p
    return p if p.suffix == ".txt" else p.with_name(p.name + ".txt")


def run_lcr(args, *, paths, device) -> dict:
    """The whole LCR edit for parsed ``args``; returns a summary (selected codes, timings, output folder)."""
    import torch

    from src.data.humanml3d import HumanML3DFolder, read_split
    from src.common.datasets import get_spec
    from src.data.keywords import forget_keywords
    from src.methods.collect import CropSettings, collect_codes, default_cache_dir
    from src.methods.run_output import edit_meta, output_dir, write_run
    from src.methods.lcr.edit import lcr_checkpoint, replace_codes, select_codes
    from src.models.checkpoint import find_run_dir, load_mean_std, load_vq

    t0 = time.perf_counter()
    fill_run_defaults(args, args.dataset_name, vq_name="vq")
    spec = get_spec(args.dataset_name)
    forget_keywords(spec.name, args.concept)  # unknown concept: one-line error before any work
    root = paths.data_root(spec.name)
    if not root.is_dir():
        raise HmuError(f"dataset folder not found: {root}")
    forget_p, retain_p = split_files(root, args)
    forget_ids, retain_ids = read_split(forget_p), read_split(retain_p)
    src_dir = find_run_dir(paths, spec.name, args.vq_name)
    dest = output_dir(paths, spec.name, args.name, force=args.force, sources=(src_dir,))
    src_ckpt = src_dir / "model" / args.ckpt
    vq, vq_cfg, _ = load_vq(paths, spec.name, args.vq_name, ckpt=args.ckpt)
    mean, std = load_mean_std(src_dir)
    nb_code = int(vq_cfg.nb_code)
    if args.code_prune is not None and not 1 <= args.code_prune < nb_code:
        raise HmuError(f"--code_prune {args.code_prune} must be between 1 and the codebook size {nb_code} - 1")
    bad_layers = [q for q in args.layers if not 0 <= q < vq_cfg.num_quantizers]
    if bad_layers:
        raise HmuError(f"--layers {bad_layers} do not exist (the VQ has {vq_cfg.num_quantizers} quantizer layers)")
    vq = vq.to(device)

    crop_kw = {"seed": args.seed, "max_motion_length": spec.max_motion_length, "unit_length": vq.downsample,
               "min_motion_length": spec.min_motion_length}
    settings = CropSettings.upstream(**crop_kw) if args.upstream_collection else CropSettings(n_crops=args.n_crops,
                                                                                                **crop_kw)
    cache = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else default_cache_dir(paths, spec.name)
    t1 = time.perf_counter()
    table, hit = collect_codes(vq, HumanML3DFolder(root, spec), [*forget_ids, *retain_ids], mean=mean, std=std,
                               settings=settings, batch_size=args.batch_size, cache_dir=cache,
                               progress=not args.no_progress)
    t_collect = time.perf_counter() - t1
    forget_set = set(forget_ids)
    forget = table.subset(forget_ids)
    retain = table.subset([i for i in retain_ids if i not in forget_set])
    if forget.num_rows == 0:
        raise HmuError(f"--forget_split {forget_p}: none of its {len(forget_ids)} motions could be encoded")
    if retain.num_rows == 0:
        raise HmuError(f"--retain_split {retain_p}: no retain motion could be encoded")
    repeats = table.num_rows / max(table.num_motions, 1)

    t2 = time.perf_counter()
    selection, counts = {}, {}
    for q in args.layers:
        fc, rc = forget.counts(q, nb_code=nb_code), retain.counts(q, nb_code=nb_code)
        sel = select_codes(fc, rc, rule=args.select, k=args.code_prune, threshold=args.threshold,
                           n_forget=forget.num_rows, n_retain=retain.num_rows,
                           **({"repeats": repeats} if args.select == "ratio" else {}))
        selection[q] = [int(c) for c in sel]
        counts[q] = {int(c): (int(fc[c]), int(rc[c])) for c in sel}
    gen = torch.Generator().manual_seed(args.seed)
    new = replace_codes(vq, selection, dest_code_idx=args.dest_code_idx, alpha=args.alpha, orth=args.orth,
                        generator=gen)
    t_edit = time.perf_counter() - t2

    wall = time.perf_counter() - t0
    summary = {"selected_codes": {str(q): c for q, c in selection.items()}, "n_forget_rows": forget.num_rows,
               "n_retain_rows": retain.num_rows, "cache_hit": hit, "collect_s": t_collect, "edit_s": t_edit,
               "crop": settings.__dict__}
    meta = edit_meta(method="lcr", args=vars(args), source_ckpt=src_ckpt, wall_time_s=wall, **summary)
    n = max(selection) + 1
    removed = {q: selection.get(q, []) for q in range(n)}
    ckpt = lcr_checkpoint(new.cpu(), removed, hmu_meta=meta, select=args.select, code_prune=args.code_prune,
                          alpha=args.alpha, orth=args.orth, split=str(forget_p))
    t3 = time.perf_counter()
    write_run(dest, source_run=src_dir, out_name=args.name, checkpoints={"net_best_fid.tar": ckpt}, force=args.force)
    summary.update(out=str(dest), save_s=time.perf_counter() - t3, wall_time_s=time.perf_counter() - t0,
                   counts=counts, nb_code=nb_code)
    return summary


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from src.common.device import resolve_device
    from src.common.logging import setup_logging
    from src.common.paths import Paths

    setup_logging(args.verbose)
    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir)
    s = run_lcr(args, paths=paths, device=resolve_device(args.gpu_id, args.device))
    print(f"LCR ({args.select}) on {args.vq_name}: forget {s['n_forget_rows']} rows, retain {s['n_retain_rows']} rows "
          f"({'cache hit' if s['cache_hit'] else 'encoded'} in {s['collect_s']:.2f}s)")
    for q, codes in s["selected_codes"].items():
        detail = ", ".join(f"{c} ({f}/{r})" for c, (f, r) in s["counts"][int(q)].items())
        print(f"layer {q}: {len(codes)} codes replaced [code (forget rows/retain rows)]: {detail}")
    print(f"saved {s['out']}/model/net_best_fid.tar; wall time {s['wall_time_s']:.2f}s "
          f"(collect {s['collect_s']:.2f}s, select+replace {s['edit_s']:.3f}s, save {s['save_s']:.2f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
