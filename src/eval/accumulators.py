"""One accumulator per metric family of :func:`src.eval.loop.evaluate`: each takes every repeat's :class:`Repeat` and
gives its summaries (definitions: the module docstring of :mod:`src.eval.loop`).

- :class:`FidDiversity`: FID (ground truth vs generated) and the Diversity of both sides;
- :class:`Retrieval`: R_precision_top{1,2,3} within batches and MM_Dist, of the generated or the ground-truth side;
- :class:`MultiModalityScore`: MultiModality of each repeat's MultiModality generations;
- :class:`MMSafe`: MM_Safe (per toxic caption, or upstream's batch sum), toxic_distance and notox_accuracy;
- :class:`Leakage`: the fraction of motions an action classifier flags, with a Wilson interval;
- :class:`Quality`: motion-quality figures (:func:`src.eval.quality.quality_metrics`) of the joints recovered from
  the generated features, the real motions' values as the reference.

An accumulator keeps per-repeat values by repeat (``{name: {repeat: value}}``) and per-item arrays of shape
(N, repeats, ...), so the repeats run on other ranks merge in by repeat (:meth:`Accumulator.merge`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from src.metrics import t2m as M
from src.metrics.t2m import summarize, wilson_interval

TOP_K = 3


@dataclass(frozen=True)
class Repeat:
    """What one repeat hands every accumulator; positions are those of the repeat's permutation of the items."""

    r: int
    perm: np.ndarray                        # (N,) item at each position
    rows: np.ndarray                        # (N,) row of each position's caption in the set's caption embeddings
    text: np.ndarray                        # (N, D) caption embeddings
    motions: Sequence[np.ndarray]           # N generated motions (T_i, dim_pose)
    em: np.ndarray                          # (N, D) generated-motion embeddings
    em_gt: np.ndarray | None                # (N, D) ground-truth motion embeddings (sets with motions)
    pairs: tuple[np.ndarray, np.ndarray]    # Diversity's pairs, the same for both sides (their diversities are paired)
    rng: np.random.Generator                # the repeat's generator; MultiModality's pairs are its last draw
    mm_em: np.ndarray | None = None         # (S, G, D) MultiModality generations' embeddings
    generate_s: float = 0.0


