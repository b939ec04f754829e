"""Keyword forget/retain splits: ``dataset/<ds>/kw_splits/{split}-w-{concept}.txt`` (forget) and ``-wo-`` (retain).

A motion goes to the forget split when at least ``min_occurence`` lines of its ``texts/<id>.txt`` match one of the
concept's keywords (``assets/splits.json``). Two matching modes:

``word`` (default)
    Case-insensitive whole-word matching. The words of a line are the lowercase letter runs of the caption (the part
    before the first ``#``) plus the word part of each ``word/POS`` token (spaCy lemmas in HumanML3D). A keyword ``kw``
    matches a word ``w`` when ``w == kw`` or ``w`` is ``kw`` with a regular inflection suffix (``INFLECTIONS``: s, es,
    ed, ing, er, ers, en), optionally with the last consonant doubled (``jab`` -> ``jabbed``) or a final ``e`` dropped
    (``slide`` -> ``sliding``); a keyword ending in ``e`` also takes ``d``/``r``/``s`` directly (``boxe`` -> ``boxed``,
    ``boxes``). So upstream's stem ``boxe`` matches ``boxes``/``boxed``/``boxing`` and never ``box`` itself. Irregular
    forms (``threw``, ``slid``) are caught through the lemma tokens (``throw/VERB``), not by rules. Compounds are not
    split: ``kickboxing`` does not match ``kick`` and ``shopping`` does not match ``hop``. Keywords with a space match
    consecutive words (the last word takes inflections).
``substring``
    Upstream's exact rule (``scripts/utils/split_dataset.sh`` of Mamiglia/hmu): the keywords joined with ``|`` as one
    case-sensitive regular expression searched anywhere in the raw line (caption, POS tokens and ``#from#to`` tail).

In both modes ``min_occurence`` counts matching *lines* (captions), not keyword hits, and a listed id without a texts
file goes to retain (upstream's grep error, count 0). Output order is input order, one id per line.

Unlike upstream, existing split files are not silently reused: the CLI refuses to overwrite them without ``--force``.
On a dataset with ground truth (``labels.json``, the embedded ``synth``), the CLI prints the forget split's precision and
recall for both modes.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from src.common.errors import HmuError, cli

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test", "train_val", "all")
MATCH_MODES = ("word", "substring")
# Regular inflection suffixes accepted after a keyword in word mode (see the module docstring).
INFLECTIONS = ("s", "es", "ed", "ing", "er", "ers", "en")
DEFAULT_SPLITS_FILE = Path(__file__).resolve().parents[2] / "assets" / "splits.json"

_WORD_RE = re.compile(r"[^\W\d_]+")
_VOWELS = set("aeiou")


class KeywordSplit(NamedTuple):
    """Result of :func:`keyword_split`: ids in input order; ``missing`` ids had no texts file (they are in ``retain``)."""

    forget: list[str]
    retain: list[str]
    missing: list[str]


# ---------------------------------------------------------------------------------------------------------------------
# The keyword table (assets/splits.json)

def load_keyword_table(path: str | os.PathLike | None = None) -> dict:
    """Read ``assets/splits.json`` (``{"splits": {dataset: {concept: {"forget_texts": [...]}}}}``)."""
    p = Path(path) if path is not None else DEFAULT_SPLITS_FILE
    try:
        table = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HmuError(f"keyword table not found: {p}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HmuError(f"keyword table {p} is not valid JSON ({exc})") from None
    if not isinstance(table, dict) or not isinstance(table.get("splits"), dict):
        raise HmuError(f"keyword table {p} has no top-level 'splits' object")
    return table


def forget_keywords(dataset_name: str, concept: str, *, table: Mapping | None = None) -> list[str]:
    """The ``forget_texts`` of ``concept`` for a dataset (name or alias); one-line HmuError listing the known ones."""
    from src.data.spec import get_spec

    table = load_keyword_table() if table is None else table
    name = get_spec(dataset_name).name
    per_ds = table["splits"].get(name)
    if per_ds is None:
        raise HmuError(f"no keyword concepts for dataset '{name}' in splits.json "
                       f"(datasets with concepts: {', '.join(table['splits'])})")
    entry = per_ds.get(concept)
    if entry is None:
        raise HmuError(f"unknown concept '{concept}' for {name} (known: {', '.join(per_ds)})")
    words = entry.get("forget_texts") if isinstance(entry, dict) else None
    if not words or not all(isinstance(w, str) and w for w in words):
        raise HmuError(f"concept '{concept}' of {name} in splits.json needs a non-empty 'forget_texts' list of strings")
    return list(words)


# ---------------------------------------------------------------------------------------------------------------------
# Matching one caption line

def line_words(line: str) -> list[str]:
    """Lowercase words of a caption line: the caption's letter runs, then the word part of each ``word/POS`` token."""
    parts = line.rstrip("\r\n").split("#")
    words = _WORD_RE.findall(parts[0].lower())
    if len(parts) > 1:
        for tok in parts[1].split():
            words.extend(_WORD_RE.findall(tok.rsplit("/", 1)[0].lower()))
    return words


