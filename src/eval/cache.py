"""Ground-truth embeddings computed once: keyed by a hash of the evaluation data and of the evaluator, kept on disk.

Ground-truth motions and captions do not change between repeats, models or methods, yet upstream re-encodes them in
every repeat. Here they are encoded once per (data, evaluator) pair and stored as ``<cache_dir>/<key>.npz``:

- ``motion_emb`` (N_items, D): one row per evaluation item (its cropped ground-truth motion), or absent for prompt sets;
- ``text_emb`` (N_captions, D): one row per (item, caption), items in order, captions in file order.

The key is the sha256 of the data actually fed to the evaluator (item keys, cropped float32 motions, caption tokens)
together with :attr:`T2MEvaluator.key` (weights, mean/std, word vectors, config). Any change to either gives a new
file; stale files are never read. An in-process memo avoids even the disk read on a second call.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from src.common.hashing import hash_arrays

if TYPE_CHECKING:  # pragma: no cover
    from src.eval.sets import EvalSet
    from src.models.t2m_evaluator import T2MEvaluator

log = logging.getLogger(__name__)

CACHE_KIND = "evaluation ground-truth embeddings"
CACHE_VERSION = 3  # 3: checked header (src.common.npz_cache); 2: motions encoded as if zero-padded (batch-independent)
_MEMO: dict[str, dict[str, np.ndarray]] = {}
_LOCK = threading.Lock()


def data_key(eval_set: EvalSet) -> str:
    """sha256 of what the evaluator sees of ``eval_set``: item keys, lengths, cropped motions and caption tokens."""
    h = hashlib.sha256(f"hmu-eval-data-v{CACHE_VERSION}".encode())
    for it in eval_set.items:
        h.update(f"\0{it.key}\0{it.length}\0".encode())
        if it.motion is not None:
            hash_arrays(h, np.asarray(it.motion, np.float32))
        for c in it.captions:
            h.update(("\1" + " ".join(c.tokens)).encode())
    return h.hexdigest()


def full_cache_key(eval_set: EvalSet, evaluator: T2MEvaluator, motions: bool = True) -> str:
    """sha256 of the data key, the evaluator key and what is cached: kept whole in the file's header."""
    extra = "" if motions else ":text-only"
    return hashlib.sha256(f"{data_key(eval_set)}:{evaluator.key}{extra}".encode()).hexdigest()


def cache_key(eval_set: EvalSet, evaluator: T2MEvaluator, motions: bool = True) -> str:
    """The file name's key: the first 32 hex digits of :func:`full_cache_key`."""
    return full_cache_key(eval_set, evaluator, motions)[:32]


def default_cache_dir(results_dir: str | os.PathLike) -> Path:
    """Where the evaluation keeps its cache unless told: ``<results_dir>/.cache/eval``, beside the results and never
    inside a checkpoint run (source runs may be read-only; the report skips hidden folders)."""
    return Path(results_dir) / ".cache" / "eval"


def clear_memo() -> None:
    with _LOCK:
        _MEMO.clear()


def gt_embeddings(eval_set: EvalSet, evaluator: T2MEvaluator, cache_dir: str | os.PathLike | None = None, *,
                  motions: bool = True) -> dict[str, np.ndarray]:
    """``{'text_emb': (N_captions, D), 'motion_emb': (N_items, D) (sets with motions, ``motions=True`` only)}`` from
    memo, disk or the evaluator, in that order. ``cache_dir=None`` keeps them in memory only. The ``hmu`` protocol
    passes ``motions=False``: its ground truth is a new crop in every repeat."""
    fkey = full_cache_key(eval_set, evaluator, motions)
    key = fkey[:32]
    with _LOCK:
        hit = _MEMO.get(key)
    if hit is not None:
        return hit
    path = Path(cache_dir) / f"{key}.npz" if cache_dir is not None else None
    out: dict[str, np.ndarray] | None = None
    want_motion = motions and eval_set.has_motion
    dim = int(evaluator.model.config.dim_coemb_hidden)
    n_caps = sum(len(it.captions) for it in eval_set.items)
    if path is not None:
        from src.common.npz_cache import read_cache

        def check(z: dict[str, np.ndarray]) -> str | None:
            expect = {"text_emb": (n_caps, dim), **({"motion_emb": (len(eval_set.items), dim)} if want_motion else {})}
            got = {k: tuple(v.shape) for k, v in z.items()}
            return None if got == expect else f"arrays {got}, expected {expect}"

        # a damaged, stale or foreign file is recomputed (one warning naming it), never trusted
        out = read_cache(path, kind=CACHE_KIND, key=fkey, check=check)
        if out is not None:
            log.info("ground-truth embeddings of %s read from %s", eval_set.name, path)
    if out is None:
        tokens = [c.tokens for it in eval_set.items for c in it.captions]
        out = {"text_emb": evaluator.encode_texts(tokens)}
        if motions and eval_set.has_motion:
            out["motion_emb"] = evaluator.encode_motions([it.motion for it in eval_set.items])
        from src.common import dist

        if path is not None and dist.is_main():  # under torchrun rank 0 alone writes the cache
            from src.common.npz_cache import write_cache

            try:
                write_cache(path, out, kind=CACHE_KIND, key=fkey)
                log.info("ground-truth embeddings of %s cached in %s", eval_set.name, path)
            except OSError as exc:  # a cache that cannot be written (full disk, read-only) costs time, not results
                log.warning("could not write the evaluation cache %s (%s); continuing without it", path,
                            exc.strerror or exc)
    with _LOCK:
        _MEMO[key] = out
    return out
