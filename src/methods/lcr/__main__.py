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

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.common.run_names import help_default, with_run_defaults
from src.common.validate import NON_NEGATIVE, POSITIVE
from src.config.command import DeviceOptions, Locations, RunOptions, flat_dict, group, opt

PROG = "python -m src.methods.lcr"


@dataclasses.dataclass(kw_only=True)
class LcrConfig:
    """Latent Code Replacement: collect (cached) -> count -> select -> replace -> save a NEW VQ run."""

    # models
    dataset_name: str = opt("synth", help="dataset name or alias (synth, HumanML3D/t2m, Motion-X)")
    concept: str = opt("violence", aliases=("--split_name",),
                       help="concept in assets/splits.json; its kw_splits are the forget/retain sets")
    name: str = opt(None, required=True, aliases=("--out_name", "--run_name"),
                    help="NEW run folder for the edited VQ: checkpoints/<dataset>/<name>/ (upstream: --run_name, the "
                         "file model/<run_name>.tar)")
    vq_name: str | None = opt(None, help="source VQ run (read only; " + help_default("vq") + ")")
    ckpt: str = opt("net_best_fid.tar", help="source VQ checkpoint file in <vq_name>/model/ (base.tar: upstream's "
                                             "link, net_best_fid.tar)")
    # data
    main_split: str = opt("train_val", help="split the keyword splits were made from")
    forget_split: str | None = opt(None, aliases=("--split",),
                                   help="forget ids (default kw_splits/<main_split>-w-<concept>); upstream's --split, "
                                        "e.g. dataset/HumanML3D/kw_splits/train_val-w-violence (.txt optional)")
    retain_split: str | None = opt(None, help="retain ids (default kw_splits/<main_split>-wo-<concept>; with "
                                              "--forget_split: the rest of <main_split>, as upstream)")
    codes_csv: str | None = opt(None, help="also write the collected codes to this CSV (upstream's table: name, "
                                           "repeat, codes_<l>:<t>); an export: hmu's keyed cache is what a second run "
                                           "reuses")
    n_crops: int = opt(1, range=POSITIVE, help="crops per motion (1 = the whole motion, deterministic)")
    upstream_collection: bool = opt(False, help="upstream's collection exactly: per caption #from#to segment, 20 "
                                                "random crops zero-padded to 196 frames (padding codes counted), "
                                                "motions of 200+ frames dropped (overrides --n_crops)")
    batch_size: int = opt(256, help="motions per encoder call")
    cache_dir: str | None = opt(None, help="code cache folder (default checkpoints/<ds>/cache/lcr_codes)")
    no_cache: bool = opt(False, help="neither read nor write the code cache")
    # selection and replacement
    select: str = opt("ratio", choices=("ratio", "upstream"),
                      help="ratio: rate-ratio lower bound (ours); upstream: union of two top-k lists")
    code_prune: int = opt(16, help="at most this many codes per layer (upstream: exactly k..2k)")
    threshold: float | None = opt(None, help="--select ratio: minimum rate-ratio lower bound (default 1; the synth "
                                             "sweep behind it: python -m bench.lcr_sweep, docs/results/lcr_sweep/)")
    layers: list[int] | None = opt(None, range=NON_NEGATIVE,
                                   help="quantizer layers to edit (default 0 = the base layer)")
    layer_prune: int | None = opt(None, range=POSITIVE,
                                  help="upstream's: edit the first N quantizer layers (= --layers 0 .. N-1)")
    dest_code_idx: int = opt(0, range=NON_NEGATIVE, help="safe code the selected rows are moved to")
    alpha: float = opt(1.0, help="noise scale (x codebook std), or --orth strength")
    orth: bool = opt(False, help="remove the selected rows' mean direction instead")
    # combined LCR (upstream lcr_combined.sh)
    just_select_codes: bool = opt(False, help="select the codes, write them to --codes_out and stop (no edited run)")
    codes_out: str | None = opt(None, help="codes file of --just_select_codes (default "
                                           "checkpoints/<ds>/lcr_codes/<name>.json)")
    censor_codes_files: list[str] | None = opt(None, metavar="FILE",
                                               help="replace the union of these files' codes (no selection)")
    combined: bool = opt(False, help="union of per-sub-concept selections (COMBINED[--concept] or --sub_concepts)")
    sub_concepts: str | None = opt(None, metavar="C:K,...", help="--combined: sub-concepts with their --code_prune, "
                                                                  "e.g. kick:16,punch_jab_box_hit_beat:8")
    seed: int = opt(0, help="seed of the crops, the destination draw and the noise")
    device: DeviceOptions = group(DeviceOptions)
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir"))
    run: RunOptions = group(RunOptions)

    def check(self) -> None:
        if self.layer_prune is not None and self.layers is not None:
            raise HmuError("give --layers or --layer_prune, not both")
        if self.censor_codes_files and (self.combined or self.just_select_codes):
            raise HmuError("--censor_codes_files replaces given codes: it excludes --combined and --just_select_codes")
        if self.combined and (self.forget_split or self.retain_split):
            raise HmuError("--combined uses each sub-concept's keyword splits: drop --forget_split/--retain_split")

    def resolved(self) -> LcrConfig:
        """The source VQ from the run-name table when not given; ``--layer_prune N`` as ``--layers 0 .. N-1``."""
        cfg = with_run_defaults(self, self.dataset_name, vq_name="vq")
        return dataclasses.replace(cfg, layers=edited_layers(cfg), layer_prune=None)


