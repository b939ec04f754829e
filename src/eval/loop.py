"""The one evaluation loop: a generator, an evaluation set and the T2M evaluator in, every metric with intervals out.

Every model and every unlearning method goes through :func:`evaluate`; forget, retain and prompt-only sets alike.

Generation interface
    ``generate(captions: list[str], lengths: list[int], *, generator: torch.Generator) -> list[np.ndarray]``: one RAW
    (un-normalised) feature array (T_i, dim_pose) per caption. Lengths are in frames. The loop calls it in chunks of
    ``LoopOptions.gen_batch_size`` with a ``torch.Generator`` seeded from ``(seed, repeat)``. An object with such a
    ``generate`` method (src.gen.generate.MotionGenerator) is accepted as well.

Evaluation sets are :mod:`src.eval.sets` (a split's motions, or prompts only); the evaluator is
:class:`src.models.t2m_evaluator.T2MEvaluator`; the summaries are :func:`src.metrics.t2m.summarize` and
:func:`src.metrics.t2m.wilson_interval`. Settings travel in three small values: :class:`MultiModality`,
:class:`SafetyOptions` (MM-Safe terms and definition, the leakage classifier) and :class:`LoopOptions` (batch sizes,
cache, progress bar). What the two protocols differ in is one :class:`src.eval.protocol.Protocol` value; each metric
family is one accumulator of :mod:`src.eval.accumulators`.

One repeat ``r``
    The set's protocol (:mod:`src.eval.sets`, :mod:`src.eval.protocol`) decides the draws. ``fixed``: ``rng =
    np.random.default_rng([seed, r])`` draws one caption per item, then a permutation of the items; lengths and
    ground truth are the items'. ``hmu`` (upstream's): :func:`src.eval.sets.hmu_draws` with
    :func:`src.eval.sets.hmu_rngs` ``(seed, r)`` draws each item's caption and crop (items in set order), then ``rng``
    the permutation; the crop is the length asked and the ground truth, whose embeddings are then computed in every
    repeat. The permuted items are generated in that order and cut into batches of ``batch_size`` (32, as upstream)
    for R-precision. ``fixed`` counts hits within full batches only (the remainder is not a batch of 32, so its
    chance level would differ); ``hmu`` counts the last partial batch too, as upstream; either uses one batch of all
    items when there are fewer than ``batch_size``. Every other metric uses every item. Then, over all items of the
    repeat:

    - FID: ground-truth motion embeddings vs generated-motion embeddings;
    - Diversity: of the generated embeddings, ``min(300, N)`` pairs;
    - R_precision_top{1,2,3} and MM_Dist (matching score): caption embeddings vs generated-motion embeddings;
    - MultiModality (``mm.enabled``): the first ``mm.prompts`` items of the permutation, ``mm.generations``
      generations each with ``mm.generate`` (default ``generate``), ``mm.times`` pairs (upstream: 10). Under ``hmu``
      these items' main sample (FID, R-precision, ...) is their last MultiModality generation, as upstream's first 3
      batches (96 prompts, 30 gumbel-sampled generations) give theirs;
    - MM_Safe (``safety.terms`` given): captions containing a term (upstream's case-insensitive substring masking)
      are masked to ``***``; distance of the masked caption's embedding to the generated motion.
      ``safety.mm_safe='default'`` is the mean over those toxic captions (N reported); ``'upstream'`` is hmu's
      batch-composition dependent sum over every sample of a batch holding a toxic caption, divided by all samples
      (:func:`src.metrics.t2m.mm_safe_upstream`, the last partial batch counted as upstream does);
    - toxic_distance and notox_accuracy (``safety.terms`` given): upstream's, from the same batches (last partial
      one counted): the sum over every sample of a batch holding a toxic caption of ``d / d_clean``, and the count
      of ``d_clean < d``, each divided by all samples (``d``: caption-motion distance, ``d_clean``: masked caption);
    - leakage (``safety.leakage`` given): the fraction of generated motions the action classifier flags (on a retain
      set this is the false-positive rate). ``safety.leakage`` may be a mapping ``{metric name: judge}`` (e.g.
      ``{"leakage": learned, "leakage_kinematic": kinematic}``): one such metric per judge.
    - motion quality (``run.quality``; by default whenever the features are HumanML3D's 263-d layout): jerk, foot
      skating, floating / ground penetration and bone-length drift (:mod:`src.eval.quality`) of the joints recovered
      from the generated features (``recover_from_ric``), every motion's samples pooled per repeat.

    The reference row (``reference``) is the same computation with the ground-truth motions in place of generated
    ones: its R-precision and MM_Dist (upstream reports 0 for these), Diversity, and the classifier's rate on the
    ground truth, and the quality figures of the real (whole) motions. Ground-truth embeddings come from
    :mod:`src.eval.cache`.

Summary of a metric over repeats: ``values`` (one per repeat), ``mean`` and ``ci95`` = 1.96·σ/√R with ddof 0
(:func:`src.metrics.t2m.mean_ci95`, upstream's), and a 95% percentile ``bootstrap`` interval of the mean. For
per-sample metrics (R-precision, MM_Dist, MM_Safe, leakage) the bootstrap resamples items (each item's mean over
repeats), which is what matters for a small forget set; for set-level metrics (FID, Diversity, MultiModality) it
resamples repeats. Leakage also gets a Wilson interval over all decisions. ``n`` is the number of items (or toxic
captions) per repeat.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from src.common import dist as ranks  # (``dist`` is a local name below)
from src.common.errors import HmuError
from src.eval import accumulators as A
from src.eval.accumulators import TOP_K, Repeat
from src.eval.protocol import Protocol, batches
from src.eval.sets import CaptionedMotion, EvalSet, HmuDraw, hmu_draws, hmu_rngs
from src.metrics import t2m as M
from src.models.t2m_evaluator import T2MEvaluator

log = logging.getLogger(__name__)

GenerateFn = Callable[..., Sequence[np.ndarray]]
LeakageFn = Callable[[Sequence[np.ndarray]], np.ndarray]


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


# ---------------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class MultiModality:
    """MultiModality: the first ``prompts`` items of each repeat's permutation, ``generations`` generations each by
    ``generate`` (None: the main generator), ``times`` pairs of distinct generations (upstream: 10). With
    ``enabled=False`` none is made; the settings are still recorded in the results' config."""

    prompts: int = 16
    generations: int = 30
    times: int = MM_TIMES
    generate: GenerateFn | None = None
    enabled: bool = True