@lru_cache(maxsize=4096)
def word_forms(keyword: str) -> frozenset[str]:
    """Every word a single-word keyword matches in word mode (itself plus its regular inflections)."""
    kw = keyword.lower()
    forms = {kw, *(kw + s for s in INFLECTIONS)}
    if kw.endswith("e"):
        forms |= {kw + "d", kw + "r", kw + "rs"}
        forms |= {kw[:-1] + s for s in ("ing", "er", "ers", "ed")}
    if len(kw) >= 3 and kw[-1] not in _VOWELS and kw[-1] not in "wxy" and kw[-2] in _VOWELS:
        # Consonant doubling before a vowel suffix: jab -> jabbed, hit -> hitting, squat -> squatter.
        forms |= {kw + kw[-1] + s for s in ("ed", "ing", "er", "ers", "en")}
    if kw.endswith("y") and len(kw) > 1 and kw[-2] not in _VOWELS:
        forms |= {kw[:-1] + "ies", kw[:-1] + "ied"}
    return frozenset(forms)


def _phrase_in(words: Sequence[str], phrase: Sequence[str]) -> bool:
    """Consecutive ``phrase`` in ``words``: all but the last word exact, the last with inflections."""
    n = len(phrase)
    last = word_forms(phrase[-1])
    return any(list(words[i:i + n - 1]) == list(phrase[:-1]) and words[i + n - 1] in last
               for i in range(len(words) - n + 1))


def line_matcher(keywords: Sequence[str], match: str = "word") -> Callable[[str], bool]:
    """A predicate on one raw caption line: does it mention any keyword (see the module docstring for the modes)?"""
    if match == "substring":
        # Upstream: grep -E "kw1|kw2|..." (case-sensitive, whole raw line). Keywords are regular expressions there too.
        try:
            pattern = re.compile("|".join(keywords))
        except re.error as exc:
            raise HmuError(f"keywords {'|'.join(keywords)!r} are not a valid regular expression ({exc})") from None
        return lambda line: pattern.search(line) is not None
    if match != "word":
        raise HmuError(f"unknown --match '{match}' (known: {', '.join(MATCH_MODES)})")
    singles = frozenset().union(*(word_forms(k) for k in keywords if len(_WORD_RE.findall(k)) == 1))
    phrases = [_WORD_RE.findall(k.lower()) for k in keywords if len(_WORD_RE.findall(k)) > 1]

    def matches(line: str) -> bool:
        words = line_words(line)
        return any(w in singles for w in words) or any(_phrase_in(words, p) for p in phrases)

    return matches


