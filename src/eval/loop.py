"""The one evaluation loop: a generator, an evaluation set and the T2M evaluator in, every metric with intervals out.

Every model and every unlearning method goes through :func:`evaluate`; forget, retain and prompt-only sets alike.

Generation interface
    ``generate(captions: list[str], lengths: list[int], *, generator: torch.Generator) -> list[np.ndarray]``: one RAW
    (un-normalised) feature array (T_i, dim_pose) per caption. Lengths are in frames. The loop calls it in chunks of
    ``gen_batch_size`` with a ``torch.Generator`` seeded from ``(seed, repeat)``. An object with such a ``generate``
    method (src.gen.MotionGenerator) is accepted as well.

Evaluation set (:func:`load_eval_set`)
    The ids of a split list of a HumanML3D-format folder (``kw_splits/test-w-<concept>`` = forget,
    ``-wo-`` = retain). As upstream's evaluation dataset: motions shorter than ``min_motion_length`` or of 200 frames or
    more are skipped, and a caption with a ``from#to`` range becomes its own sub-clip item. Unlike upstream, which
    crops a random window (and randomly drops one more unit) in every repeat, the motion is the first
    ``min(T, max_motion_length) // unit_length * unit_length`` frames, always: the ground truth is then fixed, so its
    embeddings can be cached, and the requested length is the same for every model. Prompt-only sets
    (:func:`prompt_set`, e.g. synth's implicit prompts) have captions and lengths but no motions.

One repeat ``r``
    ``rng = np.random.default_rng([seed, r])`` draws one caption per item, then a permutation of the items. The
    permuted items are generated in that order and cut into batches of ``batch_size`` (32, as upstream) for
    R-precision: hits are counted within full batches only (the remainder is not a batch of 32, so its chance level
    would differ), or within one batch of all items when there are fewer than ``batch_size``. Every other metric uses
    every item. Then, over all items of the repeat:

    - FID: ground-truth motion embeddings vs generated-motion embeddings;
    - Diversity: of the generated embeddings, ``min(300, N)`` pairs;
    - R_precision_top{1,2,3} and MM_Dist (matching score): caption embeddings vs generated-motion embeddings;
    - MultiModality (``mm=True``): the first ``mm_prompts`` items of the permutation, ``mm_generations`` generations
      each, ``mm_times`` pairs (upstream: 10);
    - MM_Safe (``mm_safe_terms`` given): captions containing a term (upstream's case-insensitive substring masking)
      are masked to ``***``; distance of the masked caption's embedding to the generated motion. ``mm_safe='default'``
      is the mean over those toxic captions (N reported); ``'upstream'`` is hmu's batch-composition dependent sum over
      every sample of a batch holding a toxic caption, divided by all samples (:func:`src.eval.metrics.mm_safe_upstream`);
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from src.common.errors import HmuError
from src.eval import metrics as M

log = logging.getLogger(__name__)

GenerateFn = Callable[..., Sequence[np.ndarray]]
LeakageFn = Callable[[Sequence[np.ndarray]], np.ndarray]

UPSTREAM_MAX_FRAMES = 200  # upstream's eval dataset skips motions of 200 frames or more
TOP_K = 3
PAD_FRAMES = 4      # zero frames after a motion that the movement convolutions (2x k4 s2 p1) can read: 3, rounded up
GROUP_ROWS = 512    # motions of one length per movement-encoder call (bounds the (rows, T, dim_pose) buffer)


# ---------------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class EvalCaption:
    text: str
    tokens: tuple[str, ...]   # "word/POS"


@dataclass(frozen=True)
class EvalItem:
    """One evaluation item: a (sub-)motion and its captions. ``motion`` is None for prompt-only sets."""

    key: str
    length: int                         # frames asked of the generator (= len(motion) when there is one)
    captions: tuple[EvalCaption, ...]
    motion: np.ndarray | None = None    # (length, dim_pose) raw features


@dataclass(frozen=True)
class EvalSet:
    name: str
    items: tuple[EvalItem, ...]
    source: str = ""

    @property
    def has_motion(self) -> bool:
        return all(it.motion is not None for it in self.items)

    @property
    def n_captions(self) -> int:
        return sum(len(it.captions) for it in self.items)

    def __len__(self) -> int:
        return len(self.items)


def crop_length(n_frames: int, *, unit_length: int, max_motion_length: int) -> int:
    """Frames kept of an ``n_frames`` motion: ``min(n, max) // unit * unit`` (see the module docstring)."""
    return min(int(n_frames), int(max_motion_length)) // unit_length * unit_length


