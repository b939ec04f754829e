"""``python -m src.data.split`` (this module; the name is an alias): keyword forget/retain splits
(``dataset/<ds>/kw_splits/{split}-w[o]-{concept}.txt``), optionally refined with TMR retrieval (``--tmr``).

The keyword rule is :mod:`src.data.keywords` (pure); the TMR refinement is :mod:`src.models.tmr.refine_split`.
Unlike upstream, existing split files are not silently reused: the CLI refuses to overwrite them without ``--force``.
On a dataset with ground truth (``labels.json``, the embedded ``synth``), the CLI prints the forget split's precision and
recall for both modes.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.common.validate import NON_NEGATIVE, POSITIVE
from src.config.command import Locations, RunOptions, group, opt
from src.data.keywords import (
    DEFAULT_SPLITS_FILE, MATCH_MODES, SPLIT_NAMES, KeywordSplit, forget_keywords, id_list_text, keyword_split,
    load_keyword_table, split_paths, split_quality, write_id_list,
)

log = logging.getLogger(__name__)

PROG = "python -m src.data.split"


# ---------------------------------------------------------------------------------------------------------------------
# TMR refinement (upstream's --tmr): src/models/tmr/refine_split.py does the work.

@dataclasses.dataclass(frozen=True, kw_only=True)
class TMRRefineOptions:
    """TMR refinement (upstream --tmr; writes {split}-w-{concept}-tmr.txt and -wo-...-tmr.txt)"""

    tmr: bool = opt(False, help="move retain motions that TMR retrieval ties to the concept into forget (needs a "
                                "trained run: python -m src.train.tmr)")
    tmr_name: str = opt("tmr", help="TMR run checkpoints/<dataset>/<name>")
    tmr_method: str = opt("knn", aliases=("--tmr_mode",), choices=("knn", "vote", "upstream_filter"),
                          help="knn: move keyword-retain motions whose max_rank nearest train captions hold >= "
                               "tmr_min_occurence concept captions to forget (ours, raises recall); "
                               "upstream_filter: the paper's precision filter on the keyword forget set (generate "
                               "repeat_times motions each; >= tmr_min_occurence hits stay, 1.. go to retain, 0 "
                               "dropped); vote: prompts that retrieve the motion in their top max_rank")
    # knn 8 of 20: chosen on synth's train split (best F1 of a small grid; see src/models/tmr/refine_split.py).
    tmr_min_occurence: int = opt(8, range=NON_NEGATIVE,
                                 help="score (knn, vote) or hits (upstream_filter) needed for forget")
    max_rank: int | None = opt(None, range=POSITIVE,
                               help="retrieval neighbourhood (default: knn/vote 20, upstream_filter 10 as upstream)")
    tmr_prompts: str | None = opt(None, help="extra concept prompts: text file (one a line) or JSON list")
    repeat_times: int = opt(10, help="upstream_filter: generations per keyword-forget motion")
    trans_name: str | None = opt(None, help="upstream_filter: masked-transformer run that generates (default: the "
                                            "dataset's default run)")
    res_name: str | None = opt(None, help="upstream_filter: residual run (default: the dataset's default)")
    seed: int = opt(0, help="upstream_filter: generation seed")

    @property
    def rank(self) -> int:
        return self.max_rank if self.max_rank is not None else (10 if self.tmr_method == "upstream_filter" else 20)


@dataclasses.dataclass(kw_only=True)
class SplitConfig:
    """Write keyword forget/retain splits dataset/<ds>/kw_splits/{split}-w-{concept}.txt and -wo-."""

    pos_dataset: str | None = opt(None, flag="pos_dataset", nargs="?", metavar="DATASET",
                                  help="dataset name (same as --dataset_name)")
    pos_concept: str | None = opt(None, flag="pos_concept", nargs="?", metavar="CONCEPT",
                                  help="concept in assets/splits.json (same as --concept)")
    dataset_name: str | None = opt(None, aliases=("--dataset", "-d"), help="dataset name or alias (default: synth)")
    concept: str | None = opt(None, aliases=("--split_name",),
                              help="concept whose forget_texts are the keywords, e.g. violence")
    main_split: list[str] | None = opt(None, action="extend", metavar="SPLIT",
                                       help="split list(s) to split (<root>/<SPLIT>.txt); repeatable; default: every "
                                            f"one of {', '.join(SPLIT_NAMES)} that exists")
    match: str = opt("word", choices=MATCH_MODES,
                     help="word: whole words, case-insensitive, with inflections; substring: upstream's "
                          "case-sensitive regex over the raw line")
    min_occurence: int = opt(1, range=POSITIVE, help="caption lines that must match for a motion to be forget")
    report: bool = opt(False, help="print precision/recall against labels.json (automatic when the dataset has one)")
    splits_file: str | None = opt(None, help=f"keyword table (default: {DEFAULT_SPLITS_FILE})")
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir"))
    run: RunOptions = group(RunOptions, only=("force",))
    refine: TMRRefineOptions = group(TMRRefineOptions)

    def check(self) -> None:
        _pick(self.dataset_name, self.pos_dataset, "dataset")
        if not _pick(self.concept, self.pos_concept, "concept"):
            raise HmuError("--concept is required (e.g. --concept violence)")

    @property
    def dataset(self) -> str:
        return _pick(self.dataset_name, self.pos_dataset, "dataset") or "synth"

    @property
    def the_concept(self) -> str:
        return _pick(self.concept, self.pos_concept, "concept")



CONFIG = SplitConfig


def _pick(flag_value, positional, what: str):
    if flag_value is not None and positional is not None and flag_value != positional:
        raise HmuError(f"{what} given twice ('{positional}' and '{flag_value}')")
    return flag_value if flag_value is not None else positional


Refiner = Callable[[str, KeywordSplit], KeywordSplit]


def make_generate(options: TMRRefineOptions, *, spec, paths):
    """upstream_filter's generator: the original MoMask runs at upstream's settings (cond_scale 4, time_steps 10)."""
    import torch

    from src.common.run_names import default_run_name
    from src.gen.generate import load_generator

    gen = load_generator(dataset_name=spec.name, name=options.trans_name or default_run_name(spec.name, "mask"),
                         res_name=options.res_name or default_run_name(spec.name, "res"),
                         checkpoints_dir=paths.checkpoints_dir, dataset_dir=paths.dataset_dir, cond_scale=4.0,
                         time_steps=10)
    g = torch.Generator().manual_seed(options.seed)
    return lambda captions, lengths: gen.generate(captions, lengths, generator=g)


def make_tmr_refiner(options: TMRRefineOptions, *, spec, root: Path, keywords: Sequence[str], match: str,
                     paths) -> Refiner:
    """Build the TMR refinement ``(split_name, naive_split) -> refined_split``; called before any file is written."""
    from src.common.paths import tmr_run_dir
    from src.models.tmr.refine_split import build_refiner

    generate = make_generate(options, spec=spec, paths=paths) if options.tmr_method == "upstream_filter" else None
    return build_refiner(run_dir=tmr_run_dir(paths, spec.name, options.tmr_name, existing=True), root=root,
                         glove_dir=paths.glove(spec.name), keywords=keywords, match=match, method=options.tmr_method,
                         max_rank=options.rank, min_occurence=options.tmr_min_occurence,
                         prompts_file=options.tmr_prompts, max_motion_length=spec.max_motion_length,
                         generate=generate, repeat_times=options.repeat_times)


# ---------------------------------------------------------------------------------------------------------------------
# CLI

def _fmt(x: float) -> str:
    return "  n/a" if math.isnan(x) else f"{x:.3f}"


def _splits(root: Path, main_split: Sequence[str] | None) -> list[str]:
    if main_split:
        splits = list(dict.fromkeys(main_split))
        for s in splits:
            if not (root / f"{s}.txt").is_file():
                raise HmuError(f"split list not found: {root / f'{s}.txt'} (--main_split {s})")
        return splits
    splits = [s for s in SPLIT_NAMES if (root / f"{s}.txt").is_file()]
    if not splits:
        raise HmuError(f"no split list ({', '.join(s + '.txt' for s in SPLIT_NAMES)}) in {root}")
    return splits


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.config.command import command_context, parse_config

    cfg = parse_config(SplitConfig, argv, prog=PROG, intermixed=True)
    ctx = command_context(cfg.dataset, where=cfg.where, run=cfg.run, needs_device=False)
    return write_splits(cfg, ctx)


def write_splits(cfg: SplitConfig, ctx) -> int:
    """The keyword (and, with ``--tmr``, TMR-refined) splits of ``cfg`` written under ``ctx``'s dataset folder."""
    from src.data.humanml3d import read_split
    from src.data.synth.truth import LABELS_FILE, read_labels

    spec, concept, refine = ctx.dataset, cfg.the_concept, cfg.refine
    keywords = forget_keywords(spec.name, concept, table=load_keyword_table(cfg.splits_file))
    root = ctx.data_root
    if not root.is_dir():
        raise HmuError(f"dataset folder not found: {root} (set --dataset_dir or HMU_DATASET)")
    texts_dir = root / "texts"
    if not texts_dir.is_dir():
        raise HmuError(f"texts folder not found: {texts_dir}")
    splits = _splits(root, cfg.main_split)
    labels = read_labels(root, required=False)
    if labels is None and cfg.report:
        raise HmuError(f"--report needs ground truth, but {root / LABELS_FILE} does not exist")

    outputs = {s: split_paths(root, s, concept + ("-tmr" if refine.tmr else "")) for s in splits}
    refiner = (make_tmr_refiner(refine, spec=spec, root=root, keywords=keywords, match=cfg.match, paths=ctx.paths)
               if refine.tmr else None)

    print(f"keywords for '{concept}' ({spec.name}): {', '.join(keywords)}  [match={cfg.match}, "
          f"min_occurence={cfg.min_occurence}]")
    computed = {}
    for s in splits:
        ids = read_split(root / f"{s}.txt")
        result = keyword_split(ids, texts_dir, keywords, match=cfg.match, min_occurence=cfg.min_occurence)
        computed[s] = (ids, result, refiner(s, result, ids=ids) if refiner is not None else result)
    # Refuse before writing anything, so a failed run leaves no half-written set of files. A file that already holds
    # exactly these ids is not an overwrite (rerunning the same command, as upstream's README does, succeeds).
    unchanged = set()
    for s, pair in outputs.items():
        for path, new in zip(pair, (computed[s][2].forget, computed[s][2].retain)):
            if path.exists():
                if path.read_text(encoding="utf-8") == id_list_text(new):
                    unchanged.add(path)
                elif not ctx.force:
                    raise HmuError(f"split file {path} already exists with other ids (pass --force to overwrite)")
    for s in splits:
        ids, naive, result = computed[s]
        forget_path, retain_path = outputs[s]
        for path, new in ((forget_path, result.forget), (retain_path, result.retain)):
            if path not in unchanged:
                write_id_list(path, new)
        extra = f", {len(result.missing)} without texts (retain)" if result.missing else ""
        same = " (unchanged)" if {forget_path, retain_path} <= unchanged else ""
        dropped = getattr(refiner, "last_dropped", None) if refiner is not None else None
        if dropped:
            extra += f", {len(dropped)} keyword-forget motions dropped (no generation retrieved a concept caption)"
        print(f"{s}: {len(ids)} ids -> forget {len(result.forget)} ({forget_path.relative_to(root)}), "
              f"retain {len(result.retain)} ({retain_path.relative_to(root)}){extra}{same}")
        if labels is not None:
            _print_quality(labels, concept, ids, texts_dir, keywords, cfg.min_occurence, cfg.match, naive)
            if refiner is not None and concept in labels.get("concepts", {}):
                from src.models.tmr.refine_split import tmr_quality_lines

                print("\n".join(tmr_quality_lines(labels, concept, ids, naive.forget, result.forget)))
    return 0


def _print_quality(labels: Mapping, concept: str, ids: list[str], texts_dir: Path, keywords: Sequence[str],
                   min_occurence: int, chosen: str, chosen_result: KeywordSplit) -> None:
    known = labels.get("concepts", {}) if isinstance(labels, Mapping) else {}
    if concept not in known:
        print(f"  (labels.json has no ground truth for concept '{concept}'; known: {', '.join(known) or 'none'})")
        return
    for mode in MATCH_MODES:
        res = chosen_result if mode == chosen else keyword_split(ids, texts_dir, keywords, match=mode,
                                                                 min_occurence=min_occurence)
        q = split_quality(res.forget, labels, concept, ids=ids)
        mark = "*" if mode == chosen else " "
        print(f" {mark}{mode:>9}: precision {_fmt(q['precision'])}  recall {_fmt(q['recall'])}  "
              f"(tp {q['tp']}, fp {q['fp']}, fn {q['fn']}, n {q['n']})")


if __name__ == "__main__":
    raise SystemExit(main())
