"""Checks on free-form prompts before any work: refuse a prompt with no known English word, warn on mostly unknown.

"Known" means: in glove.6B's 400,000-word English vocabulary when the GloVe package is installed, else in the
dataset's word-vector vocabulary (``our_vab_*``); an inflected form counts when a base form is known ("kicks" ->
"kick"). A prompt whose words are all unknown would condition the models on nearly nothing (MiniLM reads word pieces
of anything, the word-vector encoders read zeros or ``unk``), so it is an error, as the empty prompt is.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable

from src.common.errors import HmuError

log = logging.getLogger(__name__)

WARN_FRACTION = 0.5  # warn when more than this fraction of a prompt's words is unknown
_WORD = re.compile(r"[a-z]+")


def prompt_words(text: str) -> list[str]:
    """Lower-case alphabetic words of a prompt."""
    return _WORD.findall(text.lower())


def _bases(word: str) -> list[str]:
    out = [word]
    for suf in ("ing", "ed", "es", "s"):
        if word.endswith(suf) and len(word) > len(suf) + 1:
            stem = word[: -len(suf)]
            out += [stem, stem + "e"]
            if len(stem) > 2 and stem[-1] == stem[-2]:
                out.append(stem[:-1])
    return out


def english_vocabulary(glove_dir: str | os.PathLike | None = None) -> tuple[Callable[[str], bool], str]:
    """(is_known(word), description): glove.6B's words when installed, else the word-vector folder's words."""
    from src.data.pretrained import glove_6b_50d, glove_available

    if glove_available():
        _, index = glove_6b_50d()
        return (lambda w: w in index), "glove.6B (400,000 English words)"
    if glove_dir is not None:
        from src.data.word_vectorizer import load_word_vectorizer

        try:
            wv = load_word_vectorizer(glove_dir)
        except HmuError:
            wv = None
        if wv is not None:
            return (lambda w: w in wv), f"the {len(wv)}-word vocabulary in {glove_dir}"
    return (lambda w: True), "no vocabulary (unchecked)"


def unknown_words(text: str, is_known: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """(words, unknown words) of one prompt."""
    words = prompt_words(text)
    return words, [w for w in words if not any(is_known(b) for b in _bases(w))]


def check_prompts(texts: Iterable[str], *, glove_dir: str | os.PathLike | None = None, what: str = "prompt",
                  is_known: Callable[[str], bool] | None = None) -> list[str]:
    """Raise a one-line HmuError for an empty prompt or one with no known word; warn (one line) when more than half
    of a prompt's words are unknown. Returns the warnings given."""
    texts = list(texts)
    desc = "the given vocabulary"
    if is_known is None:
        is_known, desc = english_vocabulary(glove_dir)
    warnings: list[str] = []
    for i, text in enumerate(texts):
        words, unknown = unknown_words(text, is_known)
        label = f"{what} {text!r}" if len(texts) == 1 else f"{what} {i + 1} {text!r}"
        if not words:
            raise HmuError(f"{label} has no words")
        if len(unknown) == len(words):
            raise HmuError(f"{label}: no known word (none of {', '.join(unknown[:6])} is in {desc})")
        if len(unknown) / len(words) > WARN_FRACTION:
            msg = (f"{label}: {len(unknown)} of {len(words)} words unknown ({', '.join(unknown[:6])}); the models "
                   "will read little of it")
            log.warning(msg)
            warnings.append(msg)
    return warnings

