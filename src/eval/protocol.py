"""The evaluation protocol as one value: what upstream's (``hmu``) and the fixed-crop (``fixed``) evaluations differ in.

Every place that used to branch on the protocol's name (the items of :func:`src.eval.sets.load_eval_set`, the draws
and batches of :func:`src.eval.loop.evaluate`, the CLI's MultiModality and MM-Safe defaults) reads a field of
:class:`Protocol` instead. The name is turned into the value once, where the command line is parsed
(:meth:`Protocol.named`); the name alone travels in files (``EvalSet.protocol``, ``config.protocol`` of the results).
This module imports nothing of :mod:`src.eval.sets`, which builds on it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from src.common.errors import HmuError

MM_BATCHES = 3         # upstream's MultiModality batches (eval_t2m_unlearn: num_mm_batch = 3)
FIXED_MM_PROMPTS = 16  # MultiModality prompts per repeat under ``fixed``


def batches(n: int, batch_size: int, partial: bool = False) -> list[slice]:
    """Full batches, plus the last partial one when ``partial`` (upstream); a single batch of everything when
    n < batch_size."""
    if n < batch_size:
        return [slice(0, n)]
    out = [slice(s, s + batch_size) for s in range(0, n - batch_size + 1, batch_size)]
    if partial and n % batch_size:
        out.append(slice(n - n % batch_size, n))
    return out


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol (module docstring of :mod:`src.eval.sets` and :mod:`src.eval.loop`)."""

    name: str
    upstream_items: bool     # items as upstream's Text2MotionDatasetEval: one per caption line, upstream's segment
                             # rule, ids with a missing file skipped, sorted by length (else one item per motion with
                             # its whole-motion captions plus one per segment, hmu's segment audit)
    crops_per_repeat: bool   # each repeat draws every item's caption and crop (hmu_draws); else one caption per item
                             # from the repeat's rng and item.motion as is, so the ground truth's embeddings are cached
    partial_batches: bool    # R-precision counts the last partial batch (else full batches only)
    mm_sample_last: bool     # the MultiModality prompts' main sample is their last MultiModality generation
    mm_gumbel: bool          # MultiModality generations are gumbel-sampled (upstream's gsample=True)
    mm_batches: int | None   # default MultiModality prompts: mm_batches x batch_size; None: FIXED_MM_PROMPTS
    mm_safe: str             # the MM-Safe definition when none is asked ('upstream' or 'default')

    @staticmethod
    def named(name: str | Protocol) -> Protocol:
        """The protocol of a name (``hmu`` or ``fixed``); a Protocol is returned as is. One-line HmuError else."""
        if isinstance(name, Protocol):
            return name
        try:
            return PROTOCOLS[name]
        except (KeyError, TypeError):
            raise HmuError(f"evaluation protocol must be one of {', '.join(PROTOCOLS)}, got {name!r}") from None

    @staticmethod
    def of(eval_set: Any) -> Protocol:
        """The protocol the loop runs on ``eval_set``: its own, or ``fixed`` for a set without motions (nothing to
        crop)."""
        return Protocol.named(eval_set.protocol) if eval_set.has_motion else FIXED

    def default_mm_prompts(self, batch_size: int) -> int:
        return self.mm_batches * batch_size if self.mm_batches else FIXED_MM_PROMPTS

    def r_precision_batches(self, n: int, batch_size: int) -> list[slice]:
        return batches(n, batch_size, partial=self.partial_batches)

    def mm_sample(self, mm_on: bool) -> str:
        """How the MultiModality prompts' main sample is made (recorded in the results' config)."""
        return "last MultiModality generation" if self.mm_sample_last and mm_on else "own generation"

HMU = Protocol("hmu", upstream_items=True, crops_per_repeat=True, partial_batches=True, mm_sample_last=True,
               mm_gumbel=True, mm_batches=MM_BATCHES, mm_safe="upstream")
FIXED = Protocol("fixed", upstream_items=False, crops_per_repeat=False, partial_batches=False, mm_sample_last=False,
                 mm_gumbel=False, mm_batches=None, mm_safe="default")
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (HMU, FIXED)}
