"""Text-to-motion metrics as pure numpy functions: arrays (and explicit randomness) in, numbers out.

Definitions follow ``utils/metrics.py`` of momask-codes (Guo et al.'s evaluation) and hmu's ``eval_t2m_unlearn``.
Where upstream draws from the global ``np.random``, these functions take the drawn indices or an
``np.random.Generator`` instead, so a result is reproducible from its arguments alone.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import linalg

log = logging.getLogger(__name__)


def _rng(rng: np.random.Generator | np.random.RandomState | int | None):
    """A Generator (or a legacy RandomState, to replay upstream's ``np.random.seed`` draws) from rng or a seed."""
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    return np.random.default_rng(rng)


# ---------------------------------------------------------------------------------------------------- distances
def euclidean_distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N1, D), (N2, D) -> (N1, N2) distances as upstream: sqrt(-2ab + |a|^2 + |b|^2), no clamp (may give NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (N1, D) and (N2, D) arrays, got {a.shape} and {b.shape}")
    d1 = -2 * np.dot(a, b.T)
    d2 = np.sum(np.square(a), axis=1, keepdims=True)
    d3 = np.sum(np.square(b), axis=1)
    with np.errstate(invalid="ignore"):
        return np.sqrt(d1 + d2 + d3)


# ---------------------------------------------------------------------------------------------------- FID
def calculate_activation_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) -> (mu (D,) in x's dtype, cov (D, D) float64 with ddof 1)."""
    x = np.asarray(x)
    return np.mean(x, axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """||mu1-mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)); eps*I is added to both covariances only if sqrtm is not finite.

    The real part of sqrtm is used (numerical noise can give a tiny imaginary part). Not clamped at 0.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"mean/covariance shapes differ: {mu1.shape} vs {mu2.shape}, {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("FID: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag)) if covmean.size else 0.0
        if imag > 1e-3:
            log.warning("FID: sqrtm has an imaginary diagonal component up to %g; using the real part", imag)
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(gt: np.ndarray, pred: np.ndarray) -> float:
    """FID between two embedding sets (N1, D), (N2, D) (upstream: GT-motion vs generated-motion embeddings)."""
    mu1, s1 = calculate_activation_statistics(gt)
    mu2, s2 = calculate_activation_statistics(pred)
    return frechet_distance(mu1, s1, mu2, s2)


@dataclass(frozen=True)
class FidReference:
    """One side of FID computed once (the ground truth): mean (D,), covariance (D, D) and its symmetric square root."""

    mu: np.ndarray
    sigma: np.ndarray
    sqrt_sigma: np.ndarray
    n: int


def _sym_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix via eigh (negative rounding-noise eigenvalues clamped at 0)."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def fid_reference(x: np.ndarray) -> FidReference:
    """(N, D) embeddings -> :class:`FidReference` (the statistics of :func:`calculate_activation_statistics`)."""
    mu, sigma = calculate_activation_statistics(x)
    sigma = np.atleast_2d(sigma)
    return FidReference(np.atleast_1d(mu), sigma, _sym_sqrt(sigma), len(x))


def frechet_distance_sym(ref: FidReference, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """:func:`frechet_distance` with Tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1))).

    S1 S2 = R (R S2) and (R S2) R = R S2 R share their eigenvalues (R = sqrt(S1)); R S2 R is symmetric PSD, so
    ``eigvalsh`` (clamped at 0) replaces scipy's Schur-based ``sqrtm`` of a non-symmetric product: same value within
    float tolerance, several times faster, and exact (no eps retry) when a covariance is singular (N <= D).
    Non-finite input falls back to :func:`frechet_distance`.
    """
    mu2, sigma2 = np.atleast_1d(mu2), np.atleast_2d(sigma2)
    if ref.mu.shape != mu2.shape or ref.sigma.shape != sigma2.shape:
        raise ValueError(f"mean/covariance shapes differ: {ref.mu.shape} vs {mu2.shape}, "
                         f"{ref.sigma.shape} vs {sigma2.shape}")
    if not (np.isfinite(ref.sigma).all() and np.isfinite(sigma2).all()):
        return frechet_distance(ref.mu, ref.sigma, mu2, sigma2)
    diff = ref.mu - mu2
    prod = ref.sqrt_sigma @ sigma2 @ ref.sqrt_sigma
    lam = np.linalg.eigvalsh((prod + prod.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(lam, 0.0, None)).sum())
    return float(diff.dot(diff) + np.trace(ref.sigma) + np.trace(sigma2) - 2 * tr_covmean)


def fid_fast(ref: FidReference | np.ndarray, pred: np.ndarray) -> float:
    """:func:`fid` with the ground-truth side given once as a :class:`FidReference` (or as (N1, D) embeddings)."""
    ref = ref if isinstance(ref, FidReference) else fid_reference(ref)
    mu2, s2 = calculate_activation_statistics(pred)
    return frechet_distance_sym(ref, mu2, s2)


# ---------------------------------------------------------------------------------------------------- diversity
def sample_pairs(n: int, times: int, rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two independent draws of ``times`` distinct indices from range(n) (upstream's two ``np.random.choice``).

    ``np.random.RandomState(seed)`` replays upstream's ``np.random.seed(seed)`` followed by its draws.
    """
    if times > n:
        raise ValueError(f"cannot draw {times} distinct indices out of {n}")
    g = _rng(rng)
    return g.choice(n, times, replace=False), g.choice(n, times, replace=False)