def read_lines(path: Path) -> list[str] | None:
    """Lines of a texts file as grep sees them (split on newline only), or None when the file does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    text = data.decode("utf-8", errors="surrogateescape")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# ---------------------------------------------------------------------------------------------------------------------
# Library entry points

def keyword_split(ids: Iterable[str], texts_dir: str | os.PathLike, keywords: Sequence[str], *, match: str = "word",
                  min_occurence: int = 1) -> KeywordSplit:
    """Split ``ids`` into forget (>= ``min_occurence`` caption lines match a keyword) and retain, keeping input order."""
    if min_occurence < 1:
        raise HmuError(f"--min_occurence must be >= 1, got {min_occurence}")
    if not keywords:
        raise HmuError("no keywords given")
    matcher = line_matcher(keywords, match)
    texts_dir = Path(texts_dir)
    forget, retain, missing = [], [], []
    for mid in ids:
        lines = read_lines(texts_dir / f"{mid}.txt")
        if lines is None:
            missing.append(mid)
            retain.append(mid)
            continue
        hits = sum(1 for line in lines if matcher(line))
        (forget if hits >= min_occurence else retain).append(mid)
    if missing:
        log.debug("%d listed ids have no texts file in %s (counted as retain)", len(missing), texts_dir)
    return KeywordSplit(forget, retain, missing)


def split_quality(forget_ids: Iterable[str], labels: Mapping, concept: str, *,
                  ids: Iterable[str] | None = None) -> dict:
    """Precision and recall of ``forget_ids`` against ground truth: a motion is truly forget iff its labels list ``concept``.

    ``labels`` is the parsed ``labels.json`` (or its ``"motions"`` mapping). ``ids`` is the universe the split was drawn
    from (default: every labelled motion); ``n`` is its size. Precision (recall) is NaN when nothing was predicted
    (nothing is truly forget).
    """
    motions = labels.get("motions", labels) if isinstance(labels, Mapping) else None
    if not isinstance(motions, Mapping):
        raise HmuError("labels must be the labels.json object or its 'motions' mapping")
    universe = list(motions) if ids is None else list(dict.fromkeys(ids))
    truth = set()
    for mid in universe:
        entry = motions.get(mid)
        if entry is None:
            raise HmuError(f"motion id '{mid}' has no entry in labels.json")
        if concept in (entry.get("concepts") or ()):
            truth.add(mid)
    pred = set(forget_ids)
    outside = pred.difference(universe)
    if outside:
        raise HmuError(f"forget id '{min(outside)}' is not among the ids the split was drawn from")
    tp, fp, fn = len(pred & truth), len(pred - truth), len(truth - pred)
    return {
        "precision": tp / (tp + fp) if tp + fp else math.nan,
        "recall": tp / (tp + fn) if tp + fn else math.nan,
        "tp": tp, "fp": fp, "fn": fn, "n": len(universe),
    }


def split_paths(root: str | os.PathLike, split: str, concept: str) -> tuple[Path, Path]:
    """``(forget, retain)`` files: ``<root>/kw_splits/{split}-w-{concept}.txt`` and ``-wo-``."""
    kw = Path(root) / "kw_splits"
    return kw / f"{split}-w-{concept}.txt", kw / f"{split}-wo-{concept}.txt"


def write_id_list(path: str | os.PathLike, ids: Sequence[str]) -> None:
    """One id per line, every line newline-terminated (as upstream's ``echo >>``), written atomically."""
    from src.common.io import atomic_write_text

    atomic_write_text(path, id_list_text(ids))


def id_list_text(ids: Sequence[str]) -> str:
    return "".join(f"{i}\n" for i in ids)


# ---------------------------------------------------------------------------------------------------------------------
# TMR refinement hook (upstream's --tmr): src/data/tmr_split.py does the work.

@dataclass(frozen=True)
class TMRRefineOptions:
    """Upstream's TMR-filter knobs (see src/data/tmr_split.py for what the scores mean)."""

    # knn 8 of 20: chosen on synth's train split (best F1 of a small grid; see src/data/tmr_split.py).
    min_occurence: int = 8      # --tmr_min_occurence: score a retain motion needs to join forget
    max_rank: int = 20          # --max_rank: neighbourhood size of the retrieval
    repeat_times: int = 10      # --repeat_times: upstream's generations per prompt (unused: we retrieve real motions)
    name: str = "tmr"           # --tmr_name: checkpoints/<dataset>/<name>
    method: str = "knn"         # --tmr_method
    prompts: str | None = None  # --tmr_prompts: extra concept prompts


Refiner = Callable[[str, KeywordSplit], KeywordSplit]


def make_tmr_refiner(options: TMRRefineOptions, *, dataset_name: str, concept: str, root: Path,
                     keywords: Sequence[str], match: str, paths) -> Refiner:
    """Build the TMR refinement ``(split_name, naive_split) -> refined_split``; called before any file is written."""
    from src.data.spec import get_spec
    from src.data.tmr_split import build_refiner
    from src.train.tmr import tmr_run_dir

    spec = get_spec(dataset_name)
    return build_refiner(run_dir=tmr_run_dir(paths, spec.name, options.name, existing=True), root=root,
                         glove_dir=paths.glove(spec.name), keywords=keywords, match=match, method=options.method,
                         max_rank=options.max_rank, min_occurence=options.min_occurence,
                         prompts_file=options.prompts, max_motion_length=spec.max_motion_length)


# ---------------------------------------------------------------------------------------------------------------------
# CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m src.data.split",
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
    g.add_argument("--tmr_method", choices=("knn", "vote"), default=TMRRefineOptions.method,
                   help="knn: concept prompts among a motion's max_rank nearest train captions (default); vote: "
                        "prompts that retrieve the motion in their top max_rank")
    g.add_argument("--tmr_min_occurence", type=int, default=TMRRefineOptions.min_occurence,
                   help=f"score needed to join forget (default: {TMRRefineOptions.min_occurence})")
    g.add_argument("--max_rank", type=int, default=TMRRefineOptions.max_rank,
                   help=f"retrieval neighbourhood (default: {TMRRefineOptions.max_rank})")
    g.add_argument("--tmr_prompts", default=None, help="extra concept prompts: text file (one a line) or JSON list")
    g.add_argument("--repeat_times", type=int, default=TMRRefineOptions.repeat_times,
                   help="upstream's generations per prompt; accepted and unused")
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
    from src.common.logging import setup_logging
    from src.common.paths import Paths
    from src.data.humanml3d import read_split
    from src.data.spec import get_spec

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

    labels = None
    labels_path = root / "labels.json"
    if labels_path.is_file():
        try:
            labels = json.loads(labels_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HmuError(f"labels file {labels_path} is not valid JSON ({exc})") from None
    elif args.report:
        raise HmuError(f"--report needs ground truth, but {labels_path} does not exist")

    outputs = {s: split_paths(root, s, concept + ("-tmr" if args.tmr else "")) for s in splits}
    refiner = (make_tmr_refiner(TMRRefineOptions(args.tmr_min_occurence, args.max_rank, args.repeat_times,
                                                 args.tmr_name, args.tmr_method, args.tmr_prompts),
                                dataset_name=spec.name, concept=concept, root=root, keywords=keywords,
                                match=args.match, paths=Paths.default(dataset_dir=args.dataset_dir))
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
        print(f"{s}: {len(ids)} ids -> forget {len(result.forget)} ({forget_path.relative_to(root)}), "
              f"retain {len(result.retain)} ({retain_path.relative_to(root)}){extra}{same}")
        if labels is not None:
            _print_quality(labels, concept, ids, texts_dir, keywords, args.min_occurence, args.match, naive)
            if refiner is not None and concept in labels.get("concepts", {}):
                from src.data.tmr_split import tmr_quality_lines

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
