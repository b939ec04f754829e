"""NCS (the paper's retrieval metric for forgetting, upstream Mamiglia/hmu ``src/eval/ncs_compute.py``).

For each generated forget motion, TMR retrieves texts in order of similarity; the motion's *rank* is the 1-based
position of the first retrieved caption that holds one of the concept's keywords (``len(list) + 1`` when none of
the retrieved captions does). Upstream then, per repeat, takes each motion's (``name``'s) minimum rank over its
records, and reports

- ``ncs@k`` (k = 1, 2, 3, 5, 10): the share of motions whose rank is <= k (lower = better forgetting),
- ``mean_rank`` and ``median_rank``,

each averaged over repeats with ``conf/<metric>`` = 1.96 * std(ddof=1) / sqrt(repeats) (NaN for one repeat), and
``min_*``: the same figures from each motion's minimum rank over all repeats (upstream's "Min NCS"), plus
``forget_size`` (motions in the last repeat, as upstream logs it).

Keyword matching is upstream's: a plain, case-sensitive substring test ``kw in caption``. Pure functions, arrays in
and a dict out; no model is loaded here.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

KS = (1, 2, 3, 5, 10)


def keyword_hits(captions: Sequence[str], keywords: Iterable[str]) -> np.ndarray:
    """(n,) bool: caption i contains any keyword as a substring (case-sensitive, as upstream)."""
    kws = list(keywords)
    return np.array([any(kw in c for kw in kws) for c in captions], dtype=bool)


def first_hit_rank(hits: np.ndarray) -> np.ndarray:
    """(M, L) bool, retrieved lists in rank order -> (M,) int: 1-based position of the first True, L + 1 if none."""
    hits = np.asarray(hits, dtype=bool)
    if hits.ndim != 2:
        raise ValueError(f"hits must be (motions, retrieved), got shape {hits.shape}")
    any_hit = hits.any(axis=1)
    return np.where(any_hit, hits.argmax(axis=1) + 1, hits.shape[1] + 1).astype(np.int64)


def first_keyword_rank(sims: np.ndarray, is_keyword: np.ndarray, *, top: int | None = None) -> np.ndarray:
    """Ranks from a similarity matrix: (M, T) motion-to-text similarities (higher = closer), (T,) bool keyword flags
    of the texts -> (M,) int 1-based rank of the best-scoring keyword text. With ``top`` only the first ``top``
    retrieved texts count (upstream stores a fixed-length retrieval list): a rank beyond it becomes ``top + 1``.
    Ties keep the texts' order (stable sort)."""
    sims = np.asarray(sims, dtype=np.float64)
    is_keyword = np.asarray(is_keyword, dtype=bool)
    if sims.ndim != 2 or is_keyword.shape != (sims.shape[1],):
        raise ValueError(f"sims (M, T) and is_keyword (T,) needed, got {sims.shape} and {is_keyword.shape}")
    order = np.argsort(-sims, axis=1, kind="stable")
    if top is not None:
        order = order[:, :int(top)]
    return first_hit_rank(is_keyword[order])


def _ci(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return float("nan")
    return float(1.96 * v.std(ddof=1) / np.sqrt(v.size))


def _figures(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    out = {f"ncs@{k}": float((ranks <= k).mean()) for k in ks}
    out["mean_rank"] = float(np.mean(ranks))
    out["median_rank"] = float(np.median(ranks))
    return out


def _min_per_name(ranks: np.ndarray, names: np.ndarray) -> np.ndarray:
    uniq, inv = np.unique(names, return_inverse=True)
    best = np.full(len(uniq), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, inv, ranks)
    return best


def ncs_summary(ranks: Sequence[int] | np.ndarray, names: Sequence | np.ndarray | None = None,
                repeats: Sequence | np.ndarray | None = None, *, ks: Sequence[int] = KS) -> dict[str, float]:
    """Upstream's NCS figures from one rank per record. ``names`` identifies the forget motion of each record (default:
    every record its own motion), ``repeats`` its repeat (default: one repeat)."""
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.ndim != 1 or ranks.size == 0:
        raise ValueError("ranks must be a non-empty 1-D array")
    if (ranks < 1).any():
        raise ValueError("ranks are 1-based")
    names = np.arange(ranks.size) if names is None else np.asarray(names)
    repeats = np.zeros(ranks.size, dtype=np.int64) if repeats is None else np.asarray(repeats)
    if names.shape != ranks.shape or repeats.shape != ranks.shape:
        raise ValueError("ranks, names and repeats must have the same length")
    per_repeat: list[dict[str, float]] = []
    size = 0
    for r in dict.fromkeys(repeats.tolist()):  # in order of first appearance, as pandas' unique()
        sel = repeats == r
        best = _min_per_name(ranks[sel], names[sel])
        size = len(best)
        per_repeat.append(_figures(best, ks))
    out: dict[str, float] = {"forget_size": float(size), "repeats": float(len(per_repeat))}
    for key in per_repeat[0]:
        vals = [f[key] for f in per_repeat]
        out[key] = float(np.mean(vals))
        out[f"conf/{key}"] = _ci(vals)
    for key, val in _figures(_min_per_name(ranks, names), ks).items():
        out[f"min_{key}"] = val
    return out


def retrieval_ranks(retrieved: Sequence[Sequence[str]], keywords: Iterable[str]) -> np.ndarray:
    """Upstream's input form: for each record, its retrieved captions in rank order -> (n,) 1-based rank of the first
    caption holding a keyword, ``len(list) + 1`` when none does."""
    kws = list(keywords)
    out = []
    for captions in retrieved:
        hits = keyword_hits(captions, kws)
        out.append(int(hits.argmax()) + 1 if hits.any() else len(captions) + 1)
    return np.asarray(out, dtype=np.int64)


def ncs_from_retrievals(retrieved: Sequence[Sequence[str]], keywords: Iterable[str],
                        names: Sequence | None = None, repeats: Sequence | None = None, *,
                        ks: Sequence[int] = KS) -> dict[str, float]:
    """:func:`ncs_summary` of :func:`retrieval_ranks` (upstream's ``ncs_compute.py`` on its results records)."""
    return ncs_summary(retrieval_ranks(retrieved, keywords), names, repeats, ks=ks)
