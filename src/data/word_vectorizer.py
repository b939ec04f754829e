"""GloVe word vectors + POS one-hots for the T2M evaluator's text encoder, in upstream's on-disk format.

Folder layout (``WordVectorizer('./glove', 'our_vab')`` upstream): ``<prefix>_data.npy`` (n, 300) vectors,
``<prefix>_words.pkl`` (list: which words are in the vocabulary) and ``<prefix>_idx.pkl`` (dict word -> ROW of the .npy;
the row is *not* the position in the words list).

Lookup rule of a ``word/POS`` token (Guo et al.'s ``utils/word_vectorizer.py``):
known word -> its vector, POS = first VIP group holding the word (overrides the tag), else the tag if enumerated, else OTHER;
unknown word (case-sensitive) -> the ``unk`` vector and OTHER, whatever the tag.
"""
from __future__ import annotations

import logging
import os
import pickle
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from src.common.errors import HmuError

log = logging.getLogger(__name__)

POS_ENUMERATOR: dict[str, int] = {
    "VERB": 0, "NOUN": 1, "DET": 2, "ADP": 3, "NUM": 4, "AUX": 5, "PRON": 6, "ADJ": 7, "ADV": 8,
    "Loc_VIP": 9, "Body_VIP": 10, "Obj_VIP": 11, "Act_VIP": 12, "Desc_VIP": 13, "OTHER": 14,
}
POS_enumerator = POS_ENUMERATOR  # upstream's name
DIM_POS_OHOT = len(POS_ENUMERATOR)
OTHER = POS_ENUMERATOR["OTHER"]

# Words whose POS is replaced by a "very important" group; dict order matters (first group wins).
VIP_DICT: dict[str, tuple[str, ...]] = {
    "Loc_VIP": ("left", "right", "clockwise", "counterclockwise", "anticlockwise", "forward", "back", "backward",
                "up", "down", "straight", "curve"),
    "Body_VIP": ("arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye", "knee", "shoulder",
                 "thigh"),
    "Obj_VIP": ("stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail", "baseball", "basketball"),
    "Act_VIP": ("walk", "run", "swing", "pick", "bring", "kick", "put", "squat", "throw", "hop", "dance", "jump", "turn",
                "stumble", "dance", "stop", "sit", "lift", "lower", "raise", "wash", "stand", "kneel", "stroll",
                "rub", "bend", "balance", "flap", "jog", "shuffle", "lean", "rotate", "spin", "spread", "climb"),
    "Desc_VIP": ("slowly", "carefully", "fast", "careful", "slow", "quickly", "happy", "angry", "sad", "happily",
                 "angrily", "sadly"),
}
_VIP_OF: dict[str, int] = {}
for _group, _words in VIP_DICT.items():
    for _w in _words:
        _VIP_OF.setdefault(_w, POS_ENUMERATOR[_group])

SOS, EOS, UNK = "sos/OTHER", "eos/OTHER", "unk/OTHER"
DEFAULT_PREFIX = "our_vab"
# hmu-only sidecar: one line naming where the vectors come from ("glove.6B.50d" on synth with GloVe installed). When
# it names glove.6B.50d, words a prompt brings are added from the installed GloVe package (see WordVectorizer.extend).
VECTORS_SOURCE_FILE = "our_vab_source.txt"
GLOVE_6B_50D = "glove.6B.50d"


def split_token(item: str) -> tuple[str, str]:
    """``'word/POS'`` -> ``(word, pos)``; exactly one ``/`` as upstream's ``item.split('/')`` requires."""
    parts = item.split("/")
    if len(parts) != 2:
        raise HmuError(f"malformed token {item!r}: expected 'word/POS'")
    return parts[0], parts[1]


def pos_index(pos: str) -> int:
    """POS tag -> index in POS_ENUMERATOR; unknown tags map to OTHER."""
    return POS_ENUMERATOR.get(pos, OTHER)


