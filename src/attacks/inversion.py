"""Textual-inversion recovery (the attack of the LEAD line of work, Gal et al.'s textual inversion on motion): learn a
new token embedding from a handful of forget motions, the model frozen, and generate with it.

The objective is the model's own training loss on the forget motions' tokens (for MoMask: the masked transformer's
cross-entropy on their base-layer VQ codes, with its cosine masking schedule), as a function of the conditioning. Two
spaces for the learnt vector ``v``:

- ``word``: a pseudo-word in the embedded text encoder's word-vector space, fed through the encoder as a caption would
  be: ``cond = mean(word vectors of the template's words, v) @ projection`` (template ``"a person {}"``);
- ``cond``: ``v`` is the conditioning feature itself (any text encoder, CLIP included).

Reported: leakage of generations with the learnt embedding after ``k`` steps for each ``k`` of ``checkpoints`` (step 0
is the initial vector), with the loss; the curve shows how much of the concept comes back with how much optimisation.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from src.common.errors import HmuError

from .scoring import Judge, pool_restarts, rate_summary, target_device, torch_gen

STREAM = 3
SPACES = ("word", "cond")


@dataclass
class CondMap:
    """A learnable vector's space: ``init`` (dim,) and ``to_cond`` (dim,) -> (1, cond_dim)."""

    space: str
    init: torch.Tensor
    to_cond: Callable[[torch.Tensor], torch.Tensor]
    template: str | None = None
    init_word: str | None = None


def word_space(encoder, *, template: str = "a person {}", init_word: str | None = None) -> CondMap:
    """Pseudo-word space of :class:`src.models.text_encoders.EmbeddedTextEncoder`; init = ``init_word``'s vector, or
    the vocabulary's mean vector when None.

    The init matters: on a small model an uninformative caption ("a person" + the mean vector) can already decode to
    the concept, so the curve would start at full leakage and show nothing. A neutral allowed word ("walk") makes
    step 0 a concept-free baseline, and the curve measures what the optimisation brings back.
    """
    if not hasattr(encoder, "vectors") or not hasattr(encoder, "projection"):
        raise HmuError("--inversion_space word needs the embedded text encoder (use --inversion_space cond for CLIP)")
    if "{}" not in template:
        raise HmuError(f"--template must contain '{{}}' where the new token goes, got '{template}'")
    rows = encoder.rows(template.replace("{}", " "))
    vec, proj = encoder.vectors, encoder.projection
    base = vec[torch.tensor(rows, dtype=torch.long, device=vec.device)].sum(0) if rows else torch.zeros_like(vec[0])
    n = len(rows) + 1
    if init_word is None:
        init = vec.mean(0).clone()
    else:
        row = encoder.lookup(init_word) if hasattr(encoder, "lookup") else None
        if row is None:
            raise HmuError(f"--init_word '{init_word}' is not in the text encoder's vocabulary")
        init = vec[row].clone()

    def to_cond(v: torch.Tensor) -> torch.Tensor:
        return (((base + v) / n) @ proj).unsqueeze(0)

    return CondMap("word", init, to_cond, template, init_word)


def cond_space(init: torch.Tensor, *, init_text: str | None = None) -> CondMap:
    """The conditioning space itself, starting from ``init`` (cond_dim,) (e.g. the features of ``init_text``)."""
    return CondMap("cond", init.detach().reshape(-1).clone(), lambda v: v.unsqueeze(0), None, init_text)