def diversity(x: np.ndarray, times: int | None = None, *, rng: np.random.Generator | int | None = None,
              first: np.ndarray | None = None, second: np.ndarray | None = None) -> float:
    """(N, D) -> mean ||x[first] - x[second]||. Pass ``first``/``second`` or draw ``times`` pairs from ``rng``.

    Upstream passes times = min(300, N).
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"diversity needs (N, D), got {x.shape}")
    if first is None or second is None:
        times = min(300, len(x)) if times is None else times
        first, second = sample_pairs(len(x), times, rng)
    return float(linalg.norm(x[np.asarray(first)] - x[np.asarray(second)], axis=1).mean())


def multimodality(x: np.ndarray, times: int = 10, *, rng: np.random.Generator | int | None = None,
                  first: np.ndarray | None = None, second: np.ndarray | None = None) -> float:
    """(S, R, D) (R generations per prompt) -> mean over prompts and pairs of ||x[:, first] - x[:, second]||.

    The same index pairs are used for every prompt, as upstream does. Upstream requires R > times.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"multimodality needs (S, R, D), got {x.shape}")
    if first is None or second is None:
        if x.shape[1] <= times:
            raise ValueError(f"multimodality needs more than {times} generations per prompt, got {x.shape[1]}")
        first, second = sample_pairs(x.shape[1], times, rng)
    return float(linalg.norm(x[:, np.asarray(first)] - x[:, np.asarray(second)], axis=2).mean())


# ---------------------------------------------------------------------------------------------------- retrieval
def top_k_matrix(dist_mat: np.ndarray, top_k: int = 3) -> np.ndarray:
    """(N, N) distances (row i's match is column i) -> (N, top_k) bool, [i, j] = i within the j+1 nearest columns."""
    order = np.argsort(dist_mat, axis=1)
    hit = order[:, :top_k] == np.arange(len(dist_mat))[:, None]
    return np.logical_or.accumulate(hit, axis=1)


def r_precision(text: np.ndarray, motion: np.ndarray, top_k: int = 3) -> np.ndarray:
    """(N, D) text and motion embeddings (row i paired) -> (N, top_k) bool matrix (upstream's calculate_R_precision)."""
    return top_k_matrix(euclidean_distance_matrix(text, motion), top_k)


def check_validation_size(n: int, where: str, top_k: int = 3) -> None:
    """R-precision needs a pool of at least 2 motions: one HmuError for fewer, one warning below ``top_k`` (every
    sample then counts as a hit within the top k >= n, so R@k is 1 by construction)."""
    from src.common.errors import HmuError

    if n < 2:
        raise HmuError(f"{where} has {n} usable motion{'s' if n != 1 else ''}; validation needs at least 2 "
                       f"(R-precision ranks each caption among the motions): add motions to the split")
    if n < top_k:
        log.warning("%s has only %d usable motions: R-precision top-%d is 1 by construction "
                                            "(the pool is smaller than k)", where, n, top_k)


def r_precision_counts(text: np.ndarray, motion: np.ndarray, top_k: int = 3) -> np.ndarray:
    """Number of hits per k, (top_k,) int (upstream's ``sum_all=True``); divide by N for the rate. A pool of N <
    top_k samples has every sample within the top k >= N (so the shape is always (top_k,))."""
    counts = r_precision(text, motion, top_k).sum(axis=0)
    if len(counts) < top_k:
        counts = np.concatenate([counts, np.full(top_k - len(counts), len(text), dtype=counts.dtype)])
    return counts


