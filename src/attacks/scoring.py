"""Scoring of the attacks: the ground-truth judge, rate summaries with intervals, and the seeded streams they draw.

Prompts are :mod:`src.data.prompts`."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


# ---------------------------------------------------------------------------------------------------- judge
class Judge(Protocol):
    """Ground truth on generated motions: which raw (T, dim_pose) motions contain the concept / an action."""

    concept: str

    def concept_flags(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        """(N,) bool: the concept is in the motion."""

    def action_flags(self, motions: Sequence[np.ndarray], actions: Sequence[str]) -> np.ndarray:
        """(N,) bool: motion i shows ``actions[i]``."""


# The synth action classifier is the judge: src.eval.leakage.LeakageProbe implements this interface.


# ---------------------------------------------------------------------------------------------------- seeds
def seed_int(seed: int, *stream: int) -> int:
    """A 63-bit integer derived from ``(seed, *stream)``: independent, reproducible streams per attack/model/repeat."""
    return int(np.random.SeedSequence([int(seed), *map(int, stream)]).generate_state(1, np.uint64)[0] >> 1)


def torch_gen(seed: int, *stream: int, device=None):
    """A ``torch.Generator`` for stream ``(seed, *stream)`` on ``device`` (CPU by default)."""
    from src.common.seed import torch_generator

    return torch_generator(seed_int(seed, *stream), device=device)


def target_device(target):
    """The device of a target's model (generators must live there), or None (CPU) for targets without one."""
    return getattr(target, "device", None)


# ---------------------------------------------------------------------------------------------------- summaries
def rate_summary(decisions: np.ndarray, *, seed: int) -> dict[str, Any]:
    """(N items, R repeats) bool decisions -> metrics.json's leakage summary.

    ``values`` per repeat, ``mean``, ``ci95`` (1.96σ/√R), ``bootstrap`` over items, ``n`` items, ``repeats``,
    ``k`` flagged, ``decisions`` N·R and ``wilson`` [low, high] over all decisions.
    """
    from src.metrics.t2m import summarize, wilson_interval

    d = np.asarray(decisions, bool)
    if d.ndim == 1:
        d = d[:, None]
    n, r = d.shape
    if n == 0:
        return {"values": [], "mean": float("nan"), "ci95": float("nan"), "bootstrap": [float("nan")] * 2,
                "bootstrap_over": "items", "n": 0, "repeats": r, "k": 0, "decisions": 0,
                "wilson": [float("nan")] * 2}
    s = summarize(d.mean(axis=0), n=n, seed=seed, per_item=d.mean(axis=1))
    k = int(d.sum())
    s.update(k=k, decisions=int(d.size), wilson=list(wilson_interval(k, int(d.size))))
    return s


def pool_restarts(summaries: Sequence[dict[str, Any]], *, seed: int) -> dict[str, Any]:
    """Rate summaries of independent attack restarts -> one summary whose spread is BETWEEN restarts.

    The generations of one learnt embedding are not independent evidence about the attack (they share the embedding),
    so ``values`` are the per-restart rates, ``ci95`` is 1.96σ/√R over them and ``bootstrap`` resamples restarts;
    ``k``/``decisions``/``wilson`` pool every generation (the within-restart interval, narrower)."""
    from src.metrics.t2m import summarize, wilson_interval

    rates = [s["k"] / s["decisions"] if s["decisions"] else float("nan") for s in summaries]
    out = summarize(rates, n=len(rates), seed=seed)
    k, d = sum(int(s["k"]) for s in summaries), sum(int(s["decisions"]) for s in summaries)
    out.update(mean=k / d if d else float("nan"), k=k, decisions=d, wilson=list(wilson_interval(k, d)),
               restarts=len(rates))
    return out


def proportion(k: int, n: int) -> dict[str, Any]:
    """``{"mean", "k", "n", "wilson"}`` of a plain proportion."""
    from src.metrics.t2m import wilson_interval

    return {"mean": k / n if n else float("nan"), "k": int(k), "n": int(n), "wilson": list(wilson_interval(k, n))}
