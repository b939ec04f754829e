"""Adversarial conditioning: projected gradient ascent in the text-feature space (B, cond_dim) for an input that makes
the (unlearned) model generate the concept again.

Objective (to maximise), per start point: the mean cosine similarity between the evaluator embedding of the motion the
model makes from ``x`` and the evaluator embeddings of forget training motions. Generation is discrete, so the gradient
goes through :meth:`AttackTarget.relaxed_motion` (one mask-predict step, straight-through code vectors, VQ decoder).

Constraint: ``x`` stays in an L2 ball of radius ``rho * scale`` around its start (a real prompt's features), where
``scale`` is the median nearest-neighbour distance between distinct real prompt features: the attack may move a
prompt by a fraction of the typical gap between two prompts, not anywhere. Steps: normalised gradient of length
``2.5 * radius / steps`` (Madry et al.'s rule), then projection; the best iterate of each start is kept.

Reported: leakage of REAL (discrete) generations at the found features and at the starts (same seeds), the objective
before/after, and how far the found features lie from the nearest real prompt features, in units of ``scale``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from src.common.errors import HmuError

from .scoring import Judge, proportion, rate_summary, target_device, torch_gen

log = logging.getLogger(__name__)

STREAM = 2
EmbedFn = Callable[[torch.Tensor, Sequence[int]], torch.Tensor]


def nn_scale(real: torch.Tensor) -> float:
    """Median distance from each real prompt feature to its nearest distinct other one (the typical prompt gap)."""
    x = torch.unique(real.detach().double(), dim=0)
    if len(x) < 2:
        raise HmuError("the adversarial attack needs at least two distinct real prompts to set its radius")
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    return float(d.min(dim=1).values.median())


def nearest_distance(x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """(S,) distance of each row of ``x`` to the nearest row of ``real``."""
    return torch.cdist(x.detach().double(), real.detach().double()).min(dim=1).values


def similarity(embed: EmbedFn, target, x: torch.Tensor, length: int, reference: torch.Tensor) -> torch.Tensor:
    """(S,) mean cosine similarity of the relaxed generation's embedding to the reference embeddings (M, E)."""
    e = F.normalize(embed(target.relaxed_motion(x, [length] * len(x)), [length] * len(x)), dim=-1)
    return (e @ F.normalize(reference, dim=-1).T).mean(dim=1)


def pgd(target, embed: EmbedFn, starts: torch.Tensor, reference: torch.Tensor, *, length: int, radius: float,
        steps: int, generator: torch.Generator, init: float = 0.5, progress: bool = False
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[float]]:
    """Maximise :func:`similarity` in the ball of ``radius`` around each start -> (best x, objective at start,
    objective at best, curve of the mean best objective per step)."""
    from src.common.progress import progress as progress_bar

    a = starts.detach().float()
    ref = reference.detach().float()
    noise = torch.randn(a.shape, generator=generator, dtype=a.dtype).to(a.device)
    x = a + init * radius * noise / noise.norm(dim=1, keepdim=True).clamp_min(1e-12)
    alpha = 2.5 * radius / max(steps, 1)
    with torch.no_grad():
        obj0 = similarity(embed, target, a, length, ref)
    best_x, best = a.clone(), obj0.clone()
    curve = [float(best.mean())]
    for _ in progress_bar(range(steps), desc="pgd", unit="step", enabled=progress):
        x = x.detach().requires_grad_(True)
        obj = similarity(embed, target, x, length, ref)
        (g,) = torch.autograd.grad(obj.sum(), x)
        with torch.no_grad():
            better = obj.detach() > best
            best_x[better], best[better] = x.detach()[better], obj.detach()[better]
            x = x + alpha * g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
            delta = x - a
            x = a + delta * (radius / delta.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
        curve.append(float(best.mean()))
    with torch.no_grad():  # the last step's point
        obj = similarity(embed, target, x, length, ref)
        better = obj > best
        best_x[better], best[better] = x[better], obj[better]
    curve[-1] = float(best.mean())
    return best_x, obj0, best, curve


def adversarial_attack(target, judge: Judge, embed: EmbedFn, *, starts: torch.Tensor, start_texts: Sequence[str],
                       reference: torch.Tensor, real: torch.Tensor, length: int, steps: int = 50, rho: float = 1.0,
                       samples: int = 8, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Run :func:`pgd` from ``starts`` (S, cond_dim) and judge ``samples`` real generations at each found point.

    ``reference``: (M, E) evaluator embeddings of forget training motions; ``real``: (P, cond_dim) features of real
    prompts (distance scale and nearest-prompt distances); ``length``: frames of every generation.
    """
    if len(starts) == 0:
        raise HmuError("the adversarial attack needs at least one start prompt")
    if steps < 0 or samples < 1 or rho <= 0:
        raise HmuError(f"--steps must be >= 0, samples >= 1 and --rho > 0 (got {steps}, {samples}, {rho})")
    length = max(target.unit_length, int(length) // target.unit_length * target.unit_length)
    scale = nn_scale(real)
    radius = rho * scale
    x, obj0, obj1, curve = pgd(target, embed, starts, reference, length=length, radius=radius, steps=steps,
                               generator=torch_gen(seed, STREAM, 0), progress=progress)

    def judge_at(feats: torch.Tensor) -> np.ndarray:
        out = np.zeros((len(feats), samples), bool)
        for r in range(samples):  # same generator stream for starts and found points: a paired comparison
            with torch.no_grad():
                g = torch_gen(seed, STREAM, 1, r, device=target_device(target))
                gen = target.generate(feats, [length] * len(feats), generator=g)
            out[:, r] = judge.concept_flags(gen)
        return out

    dec_found, dec_start = judge_at(x), judge_at(starts.detach().float())
    d_nn = nearest_distance(x, real).cpu().numpy() / scale
    d_start = (x - starts.detach().float()).norm(dim=1).double().cpu().numpy() / scale
    return {
        "attack": "adversarial",
        "leakage": rate_summary(dec_found, seed=seed),
        "leakage_at_start": rate_summary(dec_start, seed=seed),
        "starts_recovered": proportion(int((dec_found.mean(1) > 0.5).sum()), len(x)),
        "objective": {"start": float(obj0.mean()), "found": float(obj1.mean()), "curve": curve,
                      "definition": "mean cosine similarity of the relaxed generation's evaluator embedding to "
                                    "forget training motions' embeddings"},
        "distance": {"scale": scale, "radius": radius,
                     "nearest_real_rel": {"mean": float(d_nn.mean()), "max": float(d_nn.max()),
                                          "values": [float(v) for v in d_nn]},
                     "from_start_rel": {"mean": float(d_start.mean()), "max": float(d_start.max())},
                     "n_real": len(real),
                     "unit": "median nearest-neighbour distance between distinct real prompt features"},
        "per_start": [{"text": t, "rate_found": float(dec_found[i].mean()), "rate_start": float(dec_start[i].mean()),
                       "objective_start": float(obj0[i]), "objective_found": float(obj1[i]),
                       "nearest_real_rel": float(d_nn[i])} for i, t in enumerate(start_texts)],
        "config": {"steps": steps, "rho": rho, "samples": samples, "length": length, "seed": seed,
                   "n_starts": len(starts), "n_reference": len(reference)},
    }