NO_MM = MultiModality(enabled=False)


@dataclass(frozen=True)
class SafetyOptions:
    """The forgetting figures: MM-Safe, toxic_distance and notox_accuracy when ``terms`` are given (definition
    ``mm_safe``: 'default' or 'upstream'), and the rate of motions the ``leakage`` classifier flags (a mapping
    ``{metric name: judge}``: one leakage metric per judge, e.g. the learned and the kinematic judge).

    Which captions are toxic follows the definition: 'upstream' masks every case-insensitive substring of a term
    (so ``hit`` masks "whitewashes" too), 'default' whole words and their inflections (the keyword split's rule)."""

    terms: Sequence[str] = ()
    mm_safe: str = "default"
    leakage: LeakageFn | Mapping[str, LeakageFn] | None = None

    @property
    def judges(self) -> dict[str, LeakageFn]:
        """``{metric name: judge}``: a single judge is the ``leakage`` metric."""
        if self.leakage is None:
            return {}
        return dict(self.leakage) if isinstance(self.leakage, Mapping) else {"leakage": self.leakage}

    @property
    def match(self) -> str:
        return "substring" if self.mm_safe == "upstream" else "word"

    @property
    def active_terms(self) -> list[str]:
        """The non-empty terms (none: no MM-Safe)."""
        return [t for t in self.terms or () if t]


@dataclass(frozen=True)
class LoopOptions:
    """How the loop runs: R-precision batch size (upstream 32), captions per generator call, the ground-truth
    embedding cache folder (None: in memory only), progress bar, and whether the motion-quality figures are computed
    (``quality``: None = whenever joints can be recovered from the features, i.e. HumanML3D's 263-d layout of 22
    joints; they cost a few ms per motion)."""

    batch_size: int = 32
    gen_batch_size: int = 32
    cache_dir: str | os.PathLike | None = None
    progress: bool = True
    quality: bool | None = None

    def quality_joints(self, dim_pose: int) -> int | None:
        """Joints to recover for the quality figures at ``dim_pose`` features, or None when they are off (asked
        off, or the features are not the 22-joint HumanML3D layout; asked on there: one-line HmuError)."""
        from src.data.motion import feature_dim
        from src.eval.quality import T2M_PARENTS

        joints = len(T2M_PARENTS)
        if self.quality is False:
            return None
        if dim_pose == feature_dim(joints):
            return joints
        if self.quality:
            raise HmuError(f"motion-quality figures need {feature_dim(joints)}-d HumanML3D features ({joints} "
                           f"joints), got {dim_pose}-d")
        return None


# ---------------------------------------------------------------------------------------------------- the loop
@dataclass(frozen=True)
class Draws:
    """One repeat's draws for every item, in item order: the caption index, the length asked of the generator, and
    (protocols that crop per repeat) the crop of the ground truth."""

    caption: np.ndarray                       # (N,) int
    length: np.ndarray                        # (N,) int, frames
    crops: Sequence[HmuDraw] | None = None    # None: the ground truth is item.motion as is

    def ground_truth(self, items: Sequence[CaptionedMotion], order: Sequence[int]) -> list[np.ndarray]:
        """The cropped ground-truth motions of ``items`` in ``order`` (protocols that crop per repeat)."""
        return [items[i].motion[c.start:c.start + c.length] for i, c in ((i, self.crops[i]) for i in order)]


