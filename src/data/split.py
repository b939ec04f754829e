"""``python -m src.data.split``: keyword forget/retain splits (``dataset/<ds>/kw_splits/{split}-w[o]-{concept}.txt``),
optionally refined with TMR retrieval (``--tmr``).

The keyword rule is :mod:`src.data.keywords` (pure); the TMR refinement is :mod:`src.models.tmr.refine_split`.
Unlike upstream, existing split files are not silently reused: the CLI refuses to overwrite them without ``--force``.
On a dataset with ground truth (``labels.json``, the embedded ``synth``), the CLI prints the forget split's precision and
recall for both modes.
"""
from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from src.common.errors import HmuError, cli
from src.data.keywords import (
    DEFAULT_SPLITS_FILE, MATCH_MODES, SPLIT_NAMES, KeywordSplit, forget_keywords, id_list_text, keyword_split,
    load_keyword_table, split_paths, split_quality, write_id_list,
)
from src.common.validate import check_args

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------------
# TMR refinement hook (upstream's --tmr): src/models/tmr/refine_split.py does the work.

@dataclass(frozen=True)
class TMRRefineOptions:
    """Upstream's TMR-filter knobs (see src/models/tmr/refine_split.py for what the modes and scores mean)."""

    # knn 8 of 20: chosen on synth's train split (best F1 of a small grid; see src/models/tmr/refine_split.py).
    min_occurence: int = 8      # --tmr_min_occurence: score (knn/vote) or hits (upstream_filter) needed for forget
    max_rank: int | None = None  # --max_rank: retrieval neighbourhood (None: knn/vote 20, upstream_filter 10)
    repeat_times: int = 10      # --repeat_times: upstream_filter's generations per keyword-forget motion
    name: str = "tmr"           # --tmr_name: checkpoints/<dataset>/<name>
    method: str = "knn"         # --tmr_method / --tmr_mode
    prompts: str | None = None  # --tmr_prompts: extra concept prompts
    trans_name: str | None = None  # upstream_filter's generator (default: the dataset's default runs)
    res_name: str | None = None
    seed: int = 0

    @property
    def rank(self) -> int:
        return self.max_rank if self.max_rank is not None else (10 if self.method == "upstream_filter" else 20)


Refiner = Callable[[str, KeywordSplit], KeywordSplit]


def make_generate(options: TMRRefineOptions, *, dataset_name: str, paths):
    """upstream_filter's generator: the original MoMask runs at upstream's settings (cond_scale 4, time_steps 10)."""
    import torch

    from src.common.run_names import default_run_name
    from src.gen.generate import load_generator

    gen = load_generator(dataset_name=dataset_name, name=options.trans_name or default_run_name(dataset_name, "mask"),
                         res_name=options.res_name or default_run_name(dataset_name, "res"),
                         checkpoints_dir=paths.checkpoints_dir, dataset_dir=paths.dataset_dir, cond_scale=4.0,
                         time_steps=10)
    g = torch.Generator().manual_seed(options.seed)
    return lambda captions, lengths: gen.generate(captions, lengths, generator=g)


def make_tmr_refiner(options: TMRRefineOptions, *, dataset_name: str, concept: str, root: Path,
                     keywords: Sequence[str], match: str, paths) -> Refiner:
    """Build the TMR refinement ``(split_name, naive_split) -> refined_split``; called before any file is written."""
    from src.common.datasets import get_spec
    from src.models.tmr.refine_split import build_refiner
    from src.train.tmr import tmr_run_dir

    spec = get_spec(dataset_name)
    generate = (make_generate(options, dataset_name=spec.name, paths=paths) if options.method == "upstream_filter"
                else None)
    return build_refiner(run_dir=tmr_run_dir(paths, spec.name, options.name, existing=True), root=root,
                         glove_dir=paths.glove(spec.name), keywords=keywords, match=match, method=options.method,
                         max_rank=options.rank, min_occurence=options.min_occurence,
                         prompts_file=options.prompts, max_motion_length=spec.max_motion_length, generate=generate,
                         repeat_times=options.repeat_times)


# ---------------------------------------------------------------------------------------------------------------------
# CLI

