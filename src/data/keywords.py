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

The CLI is :mod:`src.data.split` (``python -m src.data.split``); this module is the pure rule and the split files.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from src.common.errors import HmuError

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
    from src.common.datasets import get_spec

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
    from src.data.humanml3d import read_text

    if not path.is_file():
        return None
    text = read_text(path)  # UTF-8, as training and evaluation read it; anything else is refused naming the file
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
    """The text :func:`write_id_list` writes."""
    return "".join(f"{i}\n" for i in ids)