CONFIG = LcrConfig


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


def split_files(root: Path, cfg: LcrConfig, concept: str | None = None) -> tuple[Path, Path]:
    """(forget file, retain file) of ``concept`` (default ``--concept``); with ``--forget_split`` and no
    ``--retain_split`` the retain file is ``<main_split>.txt`` (its ids outside the forget set are the retain set,
    as upstream's ``--split``)."""
    from src.data.humanml3d import split_file
    from src.data.keywords import split_paths

    concept = concept or cfg.concept
    forget, retain = split_paths(root, cfg.main_split, concept)
    if cfg.forget_split:
        forget = split_file(root, cfg.forget_split)
        if not cfg.retain_split:
            retain = root / f"{cfg.main_split}.txt"
    if cfg.retain_split:
        retain = split_file(root, cfg.retain_split)
    for flag, p in (("--forget_split", forget), ("--retain_split", retain)):
        if not p.is_file():
            raise HmuError(f"{flag}: split file not found: {p} (make it: python -m src.data.split "
                           f"{cfg.dataset_name} {concept})")
    return forget, retain


def edited_layers(cfg: LcrConfig) -> list[int]:
    """``--layers``, or upstream's ``--layer_prune N`` (the first N layers), default the base layer."""
    if cfg.layer_prune is not None:
        return list(range(cfg.layer_prune))
    return list(cfg.layers) if cfg.layers is not None else [0]