def build_parser() -> argparse.ArgumentParser:
    from src.config.flags import HelpFormatter

    p = argparse.ArgumentParser(
        prog="python -m src.data.split", formatter_class=HelpFormatter,
        description="Write keyword forget/retain splits dataset/<ds>/kw_splits/{split}-w-{concept}.txt and -wo-.",
    )
    p.add_argument("pos_dataset", nargs="?", metavar="DATASET", help="dataset name (same as --dataset_name)")
    p.add_argument("pos_concept", nargs="?", metavar="CONCEPT", help="concept in assets/splits.json (same as --concept)")
    p.add_argument("--dataset_name", "--dataset", "-d", dest="dataset_name", default=None,
                   help="dataset name or alias (default: synth)")
    p.add_argument("--concept", "--split_name", dest="concept", default=None,
                   help="concept whose forget_texts are the keywords, e.g. violence")
    p.add_argument("--main_split", action="append", default=None, metavar="SPLIT",
                   help="split list to split (<root>/<SPLIT>.txt); repeatable; default: every one of "
                        f"{', '.join(SPLIT_NAMES)} that exists")
    p.add_argument("--match", choices=MATCH_MODES, default="word",
                   help="word: whole words, case-insensitive, with inflections (default); substring: upstream's "
                        "case-sensitive regex over the raw line")
    p.add_argument("--min_occurence", type=int, default=1,
                   help="caption lines that must match for a motion to be forget (default: 1)")
    p.add_argument("--force", action="store_true", help="overwrite existing split files")
    p.add_argument("--report", action="store_true",
                   help="print precision/recall against labels.json (automatic when the dataset has one)")
    p.add_argument("--dataset_dir", default=None, help="folder holding dataset/<folder> (default: HMU_DATASET or ./dataset)")
    p.add_argument("--splits_file", default=None, help=f"keyword table (default: {DEFAULT_SPLITS_FILE})")
    g = p.add_argument_group("TMR refinement (upstream --tmr; writes {split}-w-{concept}-tmr.txt and -wo-...-tmr.txt)")
    g.add_argument("--tmr", action="store_true", help="move retain motions that TMR retrieval ties to the concept "
                   "into forget (needs a trained run: python -m src.train.tmr)")
    g.add_argument("--tmr_name", default=TMRRefineOptions.name, help="TMR run checkpoints/<dataset>/<name> (default: tmr)")
    g.add_argument("--tmr_method", "--tmr_mode", dest="tmr_method", choices=("knn", "vote", "upstream_filter"),
                   default=TMRRefineOptions.method,
                   help="knn: move keyword-retain motions whose max_rank nearest train captions hold >= "
                        "tmr_min_occurence concept captions to forget (ours, raises recall; default); "
                        "upstream_filter: the paper's precision filter on the keyword forget set (generate "
                        "repeat_times motions each; >= tmr_min_occurence hits stay, 1.. go to retain, 0 dropped); "
                        "vote: prompts that retrieve the motion in their top max_rank")
    g.add_argument("--tmr_min_occurence", type=int, default=TMRRefineOptions.min_occurence,
                   help=f"score (knn, vote) or hits (upstream_filter) needed for forget "
                        f"(default: {TMRRefineOptions.min_occurence})")
    g.add_argument("--max_rank", type=int, default=None,
                   help="retrieval neighbourhood (default: knn/vote 20, upstream_filter 10 as upstream)")
    g.add_argument("--tmr_prompts", default=None, help="extra concept prompts: text file (one a line) or JSON list")
    g.add_argument("--repeat_times", type=int, default=TMRRefineOptions.repeat_times,
                   help="upstream_filter: generations per keyword-forget motion (default: 10)")
    g.add_argument("--trans_name", default=None, help="upstream_filter: masked-transformer run that generates "
                   "(default: the dataset's default run)")
    g.add_argument("--res_name", default=None, help="upstream_filter: residual run (default: the dataset's default)")
    g.add_argument("--checkpoints_dir", default=None, help="checkpoints folder (default: HMU_CHECKPOINTS or ./checkpoints)")
    g.add_argument("--seed", type=int, default=0, help="upstream_filter: generation seed")
    return p


