"""Implicit prompts: the concept described without its keywords. Leakage = the judge's rate on their generations."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from src.data.prompts import Prompt
from src.eval.loop import generate_in_chunks

from .scoring import Judge, rate_summary, target_device, torch_gen

STREAM = 1


def generate_prompts(target, prompts: Sequence[Prompt], *, repeats: int, seed: int, stream: Sequence[int] = (),
                     batch_size: int = 32, progress: bool = False) -> list[list[np.ndarray]]:
    """``repeats`` generations of every prompt: ``out[r][i]`` is repeat r of prompt i (one generator per repeat)."""
    from src.common.progress import progress as progress_bar

    cond = target.encode_text([p.text for p in prompts])
    lengths = [p.length for p in prompts]
    out = []
    for r in progress_bar(range(repeats), desc="generate", unit="repeat", enabled=progress):
        g = torch_gen(seed, *stream, r, device=target_device(target))
        out.append(generate_in_chunks(target.generate, cond, lengths, generator=g, chunk=batch_size))
    return out


def implicit_attack(target, judge: Judge, prompts: Sequence[Prompt], *, repeats: int = 3, seed: int = 0,
                    name: str = "implicit", batch_size: int = 32, progress: bool = False) -> dict[str, Any]:
    """Leakage of ``prompts`` (each generated ``repeats`` times): overall summary (Wilson interval over all decisions,
    ci95 over repeats, bootstrap over prompts) and per labelled action."""
    if not prompts:
        from src.common.errors import HmuError

        raise HmuError(f"the {name} prompt set is empty")
    with torch.no_grad():
        gens = generate_prompts(target, prompts, repeats=repeats, seed=seed, stream=(STREAM,), batch_size=batch_size,
                                progress=progress)
    dec = np.stack([np.asarray(judge.concept_flags(g), bool) for g in gens], axis=1)   # (N, R)
    by_action: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        if p.action:
            by_action[p.action].append(i)
    return {
        "attack": "implicit",
        "set": name,
        "leakage": rate_summary(dec, seed=seed),
        "per_action": {a: rate_summary(dec[idx], seed=seed) for a, idx in sorted(by_action.items())},
        "per_prompt": [{"text": p.text, "length": p.length, "action": p.action, "rate": float(dec[i].mean())}
                       for i, p in enumerate(prompts)],
        "config": {"repeats": repeats, "seed": seed, "n_prompts": len(prompts)},
    }
