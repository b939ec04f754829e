"""The one evaluation loop: a generator, an evaluation set and the T2M evaluator in, every metric with intervals out.

Every model and every unlearning method goes through :func:`evaluate`; forget, retain and prompt-only sets alike.

Generation interface
    ``generate(captions: list[str], lengths: list[int], *, generator: torch.Generator) -> list[np.ndarray]``: one RAW
    (un-normalised) feature array (T_i, dim_pose) per caption. Lengths are in frames. The loop calls it in chunks of
    ``gen_batch_size`` with a ``torch.Generator`` seeded from ``(seed, repeat)``. An object with such a ``generate``
    method (src.gen.generate.MotionGenerator) is accepted as well.

Evaluation sets are :mod:`src.eval.sets` (a split's motions, or prompts only); the evaluator is
:class:`src.eval.t2m_evaluator.T2MEvaluator`; the summaries are :func:`src.eval.metrics.summarize` and
:func:`src.eval.metrics.wilson_interval`.

One repeat ``r``
    The set's protocol (:mod:`src.eval.sets`) decides the draws. ``fixed``: ``rng = np.random.default_rng([seed,
    r])`` draws one caption per item, then a permutation of the items; lengths and ground truth are the items'.
    ``hmu`` (upstream's): :func:`src.eval.sets.hmu_draws` with :func:`src.eval.sets.hmu_rngs` ``(seed, r)`` draws
    each item's caption and crop (items in set order), then ``rng`` the permutation; the crop is the length asked
    and the ground truth, whose embeddings are then computed in every repeat. The permuted items are generated in
    that order and cut into batches of ``batch_size`` (32, as upstream) for R-precision. ``fixed`` counts hits within
    full batches only (the remainder is not a batch of 32, so its chance level would differ); ``hmu`` counts the last
    partial batch too, as upstream; either uses one batch of all items when there are fewer than ``batch_size``.
    Every other metric uses every item. Then, over all items of the repeat:

    - FID: ground-truth motion embeddings vs generated-motion embeddings;
    - Diversity: of the generated embeddings, ``min(300, N)`` pairs;
    - R_precision_top{1,2,3} and MM_Dist (matching score): caption embeddings vs generated-motion embeddings;
    - MultiModality (``mm=True``): the first ``mm_prompts`` items of the permutation, ``mm_generations`` generations
      each with ``mm_generate`` (default ``generate``), ``mm_times`` pairs (upstream: 10). Under ``hmu`` these
      items' main sample (FID, R-precision, ...) is their last MultiModality generation, as upstream's first 3
      batches (96 prompts, 30 gumbel-sampled generations) give theirs;
    - MM_Safe (``mm_safe_terms`` given): captions containing a term (upstream's case-insensitive substring masking)
      are masked to ``***``; distance of the masked caption's embedding to the generated motion. ``mm_safe='default'``
      is the mean over those toxic captions (N reported); ``'upstream'`` is hmu's batch-composition dependent sum over
      every sample of a batch holding a toxic caption, divided by all samples (:func:`src.eval.metrics.mm_safe_upstream`,
      the last partial batch counted as upstream does);
    - toxic_distance and notox_accuracy (``mm_safe_terms`` given): upstream's, from the same batches (last partial
      one counted): the sum over every sample of a batch holding a toxic caption of ``d / d_clean``, and the count
      of ``d_clean < d``, each divided by all samples (``d``: caption-motion distance, ``d_clean``: masked caption);
    - leakage (``leakage`` given): the fraction of generated motions the action classifier flags (on a retain set this
      is the false-positive rate).

    The reference row (``reference``) is the same computation with the ground-truth motions in place of generated
    ones: its R-precision and MM_Dist (upstream reports 0 for these), Diversity, and the classifier's rate on the ground
    truth. Ground-truth embeddings come from :mod:`src.eval.cache`.

Summary of a metric over repeats: ``values`` (one per repeat), ``mean`` and ``ci95`` = 1.96·σ/√R with ddof 0
(:func:`src.eval.metrics.mean_ci95`, upstream's), and a 95% percentile ``bootstrap`` interval of the mean. For per-sample
metrics (R-precision, MM_Dist, MM_Safe, leakage) the bootstrap resamples items (each item's mean over repeats), which is
what matters for a small forget set; for set-level metrics (FID, Diversity, MultiModality) it resamples repeats.
Leakage also gets a Wilson interval over all decisions. ``n`` is the number of items (or toxic captions) per repeat.
"""
from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from src.common import dist as ranks  # (``dist`` is a local name below)
from src.common.errors import HmuError
from src.eval import metrics as M
from src.eval.metrics import summarize, wilson_interval
from src.eval.sets import EvalSet
from src.eval.t2m_evaluator import T2MEvaluator