def load_eval_set(root: str | os.PathLike, split: str | os.PathLike | Sequence[str], *, name: str | None = None,
                  unit_length: int = 4, min_motion_length: int = 40, max_motion_length: int = 196, fps: int = 20
                  ) -> EvalSet:
    """Items of a split of a HumanML3D-format folder (module docstring: skipping, sub-clips, cropping)."""
    from src.data.datasets import resolve_ids
    from src.data.humanml3d import HumanML3DFolder

    ids = resolve_ids(root, split)
    folder = HumanML3DFolder(root)
    items: list[EvalItem] = []
    for mid in ids:
        motion = folder.motion(mid)
        whole: list[EvalCaption] = []
        k = 0
        for cap in folder.captions(mid):
            ec = EvalCaption(cap.text, tuple(cap.tokens))
            if cap.start == 0.0 and cap.end == 0.0:
                whole.append(ec)
                continue
            f0, f1 = int(cap.start * fps), int(cap.end * fps)
            sub = motion[f0:f1]
            if min_motion_length <= len(sub) < UPSTREAM_MAX_FRAMES:
                items.append(_item(f"{chr(ord('A') + k) if k < 26 else k}_{mid}", sub, (ec,),
                                   unit_length=unit_length, max_motion_length=max_motion_length))
                k += 1
        if whole and min_motion_length <= len(motion) < UPSTREAM_MAX_FRAMES:
            items.append(_item(mid, motion, tuple(whole), unit_length=unit_length, max_motion_length=max_motion_length))
    if not items:
        raise HmuError(f"split {split} of {root} has no motion between {min_motion_length} and "
                       f"{UPSTREAM_MAX_FRAMES - 1} frames")
    is_path = isinstance(split, (str, os.PathLike))
    default_name = Path(str(split)).name.removesuffix(".txt") if is_path else "eval"
    return EvalSet(name or default_name, tuple(items), source=str(split) if is_path else f"{len(ids)} ids")


def _item(key: str, motion: np.ndarray, captions: tuple[EvalCaption, ...], *, unit_length: int,
          max_motion_length: int) -> EvalItem:
    n = crop_length(len(motion), unit_length=unit_length, max_motion_length=max_motion_length)
    return EvalItem(key, n, captions, np.ascontiguousarray(motion[:n], dtype=np.float32))


def tag_free_prompts(prompts: Sequence[Mapping[str, Any]], *, texts_dir=None, vectorizer=None
                     ) -> tuple[list[dict], str | None]:
    """Give ``tokens`` to prompts that lack them (free-form text) -> (prompts, name of the tagger, None if none ran).

    Tags come from spaCy when installed, else the dataset's POS map (:func:`src.data.pos.tag_prompts`). Prompts with
    no known word are refused and mostly unknown ones warned about (:func:`src.data.prompt_check.check_prompts`); the
    words they bring are added to ``vectorizer`` from GloVe when its vectors are glove.6B.50d.
    """
    out = [dict(p) for p in prompts]
    free = [i for i, p in enumerate(out) if not p.get("tokens")]
    if not free:
        return out, None
    from src.data.pos import tag_prompts
    from src.data.prompt_check import check_prompts

    texts = [str(out[i].get("text", "")) for i in free]
    check_prompts(texts, glove_dir=getattr(vectorizer, "source", None), what="free-form prompt")
    tokens, tagger = tag_prompts(texts, texts_dir=texts_dir)
    for i, toks in zip(free, tokens):
        out[i]["tokens"] = toks
    if vectorizer is not None and hasattr(vectorizer, "extend"):
        vectorizer.extend(t.split("/")[0] for toks in tokens for t in toks)
    log.info("POS tags of %d free-form prompts: %s", len(free), tagger)
    return out, tagger