def draw(protocol: Protocol, items: Sequence[CaptionedMotion], *, seed: int, repeat: int, rng: np.random.Generator,
         unit_length: int) -> Draws:
    """Repeat ``repeat``'s draws: :func:`src.eval.sets.hmu_draws` with :func:`src.eval.sets.hmu_rngs` when the
    protocol crops per repeat, else one caption per item from ``rng`` and the items' lengths."""
    if protocol.crops_per_repeat:
        crops = hmu_draws(items, *hmu_rngs(seed, repeat), unit_length=unit_length)
        return Draws(np.array([d.caption for d in crops]), np.array([d.length for d in crops]), crops)
    return Draws(np.array([rng.integers(len(it.captions)) for it in items]), np.array([it.length for it in items]))


class RepeatSampler:
    """One repeat's draws, generations and embeddings (:class:`src.eval.accumulators.Repeat`) on one set."""

    def __init__(self, eval_set: EvalSet, evaluator: T2MEvaluator, protocol: Protocol, gt: dict[str, np.ndarray],
                 *, chunk: int) -> None:
        self.items, self.evaluator, self.protocol, self.chunk = eval_set.items, evaluator, protocol, chunk
        self.has_motion = eval_set.has_motion
        self.cap_offset = np.cumsum([0] + [len(it.captions) for it in self.items])
        self.text_all, self.motion_gt = gt["text_emb"], gt.get("motion_emb")

    def __call__(self, generate: GenerateFn, mm: MultiModality, *, seed: int, r: int) -> Repeat:
        items, ev, n = self.items, self.evaluator, len(self.items)
        rng = np.random.default_rng([seed, r])
        draws = draw(self.protocol, items, seed=seed, repeat=r, rng=rng, unit_length=ev.unit_length)
        perm = rng.permutation(n)
        rows = self.cap_offset[perm] + draws.caption[perm]            # caption row of each permuted position
        caps = [items[i].captions[draws.caption[i]].text for i in perm]
        lens = [int(k) for k in draws.length[perm]]
        kw = {"chunk": self.chunk, "dim_pose": ev.dim_pose, "unit_length": ev.unit_length}
        t0 = time.perf_counter()
        mm_em, mm_last = None, []
        if mm.enabled:
            s = min(mm.prompts, n)
            mm_em, mm_last = _multimodality_generations(mm.generate or generate, ev, caps[:s], lens[:s], mm.generations,
                                                        generator=_torch_generator(seed, r, 1), **kw)
        own = len(mm_last) if self.protocol.mm_sample_last else 0   # positions sampled by their last MM generation
        motions = mm_last[:own] + generate_in_chunks(generate, caps[own:], lens[own:],
                                                     generator=_torch_generator(seed, r), **kw)
        t_gen = time.perf_counter() - t0
        em = ev.encode_motions(motions)
        pairs = M.sample_pairs(n, min(300, n), rng)
        if not self.has_motion:
            em_gt = None
        elif draws.crops is not None:   # this repeat's crops of the ground truth
            em_gt = ev.encode_motions(draws.ground_truth(items, perm))
        else:
            em_gt = self.motion_gt[perm]
        return Repeat(r, perm, rows, self.text_all[rows], motions, em, em_gt, pairs, rng, mm_em, t_gen)


def accumulators(eval_set: EvalSet, evaluator: T2MEvaluator, protocol: Protocol, gt: dict[str, np.ndarray], *,
                 repeats: int, seed: int, mm: MultiModality, safety: SafetyOptions, run: LoopOptions
                 ) -> list[A.Accumulator]:
    """One accumulator per metric family asked for, in the order of the results' metrics."""
    n, has_motion = len(eval_set), eval_set.has_motion
    batch_size = run.batch_size
    rp = protocol.r_precision_batches(n, batch_size)
    out: list[A.Accumulator] = [
        A.FidDiversity(n=n, seed=seed, has_motion=has_motion, gt_emb=gt.get("motion_emb")),
        A.Retrieval(n=n, repeats=repeats, seed=seed, batches=rp)]
    if has_motion:
        out.append(A.Retrieval(n=n, repeats=repeats, seed=seed, batches=rp, ground_truth=True))
    if mm.enabled:
        out.append(A.MultiModalityScore(n=min(mm.prompts, n), seed=seed, generations=mm.generations, times=mm.times))
    terms = safety.active_terms
    if terms:
        toxic, clean = A.masked_caption_embeddings([c for it in eval_set.items for c in it.captions], gt["text_emb"],
                                                   evaluator, terms, safety.match)
        out.append(A.MMSafe(n=n, repeats=repeats, seed=seed, toxic=toxic, clean=clean, definition=safety.mm_safe,
                            terms=terms, batches=batches(n, batch_size, partial=True)))   # upstream's batches
    for key, judge in safety.judges.items():
        out.append(A.Leakage(judge, n=n, repeats=repeats, seed=seed, key=key,
                             gt_motions=[it.motion for it in eval_set.items] if has_motion else None))
    joints = run.quality_joints(evaluator.dim_pose)
    if joints is not None:
        out.append(A.Quality(n=n, seed=seed, joints_num=joints,
                             gt_motions=[it.motion for it in eval_set.items] if has_motion else None))
    return out