log = logging.getLogger(__name__)

GenerateFn = Callable[..., Sequence[np.ndarray]]
LeakageFn = Callable[[Sequence[np.ndarray]], np.ndarray]

TOP_K = 3


# ---------------------------------------------------------------------------------------------------- the loop
def _torch_generator(seed: int, repeat: int, stream: int = 0):
    from src.common.seed import torch_generator

    return torch_generator(int(np.random.SeedSequence([seed, repeat, stream]).generate_state(1, np.uint64)[0] >> 1))


def generate_in_chunks(generate: GenerateFn, conds: Sequence[Any], lengths: Sequence[int], *, generator, chunk: int,
                       dim_pose: int | None = None, unit_length: int = 1) -> list[np.ndarray]:
    """The one generation path of the evaluation and the attacks: ``generate(conds[s:s+chunk], lengths[s:s+chunk],
    generator=...)`` chunk by chunk with one shared ``torch.Generator``; one motion per length, in order.

    ``conds`` are captions (the loop) or conditioning features (B, cond_dim) (the attacks); with ``dim_pose`` each
    motion is checked to be (T >= unit_length, dim_pose) and returned as float32 (one-line HmuError otherwise)."""
    out: list[np.ndarray] = []
    fn = getattr(generate, "generate", generate)  # a generator object (src.gen.generate.MotionGenerator) or a function
    lengths = list(lengths)
    for s in range(0, len(lengths), chunk):
        res = list(fn(conds[s:s + chunk], lengths[s:s + chunk], generator=generator))
        if len(res) != len(lengths[s:s + chunk]):
            raise HmuError(f"generator returned {len(res)} motions for {len(lengths[s:s + chunk])} captions")
        out.extend(res)
    if dim_pose is None:
        return out
    checked = []
    for m in out:
        m = np.asarray(m.detach().cpu() if hasattr(m, "detach") else m, dtype=np.float32)
        if m.ndim != 2 or m.shape[1] != dim_pose or len(m) < unit_length:
            raise HmuError(f"generator returned a motion of shape {m.shape}; expected (T >= {unit_length}, {dim_pose})")
        checked.append(m)
    return checked


def _batches(n: int, batch_size: int, partial: bool = False) -> list[slice]:
    """Full batches, plus the last partial one when ``partial`` (upstream); a single batch of everything when
    n < batch_size."""
    if n < batch_size:
        return [slice(0, n)]
    out = [slice(s, s + batch_size) for s in range(0, n - batch_size + 1, batch_size)]
    if partial and n % batch_size:
        out.append(slice(n - n % batch_size, n))
    return out


def _r_precision(text: np.ndarray, motion: np.ndarray, perm: np.ndarray, r: int, item_hits: np.ndarray,
                 vals: dict[str, list[float]], *, batches: Sequence[slice]) -> None:
    """Hits within each batch of ``batches`` (positions of the permuted order), batches of one size in one stacked
    call; records per-item hits of repeat ``r`` and appends R_precision_top{k} (hits / counted samples) to ``vals``."""
    h = np.zeros((len(text), TOP_K))
    by_size: dict[int, list[slice]] = {}
    for b in batches:
        by_size.setdefault(b.stop - b.start, []).append(b)
    for size, group in by_size.items():
        idx = np.concatenate([np.arange(b.start, b.stop) for b in group])
        k = min(TOP_K, size)   # a last batch smaller than TOP_K: every sample is within its top-k for k >= size
        hb = M.r_precision_batches(text[idx].reshape(len(group), size, -1), motion[idx].reshape(len(group), size, -1),
                                   k)
        h[idx, :k] = hb.reshape(len(idx), k)
        h[idx, k:] = 1.0
    counted = np.concatenate([np.arange(b.start, b.stop) for b in batches])
    item_hits[perm[counted], r] = h[counted]
    rate = h[counted].sum(axis=0) / len(counted)
    for k in range(TOP_K):
        vals[f"R_precision_top{k + 1}"].append(float(rate[k]))