class WordVectorizer:
    """Vocabulary lookups; build with :func:`load_word_vectorizer` (cached) or from arrays in tests."""

    def __init__(self, vectors: np.ndarray, word2idx: dict[str, int], words: Sequence[str], *, source: str = "<memory>",
                 vectors_source: str | None = None):
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise HmuError(f"word vectors in {source} must be 2-D, got shape {vectors.shape}")
        missing = [w for w in words if w not in word2idx]
        if missing:
            raise HmuError(f"word vectors in {source}: {len(missing)} words have no row in the idx file "
                           f"(first: {missing[0]!r})")
        if "unk" not in set(words):
            raise HmuError(f"word vectors in {source} have no 'unk' entry (needed for unknown words)")
        self.source = source
        self.vectors_source = vectors_source
        self._lock = threading.Lock()
        self.vectors = vectors
        self.word2idx = dict(word2idx)
        self.words = list(words)
        self._row: dict[str, int] = {w: int(word2idx[w]) for w in self.words}
        self.unk_row = self._row["unk"]
        self.idx2word = {v: k for k, v in self.word2idx.items()}
        self._memo: dict[str, tuple[int, int]] = {}

    @property
    def dim_word(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, word: str) -> bool:
        return word in self._row

    def extend(self, words: Iterable[str]) -> list[str]:
        """Add GloVe rows for unknown words a prompt brings (only when the vectors ARE glove.6B.50d); returns them.

        The evaluator was trained on a subset of glove.6B.50d, so a word outside that subset still has its real vector
        in the same space; without this it would read as ``unk``.
        """
        if self.vectors_source != GLOVE_6B_50D:
            return []
        new = [w for w in dict.fromkeys(words) if w and w not in self._row]
        if not new:
            return []
        from src.data.pretrained import glove_available, glove_vectors

        if not glove_available():
            return []
        found = glove_vectors(new)
        if not found:
            return []
        with self._lock:
            added = [w for w in new if w in found and w not in self._row]
            if not added:
                return []
            base = len(self.vectors)
            rows = np.stack([found[w] for w in added]).astype(self.vectors.dtype)
            self.vectors = np.concatenate([self.vectors, rows])
            for k, w in enumerate(added):
                self._row[w] = self.word2idx[w] = base + k
                self.idx2word[base + k] = w
                self.words.append(w)
            self._memo = {k: v for k, v in self._memo.items() if split_token(k)[0] not in found}
        log.info("added %d GloVe words a prompt brought: %s", len(added), ", ".join(added[:10]))
        return added

    def known_fraction(self, tokens: Sequence[str]) -> float:
        """Fraction of ``word/POS`` tokens whose word has a vector (1.0 for no tokens)."""
        if not tokens:
            return 1.0
        return sum(split_token(t)[0] in self._row for t in tokens) / len(tokens)

    def lookup(self, item: str) -> tuple[int, int]:
        """``'word/POS'`` -> (vector row, POS index) under upstream's rule."""
        hit = self._memo.get(item)
        if hit is not None:
            return hit
        word, pos = split_token(item)
        row = self._row.get(word)
        if row is None:
            res = (self.unk_row, OTHER)
        else:
            vip = _VIP_OF.get(word)
            res = (row, vip if vip is not None else pos_index(pos))
        self._memo[item] = res
        return res

    def __getitem__(self, item: str) -> tuple[np.ndarray, np.ndarray]:
        """Upstream's ``w_vectorizer[token]``: (vector (300,), float64 one-hot (15,))."""
        row, p = self.lookup(item)
        ohot = np.zeros(DIM_POS_OHOT)
        ohot[p] = 1
        return self.vectors[row], ohot

    def index(self, item: str) -> int:
        """``WordVectorizerV2``'s third output: ``word2idx[word]`` or ``word2idx['unk']``."""
        word, _ = split_token(item)
        return self.word2idx[word] if word in self._row else self.word2idx["unk"]

    def itos(self, idx: int) -> str:
        """Row index -> word; ``len(idx2word)`` is the padding index ``'pad'`` (WordVectorizerV2)."""
        if idx == len(self.idx2word):
            return "pad"
        return self.idx2word[idx]

    def encode(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Tokens (L,) -> word_embs (L, dim_word) in the vectors' dtype, pos_ohot (L, 15) float32."""
        if not len(tokens):
            return np.zeros((0, self.dim_word), self.vectors.dtype), np.zeros((0, DIM_POS_OHOT), np.float32)
        rows, pos = zip(*(self.lookup(t) for t in tokens))
        return self.vectors[list(rows)], np.eye(DIM_POS_OHOT, dtype=np.float32)[list(pos)]

    def batch(self, tokens_list: Sequence[Sequence[str]], *, max_text_len: int = 20, wrap: bool = True
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Captions as token lists -> (word_embs (B, L, 300) float32, pos_ohot (B, L, 15) float32, cap_lens (B,) int64).

        ``wrap=True`` applies the evaluation dataset's sos/eos/unk wrapping first (L = max_text_len + 2); with
        ``wrap=False`` the lists must already have equal length and cap_lens is that length. Rows stay in input order
        (upstream's collate sorts by cap_lens; :func:`sort_by_length` does that when packing needs it).
        """
        if wrap:
            wrapped = [wrap_caption(t, max_text_len=max_text_len) for t in tokens_list]
            seqs = [w for w, _ in wrapped]
            lens = [n for _, n in wrapped]
        else:
            seqs = [list(t) for t in tokens_list]
            if len({len(s) for s in seqs}) > 1:
                raise HmuError("batch(wrap=False) needs token lists of equal length")
            lens = [len(s) for s in seqs]
        B = len(seqs)
        L = len(seqs[0]) if B else max_text_len + 2
        rows = np.empty((B, L), np.int64)
        pos = np.empty((B, L), np.int64)
        for i, seq in enumerate(seqs):
            for j, tok in enumerate(seq):
                rows[i, j], pos[i, j] = self.lookup(tok)
        word_embs = self.vectors[rows].astype(np.float32, copy=False)
        pos_ohot = np.eye(DIM_POS_OHOT, dtype=np.float32)[pos]
        return word_embs, pos_ohot, np.asarray(lens, dtype=np.int64)


def wrap_caption(tokens: Sequence[str], *, max_text_len: int = 20) -> tuple[list[str], int]:
    """The eval dataset's wrapping: ``sos + tokens + eos`` padded with ``unk/OTHER`` to max_text_len + 2, or cropped.

    Returns (tokens of length max_text_len + 2, sent_len counting sos and eos).
    """
    tokens = list(tokens)
    if len(tokens) < max_text_len:
        out = [SOS, *tokens, EOS]
        sent_len = len(out)
        out += [UNK] * (max_text_len + 2 - sent_len)
    else:
        out = [SOS, *tokens[:max_text_len], EOS]
        sent_len = len(out)
    return out, sent_len


def sort_by_length(cap_lens: np.ndarray) -> np.ndarray:
    """Stable permutation that sorts captions by length, longest first (what ``pack_padded_sequence`` needs)."""
    return np.argsort(-np.asarray(cap_lens), kind="stable")


_CACHE: dict[tuple[str, str], WordVectorizer] = {}
_LOCK = threading.Lock()


def vocab_files(folder: str | os.PathLike, prefix: str = DEFAULT_PREFIX) -> tuple[Path, Path, Path]:
    f = Path(folder)
    return f / f"{prefix}_data.npy", f / f"{prefix}_words.pkl", f / f"{prefix}_idx.pkl"


def load_word_vectorizer(folder: str | os.PathLike, prefix: str = DEFAULT_PREFIX, *, cache: bool = True
                         ) -> WordVectorizer:
    """Load ``<folder>/<prefix>_{data.npy,words.pkl,idx.pkl}`` once per process (cached by resolved path)."""
    folder = Path(folder).expanduser()
    key = (str(folder.resolve()), prefix)
    if cache:
        with _LOCK:
            hit = _CACHE.get(key)
        if hit is not None:
            return hit
    data_p, words_p, idx_p = vocab_files(folder, prefix)
    missing = [p.name for p in (data_p, words_p, idx_p) if not p.is_file()]
    if missing:
        raise HmuError(f"word-vector vocabulary not found in {folder} (missing {', '.join(missing)}; "
                       f"pass --glove_dir or set HMU_GLOVE)")
    from src.common.io import safe_pickle_load

    # plain data only: a pickle naming any class or function is refused before it runs (no plain pickle.load)
    words = safe_pickle_load(words_p, what="word-vector vocabulary file")
    word2idx = safe_pickle_load(idx_p, what="word-vector vocabulary file")
    try:
        vectors = np.load(data_p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user-fixable problem
        raise HmuError(f"cannot read word-vector vocabulary file {data_p} ({type(exc).__name__}: {exc})") from None
    if not isinstance(word2idx, dict) or not isinstance(words, (list, tuple)):
        raise HmuError(f"word-vector vocabulary in {folder}: {idx_p.name} must be a dict, {words_p.name} a list")
    if not all(isinstance(w, str) for w in words) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in word2idx.items()):
        raise HmuError(f"word-vector vocabulary in {folder}: {words_p.name} must hold strings and {idx_p.name} "
                       f"map strings to row numbers")
    src_file = folder / VECTORS_SOURCE_FILE
    vectors_source = src_file.read_text(encoding="utf-8").strip() if src_file.is_file() else None
    wv = WordVectorizer(vectors, word2idx, words, source=str(folder), vectors_source=vectors_source)
    log.info("loaded %d word vectors (dim %d) from %s", len(wv), wv.dim_word, folder)
    if cache:
        with _LOCK:
            _CACHE[key] = wv
    return wv


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


def save_vocabulary(folder: str | os.PathLike, vectors: np.ndarray, words: Iterable[str],
                    word2idx: dict[str, int] | None = None, prefix: str = DEFAULT_PREFIX) -> None:
    """Write a vocabulary in upstream's format (atomically); rows follow ``words`` unless ``word2idx`` is given."""
    from src.common.io import atomic_path, atomic_save_npy

    words = list(words)
    if word2idx is None:
        word2idx = {w: i for i, w in enumerate(words)}
    data_p, words_p, idx_p = vocab_files(folder, prefix)
    atomic_save_npy(data_p, np.asarray(vectors))
    for path, obj in ((words_p, words), (idx_p, dict(word2idx))):
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            pickle.dump(obj, fh)
