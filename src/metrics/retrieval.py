"""Text-motion retrieval metrics (pure numpy): R@1/2/3/5/10 and median rank, both directions, as in TMR.

A similarity matrix ``sims`` (N texts x N motions) comes in, with the ground truth on its diagonal. Ranks are 0-based;
ties with the ground truth are averaged. ``R@k = 100 * mean(rank < k)`` and ``MedR = median(rank) + 1``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from src.common.errors import HmuError

RECALL_KS = (1, 2, 3, 5, 10)


def _check_square(sims: np.ndarray) -> np.ndarray:
    sims = np.asarray(sims)
    if sims.ndim != 2 or sims.shape[0] != sims.shape[1] or sims.shape[0] == 0:
        raise HmuError(f"similarity matrix must be square and non-empty, got shape {sims.shape}")
    return sims


def gt_ranks(sims: np.ndarray, *, text_selfsim: np.ndarray | None = None, threshold: float | None = None) -> np.ndarray:
    """(N, N) similarities, query rows -> (N,) float 0-based rank of each row's ground truth, ties averaged.

    Threshold protocol: when ``text_selfsim`` (N, N) and ``threshold`` are given, any column j whose caption is close
    to the query's caption (``text_selfsim[i, j] > 2 * threshold - 1``) counts as a correct answer, so the ground
    truth score is the best such column. The query's own column always counts (upstream relies on unit embeddings
    for that; we make it explicit so a row can never lose its ground truth).
    """
    sims = _check_square(sims)
    dists = -sims  # exact negation: equality tests below see the same ties upstream sees
    gt = np.diag(dists).copy()
    if text_selfsim is not None and threshold is not None:
        selfsim = np.asarray(text_selfsim)
        if selfsim.shape != sims.shape:
            raise HmuError(f"text self-similarity shape {selfsim.shape} does not match similarities {sims.shape}")
        ok = (selfsim > 2 * threshold - 1) | np.eye(len(sims), dtype=bool)
        gt = np.where(ok, dists, np.inf).min(axis=1)
    # Position of gt in the ascending sort of the row: strictly better ones first, then the average over the tie.
    less = (dists < gt[:, None]).sum(axis=1)
    equal = (dists == gt[:, None]).sum(axis=1)
    return less + (equal - 1) / 2.0


def ranks_to_metrics(ranks: np.ndarray, *, rounding: int | None = 2) -> dict[str, float]:
    """(N,) 0-based ranks -> {'R01', 'R02', 'R03', 'R05', 'R10', 'MedR'} (percentages; MedR 1-based)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {f"R{k:02d}": 100.0 * float(np.sum(ranks < k)) / len(ranks) for k in RECALL_KS}
    out["MedR"] = float(np.median(ranks) + 1)
    if rounding is not None:
        out = {k: round(v, rounding) for k, v in out.items()}
    return out


def contrastive_metrics(sims: np.ndarray, *, text_selfsim: np.ndarray | None = None, threshold: float | None = None,
                        rounding: int | None = 2) -> dict[str, float]:
    """One direction: rows of ``sims`` are the queries."""
    return ranks_to_metrics(gt_ranks(sims, text_selfsim=text_selfsim, threshold=threshold), rounding=rounding)


def all_contrastive_metrics(sims: np.ndarray, *, emb: np.ndarray | None = None, threshold: float | None = None,
                            rounding: int | None = 2, return_ranks: bool = False):
    """Text->motion (rows of ``sims``) and motion->text (columns) metrics: ``t2m/R01`` ... ``m2t/MedR``, ``*/len``.

    ``emb`` (N, D) holds unit sentence embeddings of the captions; with ``threshold`` it enables the threshold protocol
    in both directions (caption self-similarity decides which answers count as correct).
    """
    sims = _check_square(sims)
    selfsim = None if emb is None else np.asarray(emb) @ np.asarray(emb).T
    t2m = gt_ranks(sims, text_selfsim=selfsim, threshold=threshold)
    m2t = gt_ranks(sims.T, text_selfsim=selfsim, threshold=threshold)
    mt, mm = ranks_to_metrics(t2m, rounding=rounding), ranks_to_metrics(m2t, rounding=rounding)
    out: dict[str, float] = {}
    for k in mt:
        out[f"t2m/{k}"] = mt[k]
        out[f"m2t/{k}"] = mm[k]
    out["t2m/len"] = float(sims.shape[0])
    out["m2t/len"] = float(sims.shape[1])
    return (out, t2m, m2t) if return_ranks else out


def guo_batches(n: int, *, batch_size: int = 32, seed: int = 0) -> list[np.ndarray]:
    """Guo et al.'s protocol batches over ``n`` sorted items: legacy-seeded shuffle, full batches only (rest dropped)."""
    idx = np.arange(n)
    np.random.RandomState(seed).shuffle(idx)  # same stream as upstream's np.random.seed(seed); np.random.shuffle
    return [idx[i * batch_size:(i + 1) * batch_size] for i in range(n // batch_size)]


def guo_protocol_metrics(sim_fn: Callable[[np.ndarray], np.ndarray], n: int, *, batch_size: int = 32,
                         seed: int = 0) -> dict[str, float]:
    """Average unrounded metrics over ``guo_batches``; ``sim_fn(indices)`` returns that batch's (b, b) similarities."""
    batches = guo_batches(n, batch_size=batch_size, seed=seed)
    if not batches:
        raise HmuError(f"guo protocol needs at least {batch_size} items, got {n}")
    per = [all_contrastive_metrics(sim_fn(b), rounding=None) for b in batches]
    return average_metrics(per)


def average_metrics(per_batch: Sequence[Mapping[str, float]], *, rounding: int | None = 2) -> dict[str, float]:
    """Key-wise mean of metric dicts, then rounded."""
    out = {k: float(np.mean([m[k] for m in per_batch])) for k in per_batch[0]}
    return {k: round(v, rounding) for k, v in out.items()} if rounding is not None else out
