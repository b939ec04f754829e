"""LCR (latent code replacement): find the VQ codes that forget motions use far more than retain motions, and
overwrite those codebook rows with a safe code plus noise, so the decoder can no longer produce the concept.

Pure core (this module): ``count_codes`` -> ``select_codes`` -> ``replace_codes``. Any codebook size, any number of
quantizer layers. Code collection (encoding the splits) and the CLI live elsewhere.

Selection rules
---------------
``"upstream"`` (Mamiglia/hmu ``topk_codes``): the union of the top-k of ``kf / (kr + 1e-8)`` and the top-k of
``(kf / Σkf) / (kr / Σkr + 1e-8)`` over per-sequence counts ``kf``, ``kr``. It returns between k and 2k codes, and any
code the retain rows never use scores ~1e8 x its forget count, so codes seen in one or two forget rows and nowhere else
(rare codes, i.e. noise) outrank codes that most forget rows use and few retain rows do.

``"ratio"`` (default, ours): rank codes by a one-sided lower confidence bound of the log rate ratio between the
fraction of forget sequences and the fraction of retain sequences that contain the code,

    pf = (kf + a) / (nf + 2a),  pr = (kr + a) / (nr + 2a)                    (a = 0.5: Jeffreys-style smoothing)
    score = log(pf / pr) - z * sqrt(1/(kf+a) - 1/(nf+2a) + 1/(kr+a) - 1/(nr+2a))   (Katz log risk-ratio s.e.)

with ``z = Φ⁻¹(1 - 0.05 / nb_code)`` (3.30 for 512 codes: a 5% family-wise level over the whole codebook, since every
code is tested; at z = 1.645 about 5% of the 512 codes would pass by chance)
and keep codes with ``score > log(threshold)`` (threshold 1: enriched at the chosen confidence) and a forget support
``kf / nf >= min_support``, at most ``k`` of them, best first. Why: rates make the two sets comparable whatever their
sizes (the forget set is much smaller); the confidence bound ranks a code seen in 1 of 12 forget rows and 0 retain
rows below one seen in 10 of 12 forget rows and 5 of 60 retain rows, which is the one that carries the concept; the
threshold lets the selection return fewer than ``k`` codes when few are really enriched, instead of always k to 2k.
Rows that repeat the same motion (upstream's 20 random crops) are not independent: pass ``repeats`` so the s.e. is
computed on per-motion counts (counts and sizes divided by ``repeats``).

Default (threshold 1, at most 16 codes): chosen on ``synth`` against ground truth; the sweep behind the choice and
what it rests on are in ``docs/results/lcr_sweep/README.md`` (rendered into README.md's LCR section).

Replacement (``replace_codes``), as upstream's ``main``: ``target = codebook_i[dest]`` for each edited layer i, and each
selected row of layer i becomes ``target + N(0, 1) * std_i * alpha`` (``std_i`` the unbiased std of the whole original
codebook i, noise drawn from the given ``torch.Generator``, one (n_codes, code_dim) draw per layer in layer order).
With ``orth=True`` the noise step is REPLACED by removing from each selected row its component along
``d = mean(selected rows) / ||mean||``: ``row - alpha (row·d) d``; the destination code is then unused.
"""
from __future__ import annotations


import copy
import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist

import numpy as np
import torch
from torch import nn

from src.common.errors import HmuError

from src.methods.edit_targets import codebook_layers

SELECT_RULES = ("ratio", "upstream")


# ---------------------------------------------------------------- counting