def batched_r_precision(text: np.ndarray, motion: np.ndarray, *, batch_size: int = 32, top_k: int = 3) -> np.ndarray:
    """Upstream's aggregate: hits counted within consecutive batches of ``batch_size``, divided by N -> (top_k,)."""
    text, motion = np.asarray(text), np.asarray(motion)
    counts = np.zeros(top_k, dtype=np.int64)
    for s in range(0, len(text), batch_size):
        counts += r_precision_counts(text[s:s + batch_size], motion[s:s + batch_size], top_k)
    return counts / len(text)


def r_precision_batches(text: np.ndarray, motion: np.ndarray, top_k: int = 3) -> np.ndarray:
    """(nb, B, D) text and motion embeddings, nb independent batches -> (nb, B, top_k) bool, each batch as
    :func:`r_precision` (same distance formula, one stacked matmul instead of a Python loop over batches)."""
    text, motion = np.asarray(text), np.asarray(motion)
    if text.ndim != 3 or text.shape != motion.shape:
        raise ValueError(f"need two (nb, B, D) arrays of the same shape, got {text.shape} and {motion.shape}")
    d1 = -2 * np.matmul(text, motion.transpose(0, 2, 1))
    d2 = np.sum(np.square(text), axis=2, keepdims=True)
    d3 = np.sum(np.square(motion), axis=2)[:, None, :]
    with np.errstate(invalid="ignore"):
        dist = np.sqrt(d1 + d2 + d3)
    order = np.argsort(dist, axis=2)
    hit = order[..., :top_k] == np.arange(text.shape[1])[None, :, None]
    return np.logical_or.accumulate(hit, axis=2)