def run_lcr(cfg: LcrConfig, ctx) -> dict:
    """The whole LCR edit of ``cfg`` (resolved) in ``ctx`` (paths, dataset, device, overwrite policy); returns a summary
    (selected codes, timings, output folder)."""
    import json

    import torch

    from src.common.io import atomic_write_json
    from src.data.keywords import forget_keywords
    from src.methods.lcr.edit import lcr_checkpoint, replace_codes
    from src.methods.run_output import edit_meta, output_dir, write_run
    from src.models.checkpoint import checkpoint_file, find_run_dir, load_mean_std, load_vq

    t0 = time.perf_counter()
    paths, spec, force = ctx.paths, ctx.dataset, ctx.force
    codes_csv = Path(cfg.codes_csv) if cfg.codes_csv else None
    if codes_csv is not None:
        from src.common.io import refuse_overwrite

        refuse_overwrite(codes_csv, force, what="--codes_csv file")
    forget_keywords(spec.name, cfg.concept)  # unknown concept: one-line error before any work
    jobs = parse_sub_concepts(cfg.sub_concepts, cfg.concept) if cfg.combined else [(cfg.concept, cfg.code_prune)]
    for c, _ in jobs:
        forget_keywords(spec.name, c)
    root = ctx.data_root
    if not root.is_dir():
        raise HmuError(f"dataset folder not found: {root}")
    src_dir = find_run_dir(paths, spec.name, cfg.vq_name)
    dest = None if cfg.just_select_codes else output_dir(paths, spec.name, cfg.name, force=force, sources=(src_dir,))
    codes_out = (Path(cfg.codes_out) if cfg.codes_out else
                 Path(paths.checkpoints_dir) / spec.ckpt_folders[0] / "lcr_codes" / f"{cfg.name}.json")
    if cfg.just_select_codes and codes_out.exists() and not force:
        raise HmuError(f"codes file {codes_out} already exists (pass --force to overwrite)")
    src_ckpt = checkpoint_file(src_dir, cfg.ckpt, "vq")
    vq, vq_cfg, _ = load_vq(paths, spec.name, cfg.vq_name, ckpt=cfg.ckpt)
    nb_code = int(vq_cfg.nb_code)
    for _, k in jobs:
        if k is not None and not 1 <= k < nb_code:
            raise HmuError(f"--code_prune {k} must be between 1 and the codebook size {nb_code} - 1")
    bad_layers = [q for q in cfg.layers if not 0 <= q < vq_cfg.num_quantizers]
    if bad_layers:
        raise HmuError(f"--layers {bad_layers} do not exist (the VQ has {vq_cfg.num_quantizers} quantizer layers)")
    vq = vq.to(ctx.device)

    summary: dict = {"cache_hit": None, "collect_s": 0.0, "n_forget_rows": 0, "n_retain_rows": 0}
    t2 = time.perf_counter()
    if cfg.censor_codes_files:
        selection = union_codes([read_codes_file(f) for f in cfg.censor_codes_files], cfg.layers)
        counts = {q: {c: (-1, -1) for c in cs} for q, cs in selection.items()}
        summary["censor_codes_files"] = [str(f) for f in cfg.censor_codes_files]
        split_label = ",".join(str(f) for f in cfg.censor_codes_files)
    else:
        selection, counts, split_label = _select(cfg, jobs, vq=vq, spec=spec, root=root, paths=paths,
                                                 src_dir=src_dir, nb_code=nb_code, summary=summary,
                                                 load_mean_std=load_mean_std, progress=ctx.progress)
    summary["selected_codes"] = {str(q): c for q, c in selection.items()}
    if cfg.combined:
        summary["sub_concepts"] = [[c, k] for c, k in jobs]
    if cfg.just_select_codes:
        n = max(selection) + 1
        atomic_write_json(codes_out, [selection.get(q, []) for q in range(n)])
        summary.update(out=None, codes_out=str(codes_out), counts=counts, nb_code=nb_code, edit_s=0.0, save_s=0.0,
                       wall_time_s=time.perf_counter() - t0)
        json.dumps(summary)  # plain data only
        return summary
    gen = torch.Generator().manual_seed(cfg.seed)
    new = replace_codes(vq, selection, dest_code_idx=cfg.dest_code_idx, alpha=cfg.alpha, orth=cfg.orth,
                        generator=gen)
    summary["edit_s"] = time.perf_counter() - t2

    wall = time.perf_counter() - t0
    meta = edit_meta(method="lcr", args=flat_dict(cfg), source_ckpt=src_ckpt, wall_time_s=wall, **summary)
    n = max(selection) + 1
    removed = {q: selection.get(q, []) for q in range(n)}
    ckpt = lcr_checkpoint(new.cpu(), removed, hmu_meta=meta, select=cfg.select, code_prune=cfg.code_prune,
                          alpha=cfg.alpha, orth=cfg.orth, split=split_label)
    t3 = time.perf_counter()
    write_run(dest, source_run=src_dir, out_name=cfg.name, checkpoints={"net_best_fid.tar": ckpt}, force=force)
    summary.update(out=str(dest), save_s=time.perf_counter() - t3, wall_time_s=time.perf_counter() - t0,
                   counts=counts, nb_code=nb_code)
    return summary