def count_codes(codes, *, nb_code: int, mask=None, chunk_rows: int = 4096) -> np.ndarray:
    """Codes (N, T) int in [0, nb_code) -> (nb_code,) int64: the number of rows (sequences) that contain each code.

    ``mask`` (N, T) bool marks valid positions (False = padding, ignored). Vectorised: a (rows, nb_code) presence
    table per chunk of rows (bounded memory), no Python loop over rows.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise HmuError(f"codes must be a 2-D (sequences, positions) array, got shape {codes.shape}")
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise HmuError(f"codes must be integers, got {codes.dtype}")
    if nb_code < 1:
        raise HmuError(f"nb_code must be >= 1, got {nb_code}")
    width = nb_code + 1  # column nb_code collects masked positions and is dropped
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != codes.shape:
            raise HmuError(f"mask shape {mask.shape} does not match codes shape {codes.shape}")
        codes = np.where(mask, codes, nb_code)
        valid = codes[mask]
    else:
        valid = codes
    if valid.size and (valid.min() < 0 or valid.max() >= nb_code):
        raise HmuError(f"code indices must lie in [0, {nb_code}), found [{valid.min()}, {valid.max()}]")
    counts = np.zeros(width, dtype=np.int64)
    chunk_rows = max(1, min(chunk_rows, codes.shape[0]))
    seen = np.zeros(chunk_rows * width, dtype=np.uint8)  # reused: a cache-sized presence table
    offsets = (np.arange(chunk_rows, dtype=np.int64) * width)[:, None]
    for start in range(0, codes.shape[0], chunk_rows):
        block = codes[start:start + chunk_rows]
        n = block.shape[0]
        table = seen[: n * width]
        table[:] = 0
        table[(offsets[:n] + block).ravel()] = 1
        counts += np.add.reduce(table.reshape(n, width), axis=0, dtype=np.int32)  # <= chunk_rows per chunk
    return counts[:nb_code]


# ---------------------------------------------------------------- selection

def _check_counts(forget_counts, retain_counts):
    kf = np.asarray(forget_counts, dtype=np.float64)
    kr = np.asarray(retain_counts, dtype=np.float64)
    if kf.ndim != 1 or kf.shape != kr.shape:
        raise HmuError(f"forget and retain counts must be 1-D of the same length, got {kf.shape} and {kr.shape}")
    return kf, kr


def _check_k(k, nb_code):
    if k is not None and not 1 <= int(k) <= nb_code:
        raise HmuError(f"--code_prune {k} must be between 1 and the codebook size {nb_code}")


def upstream_scores(forget_counts, retain_counts) -> tuple[np.ndarray, np.ndarray]:
    """Upstream's two scores (freqs, ratios), as in ``topk_codes``."""
    kf, kr = _check_counts(forget_counts, retain_counts)
    freqs = kf / (kr + 1e-8)
    ratios = (kf / (kf.sum() + 1e-8)) / (kr / (kr.sum() + 1e-8) + 1e-8)
    return freqs, ratios


def select_codes_upstream(forget_counts, retain_counts, k: int = 16) -> np.ndarray:
    """Upstream ``topk_codes``: sorted union of the top-k by freqs and the top-k by ratios (k to 2k codes).

    Ties at the k-th place follow numpy's default (unstable) argsort, as upstream.
    """
    freqs, ratios = upstream_scores(forget_counts, retain_counts)
    _check_k(k, freqs.shape[0])
    return np.unique(np.concatenate([np.argsort(-freqs)[:k], np.argsort(-ratios)[:k]])).astype(np.int64)


def ratio_scores(forget_counts, retain_counts, *, n_forget: int, n_retain: int, z: float | None = None,
                 smoothing: float = 0.5, repeats: int = 1) -> np.ndarray:
    """Lower confidence bound of the log rate ratio forget/retain per code, (nb_code,) float64; see module docstring.

    ``z`` None: the one-sided 5% quantile corrected for testing every code, ``Φ⁻¹(1 - 0.05 / nb_code)`` (3.30 at 512).
    """
    kf, kr = _check_counts(forget_counts, retain_counts)
    if z is None:
        z = NormalDist().inv_cdf(1 - 0.05 / kf.shape[0])
    if n_forget < 1 or n_retain < 1:
        raise HmuError(f"need at least one forget and one retain sequence, got {n_forget} and {n_retain}")
    if (kf > n_forget).any() or (kr > n_retain).any():
        raise HmuError("a code count exceeds the number of sequences (counts must be per-sequence, see count_codes)")
    if repeats < 1:
        raise HmuError(f"repeats must be >= 1, got {repeats}")
    a = smoothing
    kf, kr, nf, nr = kf / repeats, kr / repeats, n_forget / repeats, n_retain / repeats
    log_rr = np.log((kf + a) / (nf + 2 * a)) - np.log((kr + a) / (nr + 2 * a))
    se = np.sqrt(np.maximum(1 / (kf + a) - 1 / (nf + 2 * a) + 1 / (kr + a) - 1 / (nr + 2 * a), 0.0))
    return log_rr - z * se