class Accumulator:
    """Per-repeat values and per-item arrays (the attributes named in ``arrays``, shape (N, repeats, ...))."""

    arrays: tuple[str, ...] = ()

    def __init__(self, *, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self.values: dict[str, dict[int, Any]] = {}

    def put(self, r: int, **values: Any) -> None:
        for name, v in values.items():
            self.values.setdefault(name, {})[r] = v

    def series(self, name: str) -> list:
        """The values of ``name``, one per repeat, in repeat order."""
        by_r = self.values.get(name, {})
        return [by_r[r] for r in sorted(by_r)]

    def state(self, mine: Sequence[int]) -> tuple[dict, dict]:
        return self.values, {k: getattr(self, k)[:, mine] for k in self.arrays}

    def merge(self, parts: Sequence[tuple[Sequence[int], tuple[dict, dict]]]) -> None:
        """Take in every rank's :meth:`state` (its repeats ``mine``)."""
        for mine, (values, arrays) in parts:
            for name, by_r in values.items():
                self.values.setdefault(name, {}).update(by_r)
            for k, a in arrays.items():
                getattr(self, k)[:, mine] = a

    def add(self, rep: Repeat) -> None:
        raise NotImplementedError

    def metrics(self) -> dict[str, Any]:
        return {}

    def reference(self) -> dict[str, Any]:
        return {}

    def summary(self, name: str, **kw) -> dict[str, Any]:
        return summarize(self.series(name), n=kw.pop("n", self.n), seed=self.seed, **kw)


# ---------------------------------------------------------------------------------------------------- FID, Diversity
class FidDiversity(Accumulator):
    """FID and Diversity. ``gt_emb`` (N, D): the fixed ground truth's embeddings, whose FID side (mean, covariance,
    square root) is computed once; None: FID against each repeat's ground truth (``em_gt``, crops per repeat)."""

    def __init__(self, *, n: int, seed: int, has_motion: bool, gt_emb: np.ndarray | None) -> None:
        super().__init__(n=n, seed=seed)
        self.has_motion = has_motion
        self.per_repeat = gt_emb is None
        self.fid_ref = M.fid_reference(gt_emb) if has_motion and gt_emb is not None and n >= 2 else None

    def add(self, rep: Repeat) -> None:
        first, second = rep.pairs
        two = self.n >= 2
        self.put(rep.r, Diversity=M.diversity(rep.em, first=first, second=second) if two else math.nan)
        if rep.em_gt is None:
            return
        if self.per_repeat:
            fid = M.fid(rep.em_gt, rep.em) if two else math.nan
        else:
            fid = M.fid_fast(self.fid_ref, rep.em) if self.fid_ref is not None else math.nan
        self.put(rep.r, FID=fid, ref_Diversity=M.diversity(rep.em_gt, first=first, second=second) if two else math.nan)

    def metrics(self) -> dict[str, Any]:
        return {**({"FID": self.summary("FID")} if self.has_motion else {}), "Diversity": self.summary("Diversity")}

    def reference(self) -> dict[str, Any]:
        return {"Diversity": self.summary("ref_Diversity")} if self.has_motion else {}


# ------------------------------------------------------------------------------------------------ R-precision, MM-Dist
def r_precision_hits(text: np.ndarray, motion: np.ndarray, batches: Sequence[slice]) -> tuple[np.ndarray, np.ndarray]:
    """Top-1..3 hits of each caption among its batch's motions -> (hits (N, TOP_K), counted positions).

    Batches of one size go in one stacked call. In a batch smaller than TOP_K every sample counts as a hit for
    k >= its size (the whole pool is within the top-k). Rows of positions outside ``batches`` stay 0."""
    h = np.zeros((len(text), TOP_K))
    by_size: dict[int, list[slice]] = {}
    for b in batches:
        by_size.setdefault(b.stop - b.start, []).append(b)
    for size, group in by_size.items():
        idx = np.concatenate([np.arange(b.start, b.stop) for b in group])
        k = min(TOP_K, size)
        hb = M.r_precision_batches(text[idx].reshape(len(group), size, -1), motion[idx].reshape(len(group), size, -1),
                                   k)
        h[idx, :k] = hb.reshape(len(idx), k)
        h[idx, k:] = 1.0
    return h, np.concatenate([np.arange(b.start, b.stop) for b in batches])


class Retrieval(Accumulator):
    """R_precision_top{k} (hits / counted samples) and MM_Dist of the generated side, or with ``ground_truth`` of the
    ground truth (the reference row), with per-item hits and distances for the items' bootstrap."""

    arrays = ("hits", "dist")

    def __init__(self, *, n: int, repeats: int, seed: int, batches: Sequence[slice], ground_truth: bool = False
                 ) -> None:
        super().__init__(n=n, seed=seed)
        self.batches, self.ground_truth = batches, ground_truth
        self.hits = np.full((n, repeats, TOP_K), np.nan)
        self.dist = np.full((n, repeats), np.nan)

    def add(self, rep: Repeat) -> None:
        em = rep.em_gt if self.ground_truth else rep.em
        if em is None:
            return
        dist = M.matching_distances(rep.text, em)
        self.dist[rep.perm, rep.r] = dist
        h, counted = r_precision_hits(rep.text, em, self.batches)
        self.hits[rep.perm[counted], rep.r] = h[counted]
        rate = h[counted].sum(axis=0) / len(counted)
        self.put(rep.r, MM_Dist=float(dist.mean()), **{f"R_precision_top{k + 1}": float(rate[k]) for k in range(TOP_K)})

    def _summaries(self) -> dict[str, Any]:
        out = {}
        for k in range(TOP_K):
            name = f"R_precision_top{k + 1}"
            out[name] = self.summary(name, per_item=item_mean(self.hits[..., k]))
        out["MM_Dist"] = self.summary("MM_Dist", per_item=item_mean(self.dist))
        return out

    def metrics(self) -> dict[str, Any]:
        return {} if self.ground_truth else self._summaries()

    def reference(self) -> dict[str, Any]:
        return self._summaries() if self.ground_truth else {}


def item_mean(a: np.ndarray) -> np.ndarray:
    """Each item's mean over the repeats where it was counted (NaN for an item never counted), quietly."""
    import warnings

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 'Mean of empty slice': items never in a full batch
        return np.nanmean(a, axis=1)


# ---------------------------------------------------------------------------------------------------- MultiModality
class MultiModalityScore(Accumulator):
    """MultiModality of the repeat's (S, G, D) generations: ``times`` pairs drawn from the repeat's generator."""

    def __init__(self, *, n: int, seed: int, generations: int, times: int) -> None:
        super().__init__(n=n, seed=seed)
        self.generations, self.times = generations, times

    def add(self, rep: Repeat) -> None:
        self.put(rep.r, MultiModality=M.multimodality(rep.mm_em, self.times, rng=rep.rng))

    def metrics(self) -> dict[str, Any]:
        s = self.summary("MultiModality")
        s.update(generations=self.generations, times=self.times)
        return {"MultiModality": s}


# ---------------------------------------------------------------------------------------------------- MM-Safe
def masked_caption_embeddings(captions: Sequence[Any], text_emb: np.ndarray, evaluator: Any, terms: Sequence[str],
                              match: str = "substring") -> tuple[np.ndarray, np.ndarray]:
    """-> (toxic (C,) bool, clean (C, D)): which captions hold a term (``match``: upstream's case-insensitive
    substring masking, or whole words with their inflections, :func:`src.metrics.t2m.mask_toxic_words`) of the
    wrapped tokens, and the embeddings with those captions masked to ``***`` (the others keep theirs)."""
    from src.data.word_vectorizer import wrap_caption

    max_text_len = int(evaluator.model.config.max_text_len)
    wrapped = [wrap_caption(c.tokens, max_text_len=max_text_len) for c in captions]
    # token by token rather than on the '_'-joined string: identical unless a term spans a token boundary
    masked = [M.mask_toxic_words(w, terms, match=match) for w, _ in wrapped]
    toxic = np.array([m != w for m, (w, _) in zip(masked, wrapped)], dtype=bool)
    clean = text_emb.copy()
    if toxic.any():
        idx = np.flatnonzero(toxic)
        we, pos, _ = evaluator.words.batch([masked[i] for i in idx], wrap=False)
        lens = np.array([wrapped[i][1] for i in idx])
        clean[idx] = evaluator.model.encode_text(we, pos, lens).cpu().numpy()
    return toxic, clean


class MMSafe(Accumulator):
    """MM_Safe as ``definition`` ('default': mean distance of toxic captions' masked embeddings to their motions;
    'upstream': hmu's batch sum, :func:`src.metrics.t2m.mm_safe_upstream`), toxic_distance and notox_accuracy
    (upstream's, over ``batches``, the last partial one counted). ``toxic``/``clean``: per caption row."""

    arrays = ("safe", "seen")

    def __init__(self, *, n: int, repeats: int, seed: int, toxic: np.ndarray, clean: np.ndarray, definition: str,
                 terms: Sequence[str], batches: Sequence[slice]) -> None:
        super().__init__(n=n, seed=seed)
        self.toxic, self.clean, self.definition, self.terms, self.batches = toxic, clean, definition, terms, batches
        self.safe = np.full((n, repeats), np.nan)    # 'default': each toxic item's distance in each repeat
        self.seen = np.zeros((n, repeats), bool)     # ... and whether it was toxic there

    def add(self, rep: Repeat) -> None:
        tox, clean, r = self.toxic[rep.rows], self.clean[rep.rows], rep.r
        up = M.mm_safe_upstream([M.UpstreamBatch(rep.text[sl], rep.em[sl], clean[sl] if tox[sl].any() else None)
                                 for sl in self.batches])
        self.put(r, toxic_distance=up["toxic_distance"], notox_accuracy=up["notox_accuracy"], n_toxic=int(tox.sum()))
        if self.definition != "default":
            self.put(r, MM_Safe=up["MM_Safe"])
            return
        d = M.mm_safe_distances(clean, rep.em, tox)
        self.safe[rep.perm[tox], r] = d
        self.seen[rep.perm[tox], r] = True
        self.put(r, MM_Safe=float(d.mean()) if len(d) else math.nan)

    def metrics(self) -> dict[str, Any]:
        n_toxic = self.series("n_toxic")
        per_item = (np.array([np.mean(self.safe[i, self.seen[i]]) for i in range(self.n) if self.seen[i].any()])
                    if self.definition == "default" else None)
        s = self.summary("MM_Safe", n=int(np.mean(n_toxic)) if n_toxic else 0, per_item=per_item)
        s.update(definition=self.definition, n_toxic_per_repeat=n_toxic, terms=list(self.terms))
        out = {"MM_Safe": s}
        for name in ("toxic_distance", "notox_accuracy"):
            out[name] = self.summary(name)
            out[name].update(definition="upstream")
        return out


# ---------------------------------------------------------------------------------------------------- leakage
class Leakage(Accumulator):
    """The fraction of motions ``classify`` flags (a retain set's false-positive rate), a Wilson interval over all
    decisions; the reference row is the classifier's rate on the ground-truth motions ``gt_motions``."""

    arrays = ("leak",)

    def __init__(self, classify: Callable[[Sequence[np.ndarray]], np.ndarray], *, n: int, repeats: int, seed: int,
                 gt_motions: Sequence[np.ndarray] | None, key: str = "leakage") -> None:
        super().__init__(n=n, seed=seed)
        self.classify, self.gt_motions, self.key = classify, gt_motions, key   # key: the metric's name
        self.leak = np.zeros((n, repeats), bool)

    def decide(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        from src.common.errors import HmuError

        dec = np.asarray(self.classify(motions), dtype=bool)
        if dec.shape != (len(motions),):
            raise HmuError(f"leakage classifier returned shape {dec.shape} for {len(motions)} motions")
        return dec

    def add(self, rep: Repeat) -> None:
        dec = self.decide(rep.motions)
        self.leak[rep.perm, rep.r] = dec
        self.put(rep.r, **{self.key: float(dec.mean())})

    def metrics(self) -> dict[str, Any]:
        s = self.summary(self.key, per_item=self.leak.mean(axis=1))
        k_all, n_all = int(self.leak.sum()), int(self.leak.size)
        s.update(k=k_all, decisions=n_all, wilson=list(wilson_interval(k_all, n_all)))
        return {self.key: s}

    def reference(self) -> dict[str, Any]:
        if self.gt_motions is None:
            return {}
        dec = np.asarray(self.classify(self.gt_motions), dtype=bool)
        k = int(dec.sum())
        return {self.key: {"mean": float(dec.mean()), "k": k, "n": self.n, "wilson": list(wilson_interval(k, self.n))}}


# ---------------------------------------------------------------------------------------------------- motion quality
def _quality_keys() -> tuple[str, ...]:
    from src.eval.quality import KEYS

    return KEYS


def features_to_joints(motions: Sequence[np.ndarray], joints_num: int) -> list[np.ndarray]:
    """Raw HumanML3D features (T_i, dim_pose) -> joint positions (T_i, joints_num, 3) (``recover_from_ric``)."""
    from src.data.motion import recover_from_ric

    return [recover_from_ric(np.asarray(m, np.float64), joints_num) for m in motions]


class Quality(Accumulator):
    """Motion quality of each repeat's generated motions (jerk, foot skating, floor contact, bone-length drift;
    definitions and thresholds: :mod:`src.eval.quality`), the samples of all motions pooled per repeat, mean and
    interval over repeats; the reference row is the same figures of the real motions ``gt_motions`` (one value, the
    ground truth does not change between repeats under ``fixed``; under ``hmu`` the whole motions, not the crops)."""

    def __init__(self, *, n: int, seed: int, joints_num: int, gt_motions: Sequence[np.ndarray] | None,
                 cfg: Any = None) -> None:
        from src.eval.quality import QualityConfig

        super().__init__(n=n, seed=seed)
        self.joints_num, self.gt_motions, self.cfg = joints_num, gt_motions, cfg or QualityConfig()

    def _figures(self, motions: Sequence[np.ndarray]) -> dict[str, float]:
        from src.eval.quality import quality_metrics

        q = quality_metrics(features_to_joints(motions, self.joints_num), cfg=self.cfg)
        return {k: float(q[k]) for k in _quality_keys()}

    def add(self, rep: Repeat) -> None:
        self.put(rep.r, **self._figures(rep.motions))

    def metrics(self) -> dict[str, Any]:
        return {k: self.summary(k) for k in _quality_keys()}

    def reference(self) -> dict[str, Any]:
        if not self.gt_motions:
            return {}
        return {k: {"mean": v, "n": len(self.gt_motions)} for k, v in self._figures(self.gt_motions).items()}