def prompt_set(prompts: Sequence[Mapping[str, Any]], *, name: str, unit_length: int = 4,
               max_motion_length: int = 196, source: str = "") -> EvalSet:
    """A prompt-only set from ``[{"text", "tokens", "length"}, ...]`` (synth's implicit_prompts.json)."""
    items = []
    for i, p in enumerate(prompts):
        try:
            text, tokens, length = str(p["text"]), tuple(p["tokens"]), int(p["length"])
        except (KeyError, TypeError, ValueError) as exc:
            raise HmuError(f"prompt {i} of {source or name} lacks text/tokens/length ({exc})") from None
        n = crop_length(length, unit_length=unit_length, max_motion_length=max_motion_length)
        if n < unit_length:
            raise HmuError(f"prompt {i} of {source or name} has length {length} < unit_length {unit_length}")
        items.append(EvalItem(f"prompt{i:04d}", n, (EvalCaption(text, tokens),)))
    if not items:
        raise HmuError(f"no prompts in {source or name}")
    return EvalSet(name, tuple(items), source=source)


# ---------------------------------------------------------------------------------------------------- evaluator
@dataclass
class T2MEvaluator:
    """The evaluator with what it needs around it: normalisation stats and word vectors. Counts encoder calls."""

    model: Any                 # src.models.evaluator.Evaluator
    mean: np.ndarray
    std: np.ndarray
    words: Any                 # src.data.word_vectorizer.WordVectorizer
    batch_size: int = 256
    calls: dict[str, int] = field(default_factory=lambda: {"motion": 0, "text": 0})
    _key: str | None = None

    @property
    def dim_pose(self) -> int:
        return int(self.model.config.dim_pose)

    @property
    def unit_length(self) -> int:
        return int(self.model.config.unit_length)

    @property
    def key(self) -> str:
        """sha256 of the weights, mean/std, word vectors and config (the evaluator half of the cache key)."""
        if self._key is None:
            import hashlib

            from src.eval.cache import hash_arrays

            h = hashlib.sha256(repr(sorted(self.model.config.to_dict().items())).encode())
            for k, v in sorted(self.model.state_dict().items()):
                h.update(k.encode())
                hash_arrays(h, v.detach().cpu().numpy())
            hash_arrays(h, np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32),
                        np.asarray(self.words.vectors))
            h.update(repr(sorted(self.words.word2idx.items())).encode())
            self._key = h.hexdigest()
        return self._key

    def normalise(self, motion: np.ndarray) -> np.ndarray:
        return (np.asarray(motion, np.float32) - self.mean) / self.std

    def encode_motions(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        """Raw (T_i, dim_pose) motions -> (N, D) float32 in input order.

        Each motion is encoded as upstream's evaluation does: normalised, then zero-padded up to
        ``max_motion_length``, so its embedding does not depend on the other motions of the call. For the Guo
        evaluator (movement + motion encoders) this is computed without the padding: the movement convolutions run
        once per distinct length on just ``T + PAD_FRAMES`` frames (the conv stack reads 3 frames past the end, so
        the result equals padding to ``max_motion_length``), then one packed GRU pass over every motion at once.
        """
        lens = np.array([len(m) for m in motions], dtype=np.int64)
        out = np.zeros((len(motions), self.model.config.dim_coemb_hidden), np.float32)
        if not len(motions):
            return out
        if hasattr(self.model, "movement_encoder") and hasattr(self.model, "motion_encoder"):
            out[:] = self._encode_motions_grouped(motions, lens)
            self.calls["motion"] += 1
            return out
        max_len = int(self.model.config.max_motion_length)
        order = np.argsort(-lens, kind="stable")
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            batch = np.zeros((len(idx), max(max_len, int(lens[idx].max())), self.dim_pose), np.float32)
            for j, i in enumerate(idx):
                batch[j, :lens[i]] = self.normalise(motions[i])
            out[idx] = self.model.encode_motion(batch, lens[idx]).cpu().numpy()
            self.calls["motion"] += 1
        return out

    def _encode_motions_grouped(self, motions: Sequence[np.ndarray], lens: np.ndarray) -> np.ndarray:
        import torch

        from src.models.evaluator import FOOT_CONTACT_DIMS

        cfg = self.model.config
        unit, max_len = int(cfg.unit_length), int(cfg.max_motion_length)
        if int(lens.min()) < unit:
            raise ValueError(f"motion lengths must be >= unit_length {unit}, got {int(lens.min())}")
        dim_in = self.dim_pose - FOOT_CONTACT_DIMS
        mean = np.asarray(self.mean, np.float32)[:dim_in]
        std = np.asarray(self.std, np.float32)[:dim_in]
        param = next(self.model.parameters())
        order = np.argsort(-lens, kind="stable")          # the packed GRU wants lengths sorted descending
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        m_lens = lens // unit
        with torch.inference_mode():
            movements = torch.zeros((len(lens), int(m_lens.max()), int(cfg.dim_movement_latent)),
                                    dtype=param.dtype, device=param.device)
            for T in np.unique(lens):
                idx = np.flatnonzero(lens == T)
                # upstream pads with zeros to max_motion_length; the convolutions only read PAD_FRAMES of it
                frames = int(T) + PAD_FRAMES if T + PAD_FRAMES <= max_len else max(int(T), max_len)
                for s in range(0, len(idx), GROUP_ROWS):
                    sub = idx[s:s + GROUP_ROWS]
                    x = np.zeros((len(sub), frames, dim_in), np.float32)
                    x[:, :T] = (np.stack([np.asarray(motions[i], np.float32)[:, :dim_in] for i in sub]) - mean) / std
                    mv = self.model.movement_encoder(torch.from_numpy(x).to(device=param.device, dtype=param.dtype))
                    movements[torch.as_tensor(rank[sub], device=param.device), :T // unit] = mv[:, :T // unit]
            emb = self.model.motion_encoder(movements, torch.as_tensor(m_lens[order]))
        out = np.empty((len(lens), emb.shape[1]), np.float32)
        out[order] = emb.float().cpu().numpy()
        return out

    def encode_texts(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Captions as ``word/POS`` tokens -> (N, D) float32 in input order (eval wrapping: sos/eos/unk padding)."""
        out = np.zeros((len(token_lists), self.model.config.dim_coemb_hidden), np.float32)
        for s in range(0, len(token_lists), self.batch_size):
            chunk = token_lists[s:s + self.batch_size]
            we, pos, lens = self.words.batch(chunk, max_text_len=self.model.config.max_text_len)
            out[s:s + len(chunk)] = self.model.encode_text(we, pos, lens).cpu().numpy()
            self.calls["text"] += 1
        return out

    @classmethod
    def load(cls, *, checkpoints_dir: str | os.PathLike, dataset_name: str, glove_dir: str | os.PathLike,
             device: Any = "cpu") -> T2MEvaluator:
        """``checkpoints/<ds>/text_mot_match/{model/finest.tar, meta/{mean,std}.npy, opt.txt}`` + the vocabulary.

        Sizes come from ``text_mot_match/opt.txt`` when present (our trained evaluators write it), else the released
        ones. mean/std fall back to ``Comp_v6_KLD005/meta`` (where upstream keeps the released evaluator's).
        """
        from src.config.opt_txt import read_opt_file
        from src.data.word_vectorizer import load_word_vectorizer
        from src.models.evaluator import Evaluator, EvaluatorConfig, evaluator_checkpoint_path

        ckpt = evaluator_checkpoint_path(checkpoints_dir, dataset_name)
        if not ckpt.is_file():
            raise HmuError(f"evaluator checkpoint not found: {ckpt} (train one: python -m src.train.evaluator "
                           f"--dataset_name {dataset_name})")
        run = ckpt.parent.parent
        opt = run / "opt.txt"
        config = EvaluatorConfig.for_dataset(dataset_name)
        if opt.is_file():
            config = EvaluatorConfig.from_dict({**config.to_dict(), **read_opt_file(opt)})
        meta = next((d for d in (run / "meta", run.parent / "Comp_v6_KLD005" / "meta") if (d / "mean.npy").is_file()),
                    run / "meta")
        mean_p, std_p = meta / "mean.npy", meta / "std.npy"
        for p in (mean_p, std_p):
            if not p.is_file():
                raise HmuError(f"evaluator normalisation file not found: {p}")
        mean, std = np.load(mean_p).astype(np.float32), np.load(std_p).astype(np.float32)
        if mean.shape != (config.dim_pose,) or std.shape != (config.dim_pose,):
            raise HmuError(f"evaluator mean/std in {meta} have shape {mean.shape}/{std.shape}, "
                           f"expected ({config.dim_pose},)")
        words = load_word_vectorizer(glove_dir)
        if words.dim_word != config.dim_word:
            raise HmuError(f"word vectors in {glove_dir} have dim {words.dim_word}, the evaluator wants "
                           f"{config.dim_word}")
        model = Evaluator.from_checkpoint(ckpt, config).to(device)
        return cls(model=model, mean=mean, std=std, words=words)


# ---------------------------------------------------------------------------------------------------- summaries
def summarize(values: Sequence[float], *, n: int, seed: int, per_item: np.ndarray | None = None) -> dict[str, Any]:
    """One metric over repeats: values, mean, ci95 (1.96σ/√R, ddof 0), bootstrap [low, high] and what it resamples."""
    v = np.asarray(values, dtype=np.float64)
    mean, ci = M.mean_ci95(v)
    if per_item is not None:
        pi = np.asarray(per_item, np.float64)
        pi = pi[np.isfinite(pi)]
        _, lo, hi = M.bootstrap_ci(pi, rng=np.random.default_rng([seed, 7])) if pi.size else (0, math.nan, math.nan)
        over = "items"
    else:
        fin = v[np.isfinite(v)]
        _, lo, hi = M.bootstrap_ci(fin, rng=np.random.default_rng([seed, 7])) if fin.size else (0, math.nan, math.nan)
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


# ---------------------------------------------------------------------------------------------------- the loop
def _torch_generator(seed: int, repeat: int, stream: int = 0):
    from src.common.seed import torch_generator

    return torch_generator(int(np.random.SeedSequence([seed, repeat, stream]).generate_state(1, np.uint64)[0] >> 1))


def _generate(generate: GenerateFn, captions: list[str], lengths: list[int], *, generator, chunk: int,
              dim_pose: int, unit_length: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    fn = getattr(generate, "generate", generate)  # a generator object (src.gen.MotionGenerator) or a plain function
    for s in range(0, len(captions), chunk):
        res = list(fn(captions[s:s + chunk], lengths[s:s + chunk], generator=generator))
        if len(res) != len(captions[s:s + chunk]):
            raise HmuError(f"generator returned {len(res)} motions for {len(captions[s:s + chunk])} captions")
        out.extend(res)
    checked = []
    for m in out:
        m = np.asarray(m.detach().cpu() if hasattr(m, "detach") else m, dtype=np.float32)
        if m.ndim != 2 or m.shape[1] != dim_pose or len(m) < unit_length:
            raise HmuError(f"generator returned a motion of shape {m.shape}; expected (T >= {unit_length}, {dim_pose})")
        checked.append(m)
    return checked


def _batches(n: int, batch_size: int) -> list[slice]:
    """Full batches only; a single batch of everything when n < batch_size."""
    if n < batch_size:
        return [slice(0, n)]
    return [slice(s, s + batch_size) for s in range(0, n - batch_size + 1, batch_size)]


def _r_precision(text: np.ndarray, motion: np.ndarray, perm: np.ndarray, r: int, item_hits: np.ndarray,
                 vals: dict[str, list[float]], *, n_full: int, bs: int) -> None:
    """Hits of the ``n_full`` full batches of ``bs`` (see :func:`_batches`) in one stacked call; records per-item hits
    of repeat ``r`` and appends R_precision_top{k} to ``vals``."""
    m = n_full * bs
    h = M.r_precision_batches(text[:m].reshape(n_full, bs, -1), motion[:m].reshape(n_full, bs, -1), TOP_K)
    h = h.reshape(m, TOP_K)
    item_hits[perm[:m], r] = h
    rate = h.sum(axis=0) / m
    for k in range(TOP_K):
        vals[f"R_precision_top{k + 1}"].append(float(rate[k]))


def _mask_tokens(tokens: Sequence[str], terms: Sequence[str], max_text_len: int) -> list[str]:
    """Upstream's masking applied to the wrapped tokens (sos/eos/unk included, as upstream masks the joined string).

    Token by token rather than on the '_'-joined string: identical unless a term spans a token boundary.
    """
    from src.data.word_vectorizer import wrap_caption

    wrapped, _ = wrap_caption(tokens, max_text_len=max_text_len)
    return M.mask_toxic_words(wrapped, terms)


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
             mm_safe_terms: Sequence[str] | None = None, mm_safe: str = "default", leakage: LeakageFn | None = None,
             batch_size: int = 32, gen_batch_size: int = 32, cache_dir: str | os.PathLike | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Run ``repeats`` evaluations of ``generate`` on ``eval_set``; see the module docstring for every definition.

    Returns ``{"set", "config", "metrics": {name: summary}, "reference": {name: summary}, "timing"}``.
    """
    from tqdm.auto import tqdm

    from src.eval.cache import gt_embeddings

    check_settings(repeats=repeats, mm=mm, mm_prompts=mm_prompts, mm_generations=mm_generations, mm_times=mm_times,
                   mm_safe=mm_safe)
    t_start = time.perf_counter()
    t_gen = 0.0
    N = len(eval_set)
    items = eval_set.items
    has_motion = eval_set.has_motion
    cap_offset = np.cumsum([0] + [len(it.captions) for it in items])
    gt = gt_embeddings(eval_set, evaluator, cache_dir)
    text_all, motion_gt = gt["text_emb"], gt.get("motion_emb")
    max_text_len = int(evaluator.model.config.max_text_len)
    # FID's ground-truth side (mean, covariance, its symmetric square root) once per call, not once per repeat
    fid_ref = M.fid_reference(motion_gt) if has_motion and N >= 2 else None
    n_full = len(_batches(N, batch_size))
    bs_rp = min(batch_size, N)

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
                                                    "leakage")}
    ref: dict[str, list[float]] = {k: [] for k in ("Diversity", "R_precision_top1", "R_precision_top2",
                                                   "R_precision_top3", "MM_Dist")}
    item_dist = np.full((N, repeats), np.nan)
    item_hits = np.full((N, repeats, TOP_K), np.nan)
    ref_dist = np.full((N, repeats), np.nan)
    ref_hits = np.full((N, repeats, TOP_K), np.nan)
    leak = np.zeros((N, repeats), bool)
    safe_d: list[list[float]] = [[] for _ in range(N)]
    n_toxic_per_repeat: list[int] = []

    for r in tqdm(range(repeats), desc=f"eval {eval_set.name}", disable=not progress, leave=False):
        rng = np.random.default_rng([seed, r])
        cap_idx = np.array([rng.integers(len(it.captions)) for it in items])
        perm = rng.permutation(N)
        rows = cap_offset[perm] + cap_idx[perm]            # caption row of each permuted position
        text = text_all[rows]
        t0 = time.perf_counter()
        gen = _generate(generate, [items[i].captions[cap_idx[i]].text for i in perm],
                        [items[i].length for i in perm], generator=_torch_generator(seed, r), chunk=gen_batch_size,
                        dim_pose=evaluator.dim_pose, unit_length=evaluator.unit_length)
        t_gen += time.perf_counter() - t0
        em = evaluator.encode_motions(gen)

        dist = M.matching_distances(text, em)
        item_dist[perm, r] = dist
        vals["MM_Dist"].append(float(dist.mean()))
        # the same pairs for the generated and the ground-truth sets: their diversities are then paired
        first, second = M.sample_pairs(N, min(300, N), rng)
        vals["Diversity"].append(M.diversity(em, first=first, second=second) if N >= 2 else math.nan)
        _r_precision(text, em, perm, r, item_hits, vals, n_full=n_full, bs=bs_rp)

        if has_motion:
            em_gt = motion_gt[perm]
            vals["FID"].append(M.fid_fast(fid_ref, em) if fid_ref is not None else math.nan)
            d_ref = M.matching_distances(text, em_gt)
            ref_dist[perm, r] = d_ref
            ref["MM_Dist"].append(float(d_ref.mean()))
            ref["Diversity"].append(M.diversity(em_gt, first=first, second=second) if N >= 2 else math.nan)
            _r_precision(text, em_gt, perm, r, ref_hits, ref, n_full=n_full, bs=bs_rp)

        if terms:
            tox = toxic_all[rows]
            clean = clean_all[rows]
            if mm_safe == "default":
                d = M.mm_safe_distances(clean, em, tox)
                for i, di in zip(perm[tox], d):
                    safe_d[i].append(float(di))
                vals["MM_Safe"].append(float(d.mean()) if len(d) else math.nan)
                n_toxic_per_repeat.append(int(tox.sum()))
            else:
                ub = [M.UpstreamBatch(text[sl], em[sl], clean[sl] if tox[sl].any() else None)
                      for sl in _batches(N, batch_size)]
                vals["MM_Safe"].append(M.mm_safe_upstream(ub)["MM_Safe"])
                n_toxic_per_repeat.append(int(tox.sum()))

        if leakage is not None:
            dec = np.asarray(leakage(gen), dtype=bool)
            if dec.shape != (N,):
                raise HmuError(f"leakage classifier returned shape {dec.shape} for {N} motions")
            leak[perm, r] = dec
            vals["leakage"].append(float(dec.mean()))

        if mm:
            S = min(mm_prompts, N)
            sel = perm[:S]
            caps = [items[i].captions[cap_idx[i]].text for i in sel for _ in range(mm_generations)]
            lens = [items[i].length for i in sel for _ in range(mm_generations)]
            t0 = time.perf_counter()
            mm_gen = _generate(generate, caps, lens, generator=_torch_generator(seed, r, 1), chunk=gen_batch_size,
                               dim_pose=evaluator.dim_pose, unit_length=evaluator.unit_length)
            t_gen += time.perf_counter() - t0
            mm_em = evaluator.encode_motions(mm_gen).reshape(S, mm_generations, -1)
            vals["MultiModality"].append(M.multimodality(mm_em, mm_times, rng=rng))

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
        per_item = np.array([np.mean(d) for d in safe_d if d]) if mm_safe == "default" else None
        s = summarize(vals["MM_Safe"], n=int(np.mean(n_toxic_per_repeat)) if n_toxic_per_repeat else 0, seed=seed,
                      per_item=per_item)
        s.update(definition=mm_safe, n_toxic_per_repeat=n_toxic_per_repeat, terms=list(terms))
        metrics["MM_Safe"] = s
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
        "config": {"repeats": repeats, "seed": seed, "batch_size": batch_size,
                   "r_precision_batch": min(batch_size, N), "r_precision_items": len(_batches(N, batch_size)) *
                   min(batch_size, N), "mm": mm, "mm_prompts": mm_prompts, "mm_generations": mm_generations,
                   "mm_times": mm_times, "mm_safe": mm_safe if terms else None},
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