def _select(cfg: LcrConfig, jobs, *, vq, spec, root, paths, src_dir, nb_code, summary, load_mean_std,
            progress: bool):
    """Collect the codes once, select per (concept, k) job and layer, union over jobs -> (selection, counts, splits)."""
    from src.data.humanml3d import HumanML3DFolder, read_split
    from src.methods.collect import CropSettings, collect_codes, default_cache_dir
    from src.methods.lcr.edit import select_codes

    parts = []
    for concept, k in jobs:
        forget_p, retain_p = split_files(root, cfg, concept)
        parts.append((concept, k, forget_p, read_split(forget_p), read_split(retain_p)))
    mean, std = load_mean_std(src_dir)
    crop_kw = {"seed": cfg.seed, "max_motion_length": spec.max_motion_length, "unit_length": vq.downsample,
               "min_motion_length": spec.min_motion_length, "fps": spec.fps}
    settings = CropSettings.upstream(**crop_kw) if cfg.upstream_collection else CropSettings(n_crops=cfg.n_crops,
                                                                                                **crop_kw)
    cache = None if cfg.no_cache else Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(paths, spec.name)
    all_ids = list(dict.fromkeys(i for *_, f, r in parts for i in (*f, *r)))
    t1 = time.perf_counter()
    table, hit = collect_codes(vq, HumanML3DFolder(root, spec), all_ids, mean=mean, std=std, settings=settings,
                               batch_size=cfg.batch_size, cache_dir=cache, progress=progress)
    summary.update(cache_hit=hit, collect_s=time.perf_counter() - t1, crop=settings.__dict__)
    if cfg.codes_csv:  # upstream's export of every collected code (never read back)
        from src.methods.collect import write_codes_csv

        write_codes_csv(table, Path(cfg.codes_csv))
    repeats = table.num_rows / max(table.num_motions, 1)
    selection: dict[int, set] = {q: set() for q in cfg.layers}
    counts: dict[int, dict] = {q: {} for q in cfg.layers}
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
        for q in cfg.layers:
            fc, rc = forget.counts(q, nb_code=nb_code), retain.counts(q, nb_code=nb_code)
            sel = select_codes(fc, rc, rule=cfg.select, k=k, threshold=cfg.threshold,
                               n_forget=forget.num_rows, n_retain=retain.num_rows,
                               **({"repeats": repeats} if cfg.select == "ratio" else {}))
            selection[q].update(int(c) for c in sel)
            counts[q].update({int(c): (int(fc[c]), int(rc[c])) for c in sel})
    split_label = ",".join(str(p[2]) for p in parts)
    return {q: sorted(c) for q, c in selection.items()}, counts, split_label


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.config.command import command_context, parse_config

    cfg = parse_config(LcrConfig, argv, prog=PROG, doc=__doc__).resolved()
    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run)
    s = run_lcr(cfg, ctx)
    if s.get("censor_codes_files"):
        print(f"LCR on {cfg.vq_name}: the union of the codes in {', '.join(s['censor_codes_files'])}")
    else:
        print(f"LCR ({cfg.select}) on {cfg.vq_name}: forget {s['n_forget_rows']} rows, retain {s['n_retain_rows']} "
              f"rows ({'cache hit' if s['cache_hit'] else 'encoded'} in {s['collect_s']:.2f}s)"
              + (f"; sub-concepts {', '.join(f'{c} (k={k})' for c, k in s['sub_concepts'])}" if cfg.combined else ""))
    for q, codes in s["selected_codes"].items():
        detail = ", ".join(f"{c} ({f}/{r})" if f >= 0 else str(c) for c, (f, r) in s["counts"][int(q)].items())
        print(f"layer {q}: {len(codes)} codes {'selected' if cfg.just_select_codes else 'replaced'} "
              f"[code (forget rows/retain rows)]: {detail}")
    if cfg.just_select_codes:
        print(f"codes written to {s['codes_out']} (no run written: --just_select_codes)")
        return 0
    print(f"saved {s['out']}/model/net_best_fid.tar; wall time {s['wall_time_s']:.2f}s "
          f"(collect {s['collect_s']:.2f}s, select+replace {s['edit_s']:.3f}s, save {s['save_s']:.2f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
