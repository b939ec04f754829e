"""``python -m src.methods.lcr``: collect (cached) -> count -> select -> replace -> save a NEW VQ run.

    python -m src.methods.lcr --dataset_name synth --concept violence --vq_name rvq_tiny --name rvq_tiny_lcr

Sources are read only: ``--vq_name`` (the VQ run) and its ``--ckpt``. The output is ``checkpoints/<ds>/<--name>/``
(opt.txt and meta/ copied, ``model/net_best_fid.tar`` with upstream's ``removed_codes`` and ``hmu_meta``). Evaluate
it with the original transformers and ``--vq_name <--name>``.

Combined LCR (upstream's ``scripts/eval/lcr_combined.sh``): the union, per layer, of the codes selected for each
sub-concept on its own keyword split, then one replacement.

- ``--just_select_codes``: select and write the codes (``[[layer 0 codes], [layer 1 codes], ...]`` as JSON, which
  upstream's ``yaml.safe_load`` also reads) to ``--codes_out`` (default ``checkpoints/<ds>/lcr_codes/<name>.json``);
  no run is written.
- ``--censor_codes_files F [F ...]``: no selection; replace the union of the files' codes (JSON, or upstream's
  ``assets/codes/*.yaml`` lists) in the ``--layers`` layers.
- ``--combined``: both steps in one process, with the sub-concepts of ``COMBINED[--concept]`` (upstream's table:
  violence = kick with ``--code_prune 16`` + punch_jab_box_hit_beat with 8) or ``--sub_concepts kick:16,punch:8``.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.common.run_names import fill_run_defaults, help_default
from src.common.validate import parse_checked


def build_parser() -> argparse.ArgumentParser:
    from src.config.flags import add_device_flags, add_location_flags
    from src.methods.flags import method_parser

    p, g = method_parser("python -m src.methods.lcr", __doc__,
                         concept_help="concept in assets/splits.json; its kw_splits are the forget/retain sets",
                         name_help="NEW run folder for the edited VQ: checkpoints/<dataset>/<name>/ (upstream: "
                                   "--run_name, the file model/<run_name>.tar)",
                         name_flags=("--name", "--out_name", "--run_name"))
    g.add_argument("--vq_name", default=None, help="source VQ run (read only; " + help_default("vq") + ")")
    g.add_argument("--ckpt", default="net_best_fid.tar",
                   help="source VQ checkpoint file in <vq_name>/model/ (base.tar: upstream's link, net_best_fid.tar)")
    g = p.add_argument_group("data")
    g.add_argument("--main_split", default="train_val", help="split the keyword splits were made from")
    g.add_argument("--forget_split", "--split", dest="forget_split", default=None,
                   help="forget ids (default kw_splits/<main_split>-w-<concept>); upstream's --split, e.g. "
                        "dataset/HumanML3D/kw_splits/train_val-w-violence (.txt optional)")
    g.add_argument("--retain_split", default=None, help="retain ids (default kw_splits/<main_split>-wo-<concept>; "
                                                       "with --forget_split: the rest of <main_split>, as upstream)")
    g.add_argument("--codes_csv", default=None,
                   help="also write the collected codes to this CSV (upstream's table: name, repeat, codes_<l>:<t>); "
                        "an export: hmu's keyed cache is what a second run reuses")
    g.add_argument("--n_crops", type=int, default=1, help="crops per motion (1 = the whole motion, deterministic)")
    g.add_argument("--upstream_collection", action="store_true",
                   help="upstream's collection exactly: per caption #from#to segment, 20 random crops zero-padded to "
                        "196 frames (padding codes counted), motions of 200+ frames dropped (overrides --n_crops)")
    g.add_argument("--batch_size", type=int, default=256, help="motions per encoder call")
    g.add_argument("--cache_dir", default=None, help="code cache folder (default checkpoints/<ds>/cache/lcr_codes)")
    g.add_argument("--no_cache", action="store_true", help="neither read nor write the code cache")
    g = p.add_argument_group("selection and replacement")
    g.add_argument("--select", choices=("ratio", "upstream"), default="ratio",
                   help="ratio: rate-ratio lower bound (ours); upstream: union of two top-k lists")
    g.add_argument("--code_prune", type=int, default=16, help="at most this many codes per layer (upstream: exactly k..2k)")
    g.add_argument("--threshold", type=float, default=None, help="--select ratio: minimum rate-ratio lower bound (default 1; the synth sweep behind it: python -m bench.lcr_sweep, docs/results/lcr_sweep/)")
    g.add_argument("--layers", type=int, nargs="+", default=None,
                   help="quantizer layers to edit (default 0 = the base layer)")
    g.add_argument("--layer_prune", type=int, default=None,
                   help="upstream's: edit the first N quantizer layers (= --layers 0 .. N-1)")
    g.add_argument("--dest_code_idx", type=int, default=0, help="safe code the selected rows are moved to")
    g.add_argument("--alpha", type=float, default=1.0, help="noise scale (x codebook std), or --orth strength")
    g.add_argument("--orth", action="store_true", help="remove the selected rows' mean direction instead")
    g = p.add_argument_group("combined LCR (upstream lcr_combined.sh)")
    g.add_argument("--just_select_codes", action="store_true",
                   help="select the codes, write them to --codes_out and stop (no edited run)")
    g.add_argument("--codes_out", default=None, help="codes file of --just_select_codes "
                   "(default checkpoints/<ds>/lcr_codes/<name>.json)")
    g.add_argument("--censor_codes_files", nargs="+", default=None, metavar="FILE",
                   help="replace the union of these files' codes (no selection)")
    g.add_argument("--combined", action="store_true",
                   help="union of per-sub-concept selections (COMBINED[--concept] or --sub_concepts)")
    g.add_argument("--sub_concepts", default=None, metavar="C:K,...",
                   help="--combined: sub-concepts with their --code_prune, e.g. kick:16,punch_jab_box_hit_beat:8")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0, help="seed of the crops, the destination draw and the noise")
    g.add_argument("--force", action="store_true", help="overwrite an existing output run")
    add_device_flags(g)
    add_location_flags(g, "checkpoints_dir", "dataset_dir")
    g.add_argument("--no_progress", action="store_true", help="no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


# Upstream's lcr_combined.sh: sub-concept -> --code_prune (its Motion-X variant, commented out there, adds gun_shoot 4,
# martial_arts 16, weapons 4 and uses kick 16, punch_jab_box_hit_beat 8).
COMBINED = {"violence": (("kick", 16), ("punch_jab_box_hit_beat", 8))}


def parse_sub_concepts(text: str | None, concept: str) -> list[tuple[str, int]]:
    """``"kick:16,punch:8"`` (or, when None, ``COMBINED[concept]``) -> [(sub-concept, code_prune), ...]."""
    if text is None:
        if concept not in COMBINED:
            raise HmuError(f"--combined: no sub-concepts known for '{concept}' (known: {', '.join(COMBINED)}); "
                           "pass --sub_concepts C:K,...")
        return list(COMBINED[concept])
    out = []
    for part in [t.strip() for t in text.split(",") if t.strip()]:
        name, _, k = part.partition(":")
        try:
            out.append((name.strip(), int(k)))
        except ValueError:
            raise HmuError(f"--sub_concepts {text!r}: each item must be CONCEPT:K with an integer K") from None
    if not out:
        raise HmuError(f"--sub_concepts {text!r} names no sub-concept")
    return out


def read_codes_file(path: str | Path) -> list[list[int]]:
    """A codes file -> codes per layer: JSON ``[[...], ...]``, or upstream's block YAML (``- - 3`` / ``  - 7``)."""
    import json

    p = Path(path)
    if not p.is_file():
        raise HmuError(f"--censor_codes_files: file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = _read_block_yaml_lists(text, p)
    if not isinstance(data, list) or not all(isinstance(layer, list) for layer in data) or not all(
            isinstance(c, int) and not isinstance(c, bool) for layer in data for c in layer):
        raise HmuError(f"codes file {p}: expected a list of lists of integers (codes per layer)")
    return data


def _read_block_yaml_lists(text: str, path: Path) -> list[list[int]]:
    """``yaml.safe_dump([[1, 2], [3]], default_flow_style=False)`` -> [[1, 2], [3]] (no PyYAML needed)."""
    layers: list[list[int]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("- - "):
            layers.append([])
            item = line[4:]
        elif line.startswith("  - ") and layers:
            item = line[4:]
        elif line.strip() == "- []":
            layers.append([])
            continue
        else:
            raise HmuError(f"codes file {path}:{n}: not a list of lists of integers")
        try:
            layers[-1].append(int(item))
        except ValueError:
            raise HmuError(f"codes file {path}:{n}: {item!r} is not an integer") from None
    return layers


def union_codes(files_codes: Sequence[Sequence[Sequence[int]]], layers: Sequence[int]) -> dict[int, list[int]]:
    """Per-layer union (sorted) of several codes-per-layer lists, for the ``layers`` asked (missing layers: none)."""
    out = {}
    for q in layers:
        out[q] = sorted({int(c) for codes in files_codes if q < len(codes) for c in codes[q]})
    return out


def split_files(root: Path, args, concept: str | None = None) -> tuple[Path, Path]:
    """(forget file, retain file) of ``concept`` (default ``--concept``); with ``--forget_split`` and no
    ``--retain_split`` the retain file is ``<main_split>.txt`` (its ids outside the forget set are the retain set,
    as upstream's ``--split``)."""
    from src.data.humanml3d import split_file
    from src.data.keywords import split_paths

    concept = concept or args.concept
    forget, retain = split_paths(root, args.main_split, concept)
    if args.forget_split:
        forget = split_file(root, args.forget_split)
        if not args.retain_split:
            retain = root / f"{args.main_split}.txt"
    if args.retain_split:
        retain = split_file(root, args.retain_split)
    for flag, p in (("--forget_split", forget), ("--retain_split", retain)):
        if not p.is_file():
            raise HmuError(f"{flag}: split file not found: {p} (make it: python -m src.data.split "
                           f"{args.dataset_name} {concept})")
    return forget, retain


def edited_layers(args) -> list[int]:
    """``--layers``, or upstream's ``--layer_prune N`` (the first N layers), default the base layer."""
    if args.layer_prune is not None:
        if args.layers is not None:
            raise HmuError("give --layers or --layer_prune, not both")
        if args.layer_prune < 1:
            raise HmuError(f"--layer_prune must be >= 1, got {args.layer_prune}")
        return list(range(args.layer_prune))
    return list(args.layers) if args.layers is not None else [0]


def run_lcr(args, *, paths, device) -> dict:
    """The whole LCR edit for parsed ``args``; returns a summary (selected codes, timings, output folder)."""
    import json

    import torch

    from src.common.datasets import get_spec
    from src.common.io import atomic_write_json
    from src.data.keywords import forget_keywords
    from src.methods.lcr.edit import lcr_checkpoint, replace_codes
    from src.methods.run_output import edit_meta, output_dir, write_run
    from src.models.checkpoint import checkpoint_file, find_run_dir, load_mean_std, load_vq

    t0 = time.perf_counter()
    fill_run_defaults(args, args.dataset_name, vq_name="vq")
    args.layers = edited_layers(args)
    args.layer_prune = None
    codes_csv = Path(args.codes_csv) if args.codes_csv else None
    if codes_csv is not None:
        from src.common.io import refuse_overwrite

        refuse_overwrite(codes_csv, args.force, what="--codes_csv file")
    spec = get_spec(args.dataset_name)
    forget_keywords(spec.name, args.concept)  # unknown concept: one-line error before any work
    if args.censor_codes_files and (args.combined or args.just_select_codes):
        raise HmuError("--censor_codes_files replaces given codes: it excludes --combined and --just_select_codes")
    if args.combined and (args.forget_split or args.retain_split):
        raise HmuError("--combined uses each sub-concept's keyword splits: drop --forget_split/--retain_split")
    jobs = parse_sub_concepts(args.sub_concepts, args.concept) if args.combined else [(args.concept, args.code_prune)]
    for c, _ in jobs:
        forget_keywords(spec.name, c)
    root = paths.data_root(spec.name)
    if not root.is_dir():
        raise HmuError(f"dataset folder not found: {root}")
    src_dir = find_run_dir(paths, spec.name, args.vq_name)
    dest = None if args.just_select_codes else output_dir(paths, spec.name, args.name, force=args.force,
                                                          sources=(src_dir,))
    codes_out = (Path(args.codes_out) if args.codes_out else
                 Path(paths.checkpoints_dir) / spec.ckpt_folders[0] / "lcr_codes" / f"{args.name}.json")
    if args.just_select_codes and codes_out.exists() and not args.force:
        raise HmuError(f"codes file {codes_out} already exists (pass --force to overwrite)")
    src_ckpt = checkpoint_file(src_dir, args.ckpt, "vq")
    vq, vq_cfg, _ = load_vq(paths, spec.name, args.vq_name, ckpt=args.ckpt)
    nb_code = int(vq_cfg.nb_code)
    for _, k in jobs:
        if k is not None and not 1 <= k < nb_code:
            raise HmuError(f"--code_prune {k} must be between 1 and the codebook size {nb_code} - 1")
    bad_layers = [q for q in args.layers if not 0 <= q < vq_cfg.num_quantizers]
    if bad_layers:
        raise HmuError(f"--layers {bad_layers} do not exist (the VQ has {vq_cfg.num_quantizers} quantizer layers)")
    vq = vq.to(device)

    summary: dict = {"cache_hit": None, "collect_s": 0.0, "n_forget_rows": 0, "n_retain_rows": 0}
    t2 = time.perf_counter()
    if args.censor_codes_files:
        selection = union_codes([read_codes_file(f) for f in args.censor_codes_files], args.layers)
        counts = {q: {c: (-1, -1) for c in cs} for q, cs in selection.items()}
        summary["censor_codes_files"] = [str(f) for f in args.censor_codes_files]
        split_label = ",".join(str(f) for f in args.censor_codes_files)
    else:
        selection, counts, split_label = _select(args, jobs, vq=vq, spec=spec, root=root, paths=paths,
                                                 src_dir=src_dir, nb_code=nb_code, summary=summary,
                                                 load_mean_std=load_mean_std)
    summary["selected_codes"] = {str(q): c for q, c in selection.items()}
    if args.combined:
        summary["sub_concepts"] = [[c, k] for c, k in jobs]
    if args.just_select_codes:
        n = max(selection) + 1
        atomic_write_json(codes_out, [selection.get(q, []) for q in range(n)])
        summary.update(out=None, codes_out=str(codes_out), counts=counts, nb_code=nb_code, edit_s=0.0, save_s=0.0,
                       wall_time_s=time.perf_counter() - t0)
        json.dumps(summary)  # plain data only
        return summary
    gen = torch.Generator().manual_seed(args.seed)
    new = replace_codes(vq, selection, dest_code_idx=args.dest_code_idx, alpha=args.alpha, orth=args.orth,
                        generator=gen)
    summary["edit_s"] = time.perf_counter() - t2

    wall = time.perf_counter() - t0
    meta = edit_meta(method="lcr", args=vars(args), source_ckpt=src_ckpt, wall_time_s=wall, **summary)
    n = max(selection) + 1
    removed = {q: selection.get(q, []) for q in range(n)}
    ckpt = lcr_checkpoint(new.cpu(), removed, hmu_meta=meta, select=args.select, code_prune=args.code_prune,
                          alpha=args.alpha, orth=args.orth, split=split_label)
    t3 = time.perf_counter()
    write_run(dest, source_run=src_dir, out_name=args.name, checkpoints={"net_best_fid.tar": ckpt}, force=args.force)
    summary.update(out=str(dest), save_s=time.perf_counter() - t3, wall_time_s=time.perf_counter() - t0,
                   counts=counts, nb_code=nb_code)
    return summary


def _select(args, jobs, *, vq, spec, root, paths, src_dir, nb_code, summary, load_mean_std):
    """Collect the codes once, select per (concept, k) job and layer, union over jobs -> (selection, counts, splits)."""
    from src.data.humanml3d import HumanML3DFolder, read_split
    from src.methods.collect import CropSettings, collect_codes, default_cache_dir
    from src.methods.lcr.edit import select_codes

    parts = []
    for concept, k in jobs:
        forget_p, retain_p = split_files(root, args, concept)
        parts.append((concept, k, forget_p, read_split(forget_p), read_split(retain_p)))
    mean, std = load_mean_std(src_dir)
    crop_kw = {"seed": args.seed, "max_motion_length": spec.max_motion_length, "unit_length": vq.downsample,
               "min_motion_length": spec.min_motion_length, "fps": spec.fps}
    settings = CropSettings.upstream(**crop_kw) if args.upstream_collection else CropSettings(n_crops=args.n_crops,
                                                                                                **crop_kw)
    cache = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else default_cache_dir(paths, spec.name)
    all_ids = list(dict.fromkeys(i for *_, f, r in parts for i in (*f, *r)))
    t1 = time.perf_counter()
    table, hit = collect_codes(vq, HumanML3DFolder(root, spec), all_ids, mean=mean, std=std, settings=settings,
                               batch_size=args.batch_size, cache_dir=cache, progress=not args.no_progress)
    summary.update(cache_hit=hit, collect_s=time.perf_counter() - t1, crop=settings.__dict__)
    if args.codes_csv:  # upstream's export of every collected code (never read back)
        from src.methods.collect import write_codes_csv

        write_codes_csv(table, Path(args.codes_csv))
    repeats = table.num_rows / max(table.num_motions, 1)
    selection: dict[int, set] = {q: set() for q in args.layers}
    counts: dict[int, dict] = {q: {} for q in args.layers}
    for concept, k, forget_p, forget_ids, retain_ids in parts:
        forget_set = set(forget_ids)
        forget = table.subset(forget_ids)
        retain = table.subset([i for i in retain_ids if i not in forget_set])
        if forget.num_rows == 0:
            raise HmuError(f"--forget_split {forget_p}: none of its {len(forget_ids)} motions could be encoded")
        if retain.num_rows == 0:
            raise HmuError(f"retain split of '{concept}': no retain motion could be encoded")
        summary["n_forget_rows"] += forget.num_rows
        summary["n_retain_rows"] += retain.num_rows
        for q in args.layers:
            fc, rc = forget.counts(q, nb_code=nb_code), retain.counts(q, nb_code=nb_code)
            sel = select_codes(fc, rc, rule=args.select, k=k, threshold=args.threshold,
                               n_forget=forget.num_rows, n_retain=retain.num_rows,
                               **({"repeats": repeats} if args.select == "ratio" else {}))
            selection[q].update(int(c) for c in sel)
            counts[q].update({int(c): (int(fc[c]), int(rc[c])) for c in sel})
    split_label = ",".join(str(p[2]) for p in parts)
    return {q: sorted(c) for q, c in selection.items()}, counts, split_label


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_checked(build_parser(), argv)
    from src.common.device import resolve_device
    from src.common.logging import setup_logging
    from src.common.paths import Paths

    setup_logging(args.verbose)
    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir)
    s = run_lcr(args, paths=paths, device=resolve_device(args.gpu_id, args.device))
    if s.get("censor_codes_files"):
        print(f"LCR on {args.vq_name}: the union of the codes in {', '.join(s['censor_codes_files'])}")
    else:
        print(f"LCR ({args.select}) on {args.vq_name}: forget {s['n_forget_rows']} rows, retain {s['n_retain_rows']} "
              f"rows ({'cache hit' if s['cache_hit'] else 'encoded'} in {s['collect_s']:.2f}s)"
              + (f"; sub-concepts {', '.join(f'{c} (k={k})' for c, k in s['sub_concepts'])}" if args.combined else ""))
    for q, codes in s["selected_codes"].items():
        detail = ", ".join(f"{c} ({f}/{r})" if f >= 0 else str(c) for c, (f, r) in s["counts"][int(q)].items())
        print(f"layer {q}: {len(codes)} codes {'selected' if args.just_select_codes else 'replaced'} "
              f"[code (forget rows/retain rows)]: {detail}")
    if args.just_select_codes:
        print(f"codes written to {s['codes_out']} (no run written: --just_select_codes)")
        return 0
    print(f"saved {s['out']}/model/net_best_fid.tar; wall time {s['wall_time_s']:.2f}s "
          f"(collect {s['collect_s']:.2f}s, select+replace {s['edit_s']:.3f}s, save {s['save_s']:.2f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