def select_codes_ratio(forget_counts, retain_counts, *, n_forget: int, n_retain: int, k: int | None = 16,
                       threshold: float = 1.0, min_support: float = 0.05, z: float | None = None,
                       smoothing: float = 0.5,
                       repeats: int = 1) -> np.ndarray:
    """Our default rule: codes whose rate-ratio lower bound exceeds ``threshold`` and whose forget support is at least
    ``min_support``, best first, at most ``k`` (None: no cap); returned sorted. May be empty (nothing enriched)."""
    scores = ratio_scores(forget_counts, retain_counts, n_forget=n_forget, n_retain=n_retain, z=z,
                          smoothing=smoothing, repeats=repeats)
    _check_k(k, scores.shape[0])
    if threshold <= 0:
        raise HmuError(f"--threshold must be > 0 (a rate ratio), got {threshold}")
    support = np.asarray(forget_counts, dtype=np.float64) / n_forget
    ok = (scores > math.log(threshold)) & (support >= min_support)
    order = np.argsort(-np.where(ok, scores, -np.inf), kind="stable")[: int(ok.sum())]
    if k is not None:
        order = order[:k]
    return np.sort(order).astype(np.int64)


def select_codes(forget_counts, retain_counts, *, rule: str = "ratio", k: int | None = 16,
                 threshold: float | None = None, n_forget: int | None = None, n_retain: int | None = None,
                 **ratio_kw) -> np.ndarray:
    """Dispatch ``--select upstream|ratio`` with ``--code_prune k`` / ``--threshold``; returns sorted code indices."""
    if rule == "upstream":
        if threshold is not None:
            raise HmuError("--threshold applies to --select ratio only (upstream's rule takes --code_prune)")
        if k is None:
            raise HmuError("--select upstream needs --code_prune")
        return select_codes_upstream(forget_counts, retain_counts, k)
    if rule == "ratio":
        if n_forget is None or n_retain is None:
            raise HmuError("--select ratio needs the number of forget and retain sequences")
        return select_codes_ratio(forget_counts, retain_counts, n_forget=n_forget, n_retain=n_retain, k=k,
                                  threshold=1.0 if threshold is None else threshold, **ratio_kw)
    raise HmuError(f"unknown --select {rule!r} (choose {', '.join(SELECT_RULES)})")


# ---------------------------------------------------------------- replacement

def _check_selection(layer_codes: Mapping[int, Sequence[int]], n_layers: int, nb_code: int) -> dict[int, list[int]]:
    clean: dict[int, list[int]] = {}
    for layer, codes in sorted(layer_codes.items()):
        codes = [int(c) for c in np.asarray(codes).ravel()]
        if not 0 <= int(layer) < n_layers:
            raise HmuError(f"quantizer layer {layer} does not exist (the model has {n_layers})")
        if len(codes) >= nb_code:
            raise HmuError(f"{len(codes)} codes selected in layer {layer} but the codebook has {nb_code}: "
                           "nothing would be left to replace them with")
        bad = [c for c in codes if not 0 <= c < nb_code]
        if bad:
            raise HmuError(f"code indices {bad[:5]} in layer {layer} are outside the codebook [0, {nb_code})")
        if len(set(codes)) != len(codes):
            raise HmuError(f"duplicate code indices in the selection for layer {layer}")
        if codes:
            clean[int(layer)] = codes
    if not clean:
        raise HmuError("the code selection is empty: no code to replace (lower --threshold or raise --code_prune)")
    return clean