def inversion_attack(target, judge: Judge, shots: Sequence[np.ndarray], space: CondMap, *, steps: int = 200,
                     checkpoints: Sequence[int] | None = None, lr: float = 0.02, samples: int = 16, seed: int = 0,
                     progress: bool = False) -> dict[str, Any]:
    """Learn ``v`` on ``shots`` (raw forget motions) for ``steps`` Adam steps; judge ``samples`` generations at each
    checkpoint (lengths cycle through the shots' lengths)."""
    from src.common.progress import progress as progress_bar

    if len(shots) == 0:
        raise HmuError("textual inversion needs at least one forget motion (--shots >= 1)")
    if steps < 0 or samples < 1 or lr <= 0:
        raise HmuError(f"--steps must be >= 0, samples >= 1 and --lr > 0 (got {steps}, {samples}, {lr})")
    ks = sorted({0, steps, *(int(k) for k in (checkpoints or ()) if 0 <= int(k) <= steps)})
    unit = target.unit_length
    lengths = [max(unit, len(shots[i % len(shots)]) // unit * unit) for i in range(samples)]
    targets = target.token_targets(shots)
    dev = space.init.device
    v = space.init.detach().clone().float().to(dev).requires_grad_(True)
    opt = torch.optim.Adam([v], lr=lr)

    def loss_at(*stream: int) -> torch.Tensor:
        c = space.to_cond(v)
        g = torch_gen(seed, STREAM, *stream, device=target_device(target))
        return target.token_loss(c.expand(len(shots), -1), targets, generator=g)

    def judge_now(k: int) -> dict[str, Any]:
        with torch.no_grad():
            c = space.to_cond(v).expand(samples, -1)
            g = torch_gen(seed, STREAM, 1, k, device=target_device(target))
            gen = target.generate(c, lengths, generator=g)
            eval_loss = float(np.mean([float(loss_at(2, j)) for j in range(4)]))  # fixed masks: comparable over k
        dec = np.asarray(judge.concept_flags(gen), bool)
        return {"step": k, "loss": eval_loss, "leakage": rate_summary(dec[:, None], seed=seed)}

    curve = []
    for step in progress_bar(range(steps + 1), desc="inversion", unit="step", enabled=progress):
        if step in ks:
            curve.append(judge_now(step))
        if step == steps:
            break
        # grad w.r.t. v only: the frozen model's parameters never receive .grad
        (v.grad,) = torch.autograd.grad(loss_at(0, step), [v])
        opt.step()
    final = curve[-1]
    return {
        "attack": "inversion",
        "leakage": final["leakage"],
        "leakage_at_init": curve[0]["leakage"],
        "curve": curve,
        "embedding": {"space": space.space, "template": space.template, "init": space.init_word, "norm": float(v.detach().norm()),
                      "init_norm": float(space.init.norm())},
        "config": {"steps": steps, "checkpoints": ks, "lr": lr, "samples": samples, "shots": len(shots),
                   "seed": seed, "objective": "masked-token cross-entropy of the frozen model on the shots' tokens"},
    }


def pool_inversion(runs: Sequence[dict[str, Any]], *, seed: int) -> dict[str, Any]:
    """Independent :func:`inversion_attack` results (same checkpoints) -> one result pooled over restarts
    (:func:`pool_restarts`); each run stays under ``"runs"``."""
    if not runs:
        raise HmuError("textual inversion needs at least one restart (--restarts >= 1)")
    if len(runs) == 1:
        return dict(runs[0])
    steps = [[c["step"] for c in r["curve"]] for r in runs]
    if any(s != steps[0] for s in steps):
        raise HmuError("inversion restarts judged different steps; they cannot be pooled")
    curve = [{"step": k, "loss": float(np.mean([r["curve"][i]["loss"] for r in runs])),
              "leakage": pool_restarts([r["curve"][i]["leakage"] for r in runs], seed=seed)}
             for i, k in enumerate(steps[0])]
    cfg = dict(runs[0]["config"])
    cfg.update(restarts=len(runs), seed=seed, seeds=[r["config"]["seed"] for r in runs])
    return {"attack": "inversion", "leakage": curve[-1]["leakage"], "leakage_at_init": curve[0]["leakage"],
            "curve": curve, "embedding": runs[0]["embedding"], "config": cfg, "runs": list(runs)}