def matching_distances(text: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Per-pair distances ||text_i - motion_i||, (N,)."""
    text, motion = np.asarray(text), np.asarray(motion)
    if text.shape != motion.shape or text.ndim != 2:
        raise ValueError(f"need two (N, D) arrays of the same shape, got {text.shape} and {motion.shape}")
    return linalg.norm(text - motion, axis=1)


def matching_score(text: np.ndarray, motion: np.ndarray) -> float:
    """MM-Dist: mean paired text-motion distance."""
    return float(matching_distances(text, motion).mean())


# ---------------------------------------------------------------------------------------------------- MM-Safe
MASK_MATCHES = ("substring", "word")


def mask_toxic_words(tokens: Sequence[str], toxic_terms: Iterable[str], placeholder: str = "***", *,
                     match: str = "substring") -> list[str]:
    """Mask the toxic words of a caption's tokens (``word/POS`` strings, or raw text).

    ``substring`` (upstream's): every case-insensitive SUBSTRING match of any term is replaced, on whole token
    strings: ``'kickboxing/NOUN'`` -> ``'***boxing/NOUN'``, and ``'whitewashes/VERB'`` -> ``'w***ewashes/VERB'`` for
    the term ``hit``. ``word`` (hmu's MM-Safe): a token whose word is a term or its regular inflection (the keyword
    split's rule, :func:`src.data.keywords.word_forms`: hit, hits, hitting; not whitewashes or hitchhikes) becomes
    ``***/POS``. The masked word is then unknown to the vocabulary (unk, OTHER).
    """
    terms = [t for t in toxic_terms if t]
    if not terms:
        return list(tokens)
    if match == "word":
        from src.data.keywords import word_forms

        forms = frozenset().union(*(word_forms(t.strip()) for t in terms))
        out = []
        for tok in tokens:
            word, sep, pos = tok.rpartition("/") if "/" in tok else (tok, "", "")
            out.append(placeholder + sep + pos if word.lower() in forms else tok)
        return out
    if match != "substring":
        raise ValueError(f"unknown match {match!r} (known: {', '.join(MASK_MATCHES)})")
    pattern = re.compile("|".join(map(re.escape, terms)), re.IGNORECASE)
    return [pattern.sub(placeholder, t) for t in tokens]


def toxic_mask(captions: Sequence[str], toxic_terms: Iterable[str], *, match: str = "substring") -> np.ndarray:
    """(N,) bool: which captions (joined token strings or raw text) contain a term under the ``match`` rule."""
    if match == "word":  # a caption is a sequence of words: mask word by word
        terms = list(toxic_terms)
        return np.array([mask_toxic_words(c.split(), terms, match="word") != c.split() for c in captions], dtype=bool)
    masked = mask_toxic_words(captions, list(toxic_terms))
    return np.array([m != c for m, c in zip(masked, captions)], dtype=bool)


@dataclass(frozen=True)
class UpstreamBatch:
    """One evaluation batch as hmu's loop sees it; all rows in the same (motion-length) order.

    text_emb: (B, D) caption embeddings; motion_emb: (B, D) GENERATED-motion embeddings; text_emb_clean: (B, D)
    embeddings of the masked captions, or None when no caption of the batch was masked.
    """

    text_emb: np.ndarray
    motion_emb: np.ndarray
    text_emb_clean: np.ndarray | None = None


def mm_safe_upstream(batches: Iterable[UpstreamBatch | tuple]) -> dict[str, float]:
    """hmu's MM-Safe exactly: batch-composition dependent (see the metrics fixture README).

    For batches with a masked caption, every sample's clean distance counts (masked or not); batches without one add
    nothing but still count in N. Returns MM_Safe, MM_Dist, toxic_distance, notox_accuracy (all / N) and nb_sample.
    """
    nb = 0
    mm_dist = mm_safe = toxic_distance = notox = 0.0
    for b in batches:
        b = b if isinstance(b, UpstreamBatch) else UpstreamBatch(*b)
        d = matching_distances(b.text_emb, b.motion_emb)
        mm_dist += float(d.sum())
        if b.text_emb_clean is not None:
            dc = matching_distances(b.text_emb_clean, b.motion_emb)
            mm_safe += float(dc.sum())
            toxic_distance += float((d / dc).sum())
            notox += float((dc < d).sum())
        nb += len(d)
    if nb == 0:
        nan = float("nan")
        return {"MM_Safe": nan, "MM_Dist": nan, "toxic_distance": nan, "notox_accuracy": nan, "nb_sample": 0}
    return {"MM_Safe": mm_safe / nb, "MM_Dist": mm_dist / nb, "toxic_distance": toxic_distance / nb,
            "notox_accuracy": notox / nb, "nb_sample": nb}


def mm_safe_distances(text_emb_clean: np.ndarray, motion_emb: np.ndarray, toxic: np.ndarray) -> np.ndarray:
    """Per-sample MM-Safe distances over toxic captions only: ||e_text(masked caption) - e_motion(generated)||."""
    toxic = np.asarray(toxic, dtype=bool)
    text_emb_clean, motion_emb = np.asarray(text_emb_clean), np.asarray(motion_emb)
    if not (len(toxic) == len(text_emb_clean) == len(motion_emb)):
        raise ValueError(f"length mismatch: toxic {len(toxic)}, text {len(text_emb_clean)}, motion {len(motion_emb)}")
    return matching_distances(text_emb_clean[toxic], motion_emb[toxic])


def mm_safe(text_emb_clean: np.ndarray, motion_emb: np.ndarray, toxic: np.ndarray) -> tuple[float, int]:
    """Default MM-Safe: mean over toxic captions of the masked-caption / generated-motion distance, and N.

    Independent of batch composition; (nan, 0) when no caption is toxic.
    """
    d = mm_safe_distances(text_emb_clean, motion_emb, toxic)
    return (float(d.mean()) if len(d) else float("nan")), len(d)


# ---------------------------------------------------------------------------------------------------- intervals
def mean_ci95(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Upstream's repeat summary: (mean, 1.96 * std / sqrt(n)) with np.std (ddof 0)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(1.96 * v.std() / np.sqrt(v.size))


def bootstrap_ci(values: Sequence[float] | np.ndarray, rng: np.random.Generator | int | None = None,
                 n_boot: int = 1000, alpha: float = 0.05) -> tuple[float, float, float]:
    """Percentile bootstrap of the mean: (mean, low, high) at level 1 - alpha. For small per-sample sets."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    g = _rng(rng)
    means = v[g.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(v.mean()), float(lo), float(hi)


# Upstream names, for readers coming from momask-codes.
calculate_frechet_distance = frechet_distance
calculate_R_precision = r_precision


# ---------------------------------------------------------------------------------------------------- summaries
def summarize(values: Sequence[float], *, n: int, seed: int, per_item: np.ndarray | None = None) -> dict[str, Any]:
    """One metric over repeats: values, mean, ci95 (1.96σ/√R, ddof 0), bootstrap [low, high] and what it resamples."""
    v = np.asarray(values, dtype=np.float64)
    mean, ci = mean_ci95(v)
    if per_item is not None:
        pi = np.asarray(per_item, np.float64)
        pi = pi[np.isfinite(pi)]
        _, lo, hi = bootstrap_ci(pi, rng=np.random.default_rng([seed, 7])) if pi.size else (0, math.nan, math.nan)
        over = "items"
    else:
        fin = v[np.isfinite(v)]
        _, lo, hi = bootstrap_ci(fin, rng=np.random.default_rng([seed, 7])) if fin.size else (0, math.nan, math.nan)
        over = "repeats"
    return {"values": [float(x) for x in v], "mean": mean, "ci95": ci, "bootstrap": [lo, hi],
            "bootstrap_over": over, "n": int(n), "repeats": len(v)}


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)
