"""Procedural 300-d word vectors for the synth vocabulary, in upstream's GloVe file format.

Words in a synonym group share the group's centroid (plus small per-word noise), so synonyms are close; a word
outside every group gets its own random direction, so unrelated words are nearly orthogonal. The violent groups'
centroids share a common ``violence`` direction, so 'strike' lies nearer 'kick' and 'punch' than 'walk' does, and a
text encoder can generalise from explicit to implicit phrasings. Surface forms ('kicks') sit next to their lemma.
Each vector depends only on (seed, word), never on the rest of the vocabulary.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .lexicon import LEXICON

DIM = 300
NORM = 5.0  # typical GloVe-300d vector norm
SPECIAL = ("sos", "eos", "unk")

# group -> (weight of the shared 'violence' direction, words)
GROUPS: dict[str, tuple[float, tuple[str, ...]]] = {
    "kick": (0.7, ("kick", "roundhouse")),
    "punch": (0.7, ("punch", "jab", "hook", "uppercut", "box", "boxing", "shadowbox", "fist")),
    "strike": (0.7, ("strike", "hit", "attack", "blow", "lash", "thrust", "smack", "clobber", "fight", "lunge", "poke",
                     "deliver", "snap", "fire", "shoot", "drive", "land")),
    "opponent": (0.6, ("opponent", "attacker", "enemy")),
    "walk": (0.0, ("walk", "stroll", "step", "pace", "march", "move", "shuffle")),
    "run": (0.0, ("run", "jog", "sprint", "dash", "running")),
    "jump": (0.0, ("jump", "leap", "hop", "skip", "bounce")),
    "crawl": (0.0, ("crawl", "creep", "fours")),
    "squat": (0.0, ("squat", "crouch", "duck")),
    "sit": (0.0, ("sit", "seat", "chair")),
    "turn": (0.0, ("turn", "spin", "twirl", "rotate")),
    "wave": (0.0, ("wave", "hello", "goodbye")),
    "throw": (0.0, ("throw", "toss", "pitch", "ball")),
    "dance": (0.0, ("dance", "groove", "sway", "dancing")),
    "clap": (0.0, ("clap", "applaud")),
    "bow": (0.0, ("bow",)),
    "stretch": (0.0, ("stretch", "reach", "spread")),
    "music": (0.0, ("drum", "rhythm", "music", "beat", "tap", "pound", "play")),
    "paint": (0.0, ("paint", "whitewash", "brush", "stroke", "wall")),
    "hitchhike": (0.0, ("hitchhike", "hitch", "ride", "thumb", "road")),
    "lift": (0.0, ("lift", "pick", "object", "box", "heavy")),
    "person": (0.0, ("person", "man", "woman", "someone", "human")),
    "fast": (0.0, ("quickly", "fast", "briskly", "quick", "rapidly", "energetically", "forcefully")),
    "slow": (0.0, ("slowly", "slow", "gently")),
    "forward": (0.0, ("forward", "forwards", "ahead", "straight")),
    "backward": (0.0, ("backward", "backwards", "back")),
    "upward": (0.0, ("up", "upward", "high", "above", "raise")),
    "downward": (0.0, ("down", "low", "floor", "ground")),
    "arm": (0.0, ("arm", "hand", "elbow")),
    "leg": (0.0, ("leg", "foot", "feet", "knee")),
    "count": (0.0, ("twice", "two", "three", "four", "five", "time", "once")),
}


def _unit_gaussian(key: str, seed: int) -> np.ndarray:
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    v = np.random.default_rng(int.from_bytes(h[:8], "little")).standard_normal(DIM)
    return v / np.linalg.norm(v)


def _lemma(word: str) -> str:
    tags = LEXICON.get(word)
    if not tags:
        return word
    return tags.get("VERB", tags.get("NOUN", next(iter(tags.values()))))


def word_vector(word: str, *, seed: int) -> np.ndarray:
    """The (300,) float64 vector of one word."""
    base = word if any(word in ws for _, ws in GROUPS.values()) else _lemma(word)
    groups = [g for g, (_, ws) in GROUPS.items() if base in ws]
    if groups:
        violence = _unit_gaussian("concept:violence", seed)
        c = np.zeros(DIM)
        for g in groups:
            w = GROUPS[g][0]
            cg = w * violence + np.sqrt(1 - w * w) * _unit_gaussian(f"group:{g}", seed)
            c += cg
        v = c / np.linalg.norm(c) + 0.4 * _unit_gaussian(f"word:{base}", seed)
    else:
        v = _unit_gaussian(f"word:{base}", seed)
    if base != word:  # inflected form: next to its lemma
        v = v / np.linalg.norm(v) + 0.15 * _unit_gaussian(f"form:{word}", seed)
    return v / np.linalg.norm(v) * NORM


def build_vocabulary(words, *, seed: int) -> tuple[np.ndarray, list[str]]:
    """Sorted vocabulary (``words`` plus sos/eos/unk) and its (n, 300) float32 procedural vectors."""
    vocab = sorted(set(words) | set(SPECIAL))
    return np.stack([word_vector(w, seed=seed) for w in vocab]).astype(np.float32), vocab


GLOVE_SOURCE = "glove.6B.50d"
GLOVE_NORM = 4.8  # mean norm of glove.6B.50d's 50,000 most frequent words (4.79)


def build_glove_vocabulary(words, *, seed: int) -> tuple[np.ndarray, list[str], list[str]]:
    """Sorted vocabulary (``words`` plus sos/eos/unk) with real glove.6B 50-d vectors -> (vectors, vocab, missing).

    A word GloVe lacks (``missing``) gets a seeded random direction with GloVe's typical norm (:data:`GLOVE_NORM`), so
    it is nearly orthogonal to every other word, as an out-of-vocabulary word is for a reader of GloVe. Each vector
    depends only on (seed, word).
    """
    from src.data.pretrained import GLOVE_DIM, glove_vectors

    vocab = sorted(set(words) | set(SPECIAL))
    found = glove_vectors(vocab)
    missing = [w for w in vocab if w not in found]
    rows = []
    for w in vocab:
        if w in found:
            rows.append(found[w])
        else:
            h = hashlib.sha256(f"{seed}:oov:{w}".encode()).digest()
            v = np.random.default_rng(int.from_bytes(h[:8], "little")).standard_normal(GLOVE_DIM)
            rows.append(v / np.linalg.norm(v) * GLOVE_NORM)
    return np.stack(rows).astype(np.float32), vocab, missing