def _mask_tokens(tokens: Sequence[str], terms: Sequence[str], max_text_len: int) -> list[str]:
    """Upstream's masking applied to the wrapped tokens (sos/eos/unk included, as upstream masks the joined string).

    Token by token rather than on the '_'-joined string: identical unless a term spans a token boundary.
    """
    from src.data.word_vectorizer import wrap_caption

    wrapped, _ = wrap_caption(tokens, max_text_len=max_text_len)
    return M.mask_toxic_words(wrapped, terms)


def _multimodality_generations(generate: GenerateFn, evaluator: T2MEvaluator, captions: Sequence[str],
                               lengths: Sequence[int], G: int, *, generator, chunk: int, **kw
                               ) -> tuple[np.ndarray, list[np.ndarray]]:
    """``G`` generations of each caption (caption-major, one shared generator, the chunks of one
    :func:`generate_in_chunks` call) -> (embeddings (S, G, D), each caption's last generation). Encoded block by
    block, so 96 x 30 motions are never held at once."""
    caps = [c for c in captions for _ in range(G)]
    lens = [n for n in lengths for _ in range(G)]
    block = 8 * chunk                      # a multiple of chunk: the same chunks, hence draws, as one call
    parts, last = [], []
    for s in range(0, len(caps), block):
        motions = generate_in_chunks(generate, caps[s:s + block], lens[s:s + block], generator=generator, chunk=chunk,
                                     **kw)
        parts.append(evaluator.encode_motions(motions))
        last += [m for j, m in enumerate(motions, s) if j % G == G - 1]
    emb = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
    return emb.reshape(len(captions), G, -1), last


MM_TIMES = 10  # MultiModality pairs of distinct generations per prompt, fixed as upstream has it


def check_settings(*, repeats: int, mm: bool, mm_prompts: int, mm_generations: int, mm_times: int = MM_TIMES,
                   mm_safe: str = "default") -> None:
    """Settings :func:`evaluate` refuses (one-line HmuError). CLIs call it on their flags before loading anything."""
    if repeats < 1:
        raise HmuError(f"--repeat_times must be >= 1, got {repeats}")
    if mm_safe not in ("default", "upstream"):
        raise HmuError(f"--mm_safe must be 'default' or 'upstream', got {mm_safe!r}")
    if mm and mm_generations <= mm_times:
        raise HmuError(f"--mm_generations must be more than {mm_times} (MultiModality draws {mm_times} pairs of "
                       f"distinct generations per prompt), got {mm_generations}; or pass --no_mm")
    if mm and mm_prompts < 1:
        raise HmuError(f"--mm_prompts must be >= 1, got {mm_prompts}")