def _pick(flag_value, positional, what: str):
    if flag_value is not None and positional is not None and flag_value != positional:
        raise HmuError(f"{what} given twice ('{positional}' and '{flag_value}')")
    return flag_value if flag_value is not None else positional


def _fmt(x: float) -> str:
    return "  n/a" if math.isnan(x) else f"{x:.3f}"


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    check_args(args)
    from src.common.logging import setup_logging
    from src.common.paths import Paths
    from src.data.humanml3d import read_split
    from src.common.datasets import get_spec

    dataset_name = _pick(args.dataset_name, args.pos_dataset, "dataset") or "synth"
    concept = _pick(args.concept, args.pos_concept, "concept")
    if not concept:
        raise HmuError("--concept is required (e.g. --concept violence)")
    setup_logging()
    spec = get_spec(dataset_name)
    keywords = forget_keywords(spec.name, concept, table=load_keyword_table(args.splits_file))
    if args.min_occurence < 1:
        raise HmuError(f"--min_occurence must be >= 1, got {args.min_occurence}")

    root = Paths.default(dataset_dir=args.dataset_dir).data_root(spec.name)
    if not root.is_dir():
        raise HmuError(f"dataset folder not found: {root} (set --dataset_dir or HMU_DATASET)")
    texts_dir = root / "texts"
    if not texts_dir.is_dir():
        raise HmuError(f"texts folder not found: {texts_dir}")
    if args.main_split:
        splits = list(dict.fromkeys(args.main_split))
        for s in splits:
            if not (root / f"{s}.txt").is_file():
                raise HmuError(f"split list not found: {root / f'{s}.txt'} (--main_split {s})")
    else:
        splits = [s for s in SPLIT_NAMES if (root / f"{s}.txt").is_file()]
        if not splits:
            raise HmuError(f"no split list ({', '.join(s + '.txt' for s in SPLIT_NAMES)}) in {root}")

    from src.data.synth.truth import LABELS_FILE, read_labels

    labels_path = root / LABELS_FILE
    labels = read_labels(root, required=False)
    if labels is None and args.report:
        raise HmuError(f"--report needs ground truth, but {labels_path} does not exist")

    outputs = {s: split_paths(root, s, concept + ("-tmr" if args.tmr else "")) for s in splits}
    if args.tmr and (args.repeat_times < 1 or (args.max_rank is not None and args.max_rank < 1)):
        raise HmuError("--repeat_times and --max_rank must be >= 1")
    refiner = (make_tmr_refiner(TMRRefineOptions(args.tmr_min_occurence, args.max_rank, args.repeat_times,
                                                 args.tmr_name, args.tmr_method, args.tmr_prompts, args.trans_name,
                                                 args.res_name, args.seed),
                                dataset_name=spec.name, concept=concept, root=root, keywords=keywords,
                                match=args.match, paths=Paths.default(dataset_dir=args.dataset_dir,
                                                                      checkpoints_dir=args.checkpoints_dir))
               if args.tmr else None)

    print(f"keywords for '{concept}' ({spec.name}): {', '.join(keywords)}  [match={args.match}, "
          f"min_occurence={args.min_occurence}]")
    computed = {}
    for s in splits:
        ids = read_split(root / f"{s}.txt")
        result = keyword_split(ids, texts_dir, keywords, match=args.match, min_occurence=args.min_occurence)
        computed[s] = (ids, result, refiner(s, result, ids=ids) if refiner is not None else result)
    # Refuse before writing anything, so a failed run leaves no half-written set of files. A file that already holds
    # exactly these ids is not an overwrite (rerunning the same command, as upstream's README does, succeeds).
    unchanged = set()
    for s, pair in outputs.items():
        for path, new in zip(pair, (computed[s][2].forget, computed[s][2].retain)):
            if path.exists():
                if path.read_text(encoding="utf-8") == id_list_text(new):
                    unchanged.add(path)
                elif not args.force:
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
            _print_quality(labels, concept, ids, texts_dir, keywords, args.min_occurence, args.match, naive)
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
