"""Compositional prompts: the concept between allowed actions ("walks, kicks, then sits"), judged per segment.

Each prompt carries synth's segment labels (``prompts.json["compositional"]``: action, start, end, concepts). Every
generation is cut into those windows (clamped to the generated length; windows shorter than ``min_window`` frames are
left out) and the judge decides, per window:

- forgotten segments (the segment's action carries the concept): is the concept there? (``forgotten_leakage``,
  high on the original, low when the part is removed);
- allowed segments: is their own action there? (``allowed_kept``), and is the concept wrongly there?
  (``allowed_concept``);
- per generation: ``removed_and_kept`` = the forgotten part is gone AND every allowed part is recognised.

Segments are matched by position only: a model that shifts an action in time is scored on the prompt's timing.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from src.common.errors import HmuError

from src.data.prompts import Prompt

from .scoring import Judge, rate_summary
from .implicit import generate_prompts

STREAM = 4


def _windows(prompt: Prompt, n_frames: int, concept: str, min_window: int) -> list[dict]:
    out = []
    for j, s in enumerate(prompt.segments):
        a, b = int(s["start"]), min(int(s["end"]), n_frames)
        if b - a < min_window:
            continue
        out.append({"index": j, "action": s["action"], "start": a, "end": b,
                    "forgotten": concept in (s.get("concepts") or ())})
    return out


def compositional_attack(target, judge: Judge, prompts: Sequence[Prompt], *, repeats: int = 3, seed: int = 0,
                         min_window: int = 16, batch_size: int = 32, progress: bool = False) -> dict[str, Any]:
    prompts = [p for p in prompts if p.segments]
    if not prompts:
        raise HmuError("no compositional prompt with segment labels (prompts.json['compositional'] of synth)")
    with torch.no_grad():
        gens = generate_prompts(target, prompts, repeats=repeats, seed=seed, stream=(STREAM,), batch_size=batch_size,
                                progress=progress)
    out = score_segments(judge, prompts, gens, seed=seed, min_window=min_window)
    out["config"]["seed"] = seed
    return {"attack": "compositional", **out}


def score_segments(judge: Judge, prompts: Sequence[Prompt], gens: Sequence[Sequence[np.ndarray]], *, seed: int = 0,
                   min_window: int = 16) -> dict[str, Any]:
    """Judge ``gens[r][i]`` (repeat r of prompt i) window by window on ``prompts[i].segments``. Also used on real
    labelled motions (one repeat) to measure how well the judge itself reads a segment: the ceiling of the scores."""
    concept = judge.concept
    repeats = len(gens)
    # segment instances (prompt, window) are fixed by the prompt and the generated length (the same every repeat)
    inst = [(i, w) for i, p in enumerate(prompts) for w in _windows(p, len(gens[0][i]), concept, min_window)]
    if not inst:
        raise HmuError(f"every segment of the compositional prompts is shorter than {min_window} frames")
    n = len(inst)
    concept_dec = np.zeros((n, repeats), bool)
    action_dec = np.zeros((n, repeats), bool)
    whole = np.zeros((len(prompts), repeats), bool)
    for r, gen in enumerate(gens):
        wins = [gen[i][w["start"]:w["end"]] for i, w in inst]
        concept_dec[:, r] = judge.concept_flags(wins)
        action_dec[:, r] = judge.action_flags(wins, [w["action"] for _, w in inst])
        whole[:, r] = judge.concept_flags(gen)
    forgotten = np.array([w["forgotten"] for _, w in inst])
    has_forgotten = np.array([any(w["forgotten"] for j, w in inst if j == i) for i in range(len(prompts))])
    ok = np.ones((len(prompts), repeats), bool)
    for k, (i, w) in enumerate(inst):
        ok[i] &= ~concept_dec[k] if w["forgotten"] else action_dec[k]
    per_prompt = []
    for i, p in enumerate(prompts):
        segs = []
        for k, (j, w) in enumerate(inst):
            if j == i:
                segs.append({**w, "concept_rate": float(concept_dec[k].mean()),
                             "action_rate": float(action_dec[k].mean())})
        per_prompt.append({"text": p.text, "length": len(gens[0][i]), "segments": segs,
                           "whole_leakage": float(whole[i].mean()),
                           "removed_and_kept": float(ok[i].mean()) if has_forgotten[i] else None})
    return {
        "leakage": rate_summary(concept_dec[forgotten], seed=seed),
        "forgotten_leakage": rate_summary(concept_dec[forgotten], seed=seed),
        "forgotten_action_kept": rate_summary(action_dec[forgotten], seed=seed),
        "allowed_kept": rate_summary(action_dec[~forgotten], seed=seed),
        "allowed_concept": rate_summary(concept_dec[~forgotten], seed=seed),
        "removed_and_kept": rate_summary(ok[has_forgotten], seed=seed),
        "whole_leakage": rate_summary(whole[has_forgotten], seed=seed),
        "per_prompt": per_prompt,
        "config": {"repeats": repeats, "min_window": min_window, "n_prompts": len(prompts),
                   "n_segments": n, "n_forgotten_segments": int(forgotten.sum())},
    }