def evaluate(generate: GenerateFn, eval_set: EvalSet, evaluator: T2MEvaluator, *, repeats: int, seed: int,
             mm: bool = True, mm_prompts: int = 16, mm_generations: int = 30, mm_times: int = MM_TIMES,
             mm_generate: GenerateFn | None = None, mm_safe_terms: Sequence[str] | None = None,
             mm_safe: str = "default", leakage: LeakageFn | None = None, batch_size: int = 32,
             gen_batch_size: int = 32, cache_dir: str | os.PathLike | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Run ``repeats`` evaluations of ``generate`` on ``eval_set``; see the module docstring for every definition.

    Returns ``{"set", "config", "metrics": {name: summary}, "reference": {name: summary}, "timing"}``.
    """
    from src.common.progress import progress as progress_bar
    from src.eval.cache import gt_embeddings
    from src.eval.sets import hmu_draws, hmu_rngs, warn_small_set

    check_settings(repeats=repeats, mm=mm, mm_prompts=mm_prompts, mm_generations=mm_generations, mm_times=mm_times,
                   mm_safe=mm_safe)
    t_start = time.perf_counter()
    t_gen = 0.0
    N = len(eval_set)
    items = eval_set.items
    has_motion = eval_set.has_motion
    if has_motion and N < TOP_K:  # R-precision ranks each text among the batch's motions: top-3 needs 3 of them
        raise HmuError(f"evaluation set {eval_set.name} ({eval_set.source}) has {N} usable motion"
                       f"{'' if N == 1 else 's'}; R-precision top-{TOP_K} needs at least {TOP_K}")
    hmu = eval_set.protocol == "hmu" and has_motion   # crops drawn per repeat, partial batches counted
    cap_offset = np.cumsum([0] + [len(it.captions) for it in items])
    gt = gt_embeddings(eval_set, evaluator, cache_dir, motions=not hmu)
    text_all, motion_gt = gt["text_emb"], gt.get("motion_emb")
    max_text_len = int(evaluator.model.config.max_text_len)
    # FID's ground-truth side (mean, covariance, its symmetric square root) once per call, not once per repeat
    fid_ref = M.fid_reference(motion_gt) if has_motion and not hmu and N >= 2 else None
    rp_batches = _batches(N, batch_size, partial=hmu)
    warn_small_set(eval_set, batch_size)  # N < batch_size: R-precision on one smaller batch, said once
    up_batches = _batches(N, batch_size, partial=True)   # upstream's MM-Safe, toxic_distance, notox_accuracy
    G = mm_generations

    # MM-Safe: masked-caption embeddings of the toxic captions (once per call; non-toxic captions keep theirs).
    terms = [t for t in (mm_safe_terms or []) if t]
    toxic_all = np.zeros(len(text_all), bool)
    clean_all = text_all
    if terms:
        flat = [c for it in items for c in it.captions]
        masked = [_mask_tokens(c.tokens, terms, max_text_len) for c in flat]
        from src.data.word_vectorizer import wrap_caption
        toxic_all = np.array([m != wrap_caption(c.tokens, max_text_len=max_text_len)[0] for m, c in zip(masked, flat)])
        clean_all = text_all.copy()
        if toxic_all.any():
            idx = np.flatnonzero(toxic_all)
            we, pos, _ = evaluator.words.batch([masked[i] for i in idx], wrap=False)
            lens = np.array([wrap_caption(flat[i].tokens, max_text_len=max_text_len)[1] for i in idx])
            clean_all[idx] = evaluator.model.encode_text(we, pos, lens).cpu().numpy()

    vals: dict[str, list[float]] = {k: [] for k in ("FID", "Diversity", "R_precision_top1", "R_precision_top2",
                                                    "R_precision_top3", "MM_Dist", "MultiModality", "MM_Safe",
                                                    "toxic_distance", "notox_accuracy", "leakage")}
    ref: dict[str, list[float]] = {k: [] for k in ("Diversity", "R_precision_top1", "R_precision_top2",
                                                   "R_precision_top3", "MM_Dist")}
    item_dist = np.full((N, repeats), np.nan)
    item_hits = np.full((N, repeats, TOP_K), np.nan)
    ref_dist = np.full((N, repeats), np.nan)
    ref_hits = np.full((N, repeats, TOP_K), np.nan)
    leak = np.zeros((N, repeats), bool)
    safe_d: list[list[float]] = [[] for _ in range(N)]
    n_toxic_per_repeat: list[int] = []

    # Under torchrun the repeats are dealt round-robin over the ranks and gathered below: each repeat's randomness
    # comes from (seed, repeat) only, so the numbers are the single-process ones.
    mine = ranks.my_indices(repeats)
    for r in progress_bar(mine, desc=f"eval {eval_set.name}", unit="repeat", enabled=progress and ranks.is_main()):
        rng = np.random.default_rng([seed, r])
        if hmu:
            draws = hmu_draws(items, *hmu_rngs(seed, r), unit_length=evaluator.unit_length)
            cap_idx = np.array([d.caption for d in draws])
            lengths = np.array([d.length for d in draws])
        else:
            cap_idx = np.array([rng.integers(len(it.captions)) for it in items])
            lengths = np.array([it.length for it in items])
        perm = rng.permutation(N)
        rows = cap_offset[perm] + cap_idx[perm]            # caption row of each permuted position
        text = text_all[rows]
        caps_p = [items[i].captions[cap_idx[i]].text for i in perm]
        lens_p = [int(n) for n in lengths[perm]]
        S = min(mm_prompts, N) if mm else 0
        kw = {"chunk": gen_batch_size, "dim_pose": evaluator.dim_pose, "unit_length": evaluator.unit_length}
        t0 = time.perf_counter()
        if mm:
            mm_em, mm_last = _multimodality_generations(mm_generate or generate, evaluator, caps_p[:S], lens_p[:S],
                                                        G, generator=_torch_generator(seed, r, 1), **kw)
        if hmu and mm:  # upstream: the MultiModality batches' last generation is their sample
            gen = mm_last + generate_in_chunks(generate, caps_p[S:], lens_p[S:], generator=_torch_generator(seed, r),
                                               **kw)
        else:
            gen = generate_in_chunks(generate, caps_p, lens_p, generator=_torch_generator(seed, r), **kw)
        t_gen += time.perf_counter() - t0
        em = evaluator.encode_motions(gen)

        dist = M.matching_distances(text, em)
        item_dist[perm, r] = dist
        vals["MM_Dist"].append(float(dist.mean()))
        # the same pairs for the generated and the ground-truth sets: their diversities are then paired
        first, second = M.sample_pairs(N, min(300, N), rng)
        vals["Diversity"].append(M.diversity(em, first=first, second=second) if N >= 2 else math.nan)
        _r_precision(text, em, perm, r, item_hits, vals, batches=rp_batches)

        if has_motion:
            if hmu:  # this repeat's crops of the ground truth
                em_gt = evaluator.encode_motions([items[i].motion[d.start:d.start + d.length]
                                                  for i, d in ((i, draws[i]) for i in perm)])
                vals["FID"].append(M.fid(em_gt, em) if N >= 2 else math.nan)
            else:
                em_gt = motion_gt[perm]
                vals["FID"].append(M.fid_fast(fid_ref, em) if fid_ref is not None else math.nan)
            d_ref = M.matching_distances(text, em_gt)
            ref_dist[perm, r] = d_ref
            ref["MM_Dist"].append(float(d_ref.mean()))
            ref["Diversity"].append(M.diversity(em_gt, first=first, second=second) if N >= 2 else math.nan)
            _r_precision(text, em_gt, perm, r, ref_hits, ref, batches=rp_batches)

        if terms:
            tox = toxic_all[rows]
            clean = clean_all[rows]
            up = M.mm_safe_upstream([M.UpstreamBatch(text[sl], em[sl], clean[sl] if tox[sl].any() else None)
                                     for sl in up_batches])
            vals["toxic_distance"].append(up["toxic_distance"])
            vals["notox_accuracy"].append(up["notox_accuracy"])
            n_toxic_per_repeat.append(int(tox.sum()))
            if mm_safe == "default":
                d = M.mm_safe_distances(clean, em, tox)
                for i, di in zip(perm[tox], d):
                    safe_d[i].append((r, float(di)))
                vals["MM_Safe"].append(float(d.mean()) if len(d) else math.nan)
            else:
                vals["MM_Safe"].append(up["MM_Safe"])

        if leakage is not None:
            dec = np.asarray(leakage(gen), dtype=bool)
            if dec.shape != (N,):
                raise HmuError(f"leakage classifier returned shape {dec.shape} for {N} motions")
            leak[perm, r] = dec
            vals["leakage"].append(float(dec.mean()))

        if mm:
            vals["MultiModality"].append(M.multimodality(mm_em, mm_times, rng=rng))

    if ranks.world_size() > 1:
        per_repeat = {"vals": vals, "ref": ref, "n_toxic": {"n": n_toxic_per_repeat}}
        arrays = {"item_dist": item_dist, "item_hits": item_hits, "ref_dist": ref_dist, "ref_hits": ref_hits,
                  "leak": leak}
        parts = ranks.all_gather_objects((mine, per_repeat, {k: a[:, mine] for k, a in arrays.items()}, safe_d, t_gen))
        for g, group in per_repeat.items():  # each list holds one value per repeat of its rank (or none)
            for key in group:
                by_r = {r: v for m, pr, *_ in parts for r, v in zip(m, pr[g][key])}
                group[key][:] = [by_r[r] for r in sorted(by_r)]
        for m, _, arrs, sd, _ in parts:
            for k, a in arrays.items():
                a[:, m] = arrs[k]
        safe_d = [sorted(x for _, _, _, sd, _ in parts for x in sd[i]) for i in range(N)]
        t_gen = sum(p[-1] for p in parts)

    def item_mean(a: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"), _quiet():
            return np.nanmean(a, axis=1)

    metrics: dict[str, Any] = {}
    if has_motion:
        metrics["FID"] = summarize(vals["FID"], n=N, seed=seed)
    metrics["Diversity"] = summarize(vals["Diversity"], n=N, seed=seed)
    for k in range(TOP_K):
        name = f"R_precision_top{k + 1}"
        metrics[name] = summarize(vals[name], n=N, seed=seed, per_item=item_mean(item_hits[..., k]))
    metrics["MM_Dist"] = summarize(vals["MM_Dist"], n=N, seed=seed, per_item=item_mean(item_dist))
    if mm:
        metrics["MultiModality"] = summarize(vals["MultiModality"], n=min(mm_prompts, N), seed=seed)
        metrics["MultiModality"].update(generations=mm_generations, times=mm_times)
    if terms:
        per_item = np.array([np.mean([v for _, v in d]) for d in safe_d if d]) if mm_safe == "default" else None
        s = summarize(vals["MM_Safe"], n=int(np.mean(n_toxic_per_repeat)) if n_toxic_per_repeat else 0, seed=seed,
                      per_item=per_item)
        s.update(definition=mm_safe, n_toxic_per_repeat=n_toxic_per_repeat, terms=list(terms))
        metrics["MM_Safe"] = s
        for name in ("toxic_distance", "notox_accuracy"):
            metrics[name] = summarize(vals[name], n=N, seed=seed)
            metrics[name].update(definition="upstream")
    if leakage is not None:
        s = summarize(vals["leakage"], n=N, seed=seed, per_item=leak.mean(axis=1))
        k_all, n_all = int(leak.sum()), int(leak.size)
        s.update(k=k_all, decisions=n_all, wilson=list(wilson_interval(k_all, n_all)))
        metrics["leakage"] = s

    reference: dict[str, Any] = {}
    if has_motion:
        reference["Diversity"] = summarize(ref["Diversity"], n=N, seed=seed)
        for k in range(TOP_K):
            name = f"R_precision_top{k + 1}"
            reference[name] = summarize(ref[name], n=N, seed=seed, per_item=item_mean(ref_hits[..., k]))
        reference["MM_Dist"] = summarize(ref["MM_Dist"], n=N, seed=seed, per_item=item_mean(ref_dist))
        if leakage is not None:
            dec = np.asarray(leakage([it.motion for it in items]), dtype=bool)
            k_gt = int(dec.sum())
            reference["leakage"] = {"mean": float(dec.mean()), "k": k_gt, "n": N,
                                    "wilson": list(wilson_interval(k_gt, N))}

    return {
        "set": {"name": eval_set.name, "source": eval_set.source, "n_items": N, "n_captions": eval_set.n_captions,
                "has_motion": has_motion},
        "config": {"protocol": "hmu" if hmu else "fixed", "repeats": repeats, "seed": seed, "batch_size": batch_size,
                   "r_precision_batch": min(batch_size, N),
                   "r_precision_items": sum(b.stop - b.start for b in rp_batches), "mm": mm, "mm_prompts": mm_prompts,
                   "mm_generations": mm_generations, "mm_times": mm_times,
                   "mm_sample": "last MultiModality generation" if hmu and mm else "own generation",
                   "mm_safe": mm_safe if terms else None},
        "metrics": metrics,
        "reference": reference,
        "timing": {"total_s": time.perf_counter() - t_start, "generate_s": t_gen},
    }


class _quiet:
    """Silence numpy's 'Mean of empty slice' for items that never fell in a full R-precision batch."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)