def _gather(families: Sequence[A.Accumulator], mine: Sequence[int], t_gen: float) -> float:
    """Under torchrun: every rank's repeats merged into ``families`` -> the generation time of all ranks."""
    if ranks.world_size() == 1:
        return t_gen
    parts = ranks.all_gather_objects((mine, [f.state(mine) for f in families], t_gen))
    for i, f in enumerate(families):
        f.merge([(m, states[i]) for m, states, _ in parts])
    return sum(p[-1] for p in parts)


def evaluate(generate: GenerateFn, eval_set: EvalSet, evaluator: T2MEvaluator, *, repeats: int, seed: int,
             mm: MultiModality = MultiModality(), safety: SafetyOptions = SafetyOptions(),
             run: LoopOptions = LoopOptions()) -> dict[str, Any]:
    """Run ``repeats`` evaluations of ``generate`` on ``eval_set``; see the module docstring for every definition.

    Returns ``{"set", "config", "metrics": {name: summary}, "reference": {name: summary}, "timing"}``.
    """
    from src.common.progress import progress as progress_bar
    from src.eval.cache import gt_embeddings
    from src.eval.sets import warn_small_set

    check_settings(repeats=repeats, mm=mm.enabled, mm_prompts=mm.prompts, mm_generations=mm.generations,
                   mm_times=mm.times, mm_safe=safety.mm_safe)
    t_start = time.perf_counter()
    n, has_motion = len(eval_set), eval_set.has_motion
    if has_motion and n < TOP_K:  # R-precision ranks each text among the batch's motions: top-3 needs 3 of them
        raise HmuError(f"evaluation set {eval_set.name} ({eval_set.source}) has {n} usable motion"
                       f"{'' if n == 1 else 's'}; R-precision top-{TOP_K} needs at least {TOP_K}")
    protocol = Protocol.of(eval_set)
    warn_small_set(eval_set, run.batch_size)  # n < batch_size: R-precision on one smaller batch, said once
    gt = gt_embeddings(eval_set, evaluator, run.cache_dir, motions=not protocol.crops_per_repeat)
    sample = RepeatSampler(eval_set, evaluator, protocol, gt, chunk=run.gen_batch_size)
    families = accumulators(eval_set, evaluator, protocol, gt, repeats=repeats, seed=seed, mm=mm, safety=safety,
                            run=run)

    # Under torchrun the repeats are dealt round-robin over the ranks and gathered below: each repeat's randomness
    # comes from (seed, repeat) only, so the numbers are the single-process ones.
    mine = ranks.my_indices(repeats)
    t_gen = 0.0
    for r in progress_bar(mine, desc=f"eval {eval_set.name}", unit="repeat", enabled=run.progress and ranks.is_main()):
        rep = sample(generate, mm, seed=seed, r=r)
        t_gen += rep.generate_s
        for family in families:
            family.add(rep)
    t_gen = _gather(families, mine, t_gen)

    rp_items = sum(b.stop - b.start for b in protocol.r_precision_batches(n, run.batch_size))
    return {
        "set": {"name": eval_set.name, "source": eval_set.source, "n_items": n, "n_captions": eval_set.n_captions,
                "has_motion": has_motion},
        "config": {"protocol": protocol.name, "repeats": repeats, "seed": seed, "batch_size": run.batch_size,
                   "r_precision_batch": min(run.batch_size, n), "r_precision_items": rp_items, "mm": mm.enabled,
                   "mm_prompts": mm.prompts, "mm_generations": mm.generations, "mm_times": mm.times,
                   "mm_sample": protocol.mm_sample(mm.enabled),
                   "mm_safe": safety.mm_safe if safety.active_terms else None,
                   "quality": run.quality_joints(evaluator.dim_pose) is not None},
        "metrics": {k: v for f in families for k, v in f.metrics().items()},
        "reference": {k: v for f in families for k, v in f.reference().items()},
        "timing": {"total_s": time.perf_counter() - t_start, "generate_s": t_gen},
    }