def pick_destination(dest_code_idx: int, censored: set[int], *, nb_code: int, generator: torch.Generator | None = None,
                     rng: np.random.RandomState | None = None) -> int:
    """The safe code: ``dest_code_idx`` unless censored in any edited layer; then another code, uncensored everywhere.

    With ``rng`` (a ``np.random.RandomState``): upstream's loop ``while dest in censored: dest = rng.randint(nb_code)``
    (upstream used the global numpy RNG; same sequence for the same seed). Otherwise one uniform draw among the
    uncensored codes from ``generator`` (which then also feeds the noise).
    """
    if not 0 <= dest_code_idx < nb_code:
        raise HmuError(f"--dest_code_idx {dest_code_idx} is outside the codebook [0, {nb_code})")
    if dest_code_idx not in censored:
        return dest_code_idx
    free = np.setdiff1d(np.arange(nb_code), np.fromiter(censored, dtype=np.int64))
    if free.size == 0:
        raise HmuError("every code is selected: no uncensored destination code is left")
    if rng is not None:
        dest = dest_code_idx
        while dest in censored:
            dest = int(rng.randint(nb_code))
        return dest
    return int(free[torch.randint(free.size, (1,), generator=generator).item()])


@torch.no_grad()
def replace_codes(vq_model: nn.Module, layer_codes: Mapping[int, Sequence[int]], *, dest_code_idx: int = 0,
                  alpha: float = 1.0, orth: bool = False, generator: torch.Generator | None = None,
                  rng: np.random.RandomState | None = None) -> nn.Module:
    """Return a copy of ``vq_model`` whose selected codebook rows are replaced; see the module docstring.

    ``layer_codes`` {quantizer layer: [code, ...]}: the rows to replace per layer (upstream: ``{0: codes}``).
    ``generator``: the noise (a CPU generator works whatever the model's device; None = a fresh unseeded one would
    not be reproducible, so it is required unless ``orth``). ``rng``: see :func:`pick_destination`.
    """
    layers = codebook_layers(vq_model)
    nb_code = layers[0].codebook.shape[0]
    selection = _check_selection(layer_codes, len(layers), nb_code)
    if not orth and generator is None:
        raise HmuError("replace_codes needs a torch.Generator for the noise (seed it for reproducibility)")
    if alpha < 0:
        raise HmuError(f"--alpha must be >= 0, got {alpha}")
    censored = {c for codes in selection.values() for c in codes}
    if not orth:
        dest = pick_destination(dest_code_idx, censored, nb_code=nb_code, generator=generator, rng=rng)
    new = copy.deepcopy(vq_model)
    new_layers = codebook_layers(new)
    if len({id(l.codebook) for l in new_layers}) < len(new_layers) and len(selection) > 1:
        raise HmuError("the quantizer layers share one codebook: edit a single layer")
    for i, codes in selection.items():
        book = new_layers[i].codebook
        idx = torch.as_tensor(codes, dtype=torch.long, device=book.device)
        rows = book[idx]
        if orth:
            d = rows.mean(dim=0)
            d = d / d.norm()
            rows = rows - alpha * (rows @ d)[:, None] * d
        else:
            std = book.std()  # whole layer, unbiased, before the edit (upstream: codebooks.std(dim=(1, 2)))
            noise = torch.randn(rows.shape, generator=generator, dtype=book.dtype,
                                device=generator.device).to(book.device)
            rows = book[dest].expand_as(rows) + noise * std * alpha
        book[idx] = rows
    return new


def lcr_checkpoint(vq_model: nn.Module, layer_codes: Mapping[int, Sequence[int]], **meta) -> dict:
    """The saved form of an LCR edit: upstream's keys (``vq_model`` state dict, ``removed_codes`` per layer) plus
    ``method`` and whatever ``meta`` records (arguments, source checkpoint hash)."""
    n = max(layer_codes) + 1 if layer_codes else 0
    removed = [[int(c) for c in layer_codes.get(i, [])] for i in range(n)]
    return {"ep": -1, "vq_model": vq_model.state_dict(), "removed_codes": removed, "method": "lcr", **meta}
