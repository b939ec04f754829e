"""Gated task-vector negation (SafeMo's *Gated* MMU) at generation time: a strong -alpha on prompts a gate flags, a
weak one elsewhere, dispatched per prompt.

The run (written by ``python -m src.methods.taskvec --mode gated``) holds the ORIGINAL masked transformer as its
checkpoint, the adapter beside it (``model/lora_adapter.pt``, :mod:`src.models.lora`) and the gate
(``model/gate.pt``, :func:`save_gate`); :func:`src.gen.generate.load_generator` sees the gate file and wraps the
generator in a :class:`GatedGenerator`. Both files are loaded strictly (unknown format, missing keys or shapes
that do not fit the model are one-line errors).

Gates (``kind``): ``keyword`` (the concept's keyword rule, :func:`src.data.keywords.line_matcher`, on the caption),
``text`` (a logistic regression on the text encoder's features of the caption, trained on forget vs retain
captions: :func:`fit_text_gate`), ``either`` (flagged when either flags). Every decision is kept
(:attr:`GatedGenerator.decisions`: caption, keyword, text, flagged) so an evaluation can record what the gate chose.

Dispatch: within one ``generate`` call the flagged prompts are generated first (the adapter at runtime scale
``-strong``), then the others (``-weak``; 0 = the original model exactly), each group as one call of the wrapped
generator with the same ``torch.Generator``; the motions go back in the callers' order. So a batch whose prompts
are all flagged is exactly the Static model's output at ``strong``, and one with none flagged the weak model's.
Outside ``generate`` the adapter stays at ``-strong``: code that runs the masked transformer itself (the attacks'
white-box losses) sees the Static model, which is what a gate-bypassing attacker faces at worst.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from src.common.errors import HmuError

ADAPTER_FILE = "lora_adapter.pt"   # the task vector's adapter in a run's model/ (src.methods.taskvec writes it)
GATE_FILE = "gate.pt"
GATE_FORMAT = "hmu-gate"
GATE_VERSION = 1
GATE_KINDS = ("either", "keyword", "text")


@dataclass
class Gate:
    """Which prompts get the strong alpha. ``keywords``/``match``: the keyword rule; ``weight`` (D,) and ``bias``:
    the text classifier, flagging when ``sigmoid(features @ weight + bias) > 0.5`` (None: no text gate)."""

    kind: str
    keywords: tuple[str, ...] = ()
    match: str = "word"
    weight: Any = None      # torch.Tensor (D,) or None
    bias: float = 0.0
    info: dict = field(default_factory=dict)   # training record of the text classifier

    def __post_init__(self) -> None:
        if self.kind not in GATE_KINDS:
            raise HmuError(f"gate must be one of {', '.join(GATE_KINDS)}, got {self.kind!r}")
        if self.kind in ("keyword", "either") and not self.keywords:
            raise HmuError(f"a {self.kind} gate needs the concept's keywords")
        if self.kind in ("text", "either") and self.weight is None:
            raise HmuError(f"a {self.kind} gate needs a trained text classifier")

    def keyword_flags(self, captions: Sequence[str]) -> list[bool]:
        from src.data.keywords import line_matcher

        hit = line_matcher(list(self.keywords), self.match)
        return [bool(hit(c)) for c in captions]

    def text_scores(self, features) -> Any:
        """(B, D) text features -> (B,) probabilities of the concept."""
        import torch

        w = self.weight.to(device=features.device, dtype=torch.float32)
        return torch.sigmoid(features.float() @ w + float(self.bias))

    def decide(self, captions: Sequence[str], features=None) -> list[dict]:
        """One record per caption: ``keyword``/``text`` (None when that gate is not used) and ``flagged``."""
        kw = self.keyword_flags(captions) if self.kind in ("keyword", "either") else [None] * len(captions)
        if self.kind in ("text", "either"):
            if features is None:
                raise HmuError("the text gate needs the captions' text features")
            tx = [bool(p > 0.5) for p in self.text_scores(features).tolist()]
        else:
            tx = [None] * len(captions)
        return [{"caption": c, "keyword": k, "text": t, "flagged": bool(k) or bool(t)}
                for c, k, t in zip(captions, kw, tx)]

    def to_dict(self) -> dict[str, Any]:
        import torch

        return {"format": GATE_FORMAT, "version": GATE_VERSION, "kind": self.kind, "keywords": list(self.keywords),
                "match": self.match, "weight": None if self.weight is None else self.weight.detach().cpu().float(),
                "bias": float(self.bias), "info": dict(self.info), "dtype": str(torch.float32)}


def fit_text_gate(forget, retain, *, steps: int = 300, lr: float = 0.1, l2: float = 1e-3) -> tuple[Any, float, dict]:
    """Logistic regression of forget (1) vs retain (0) text features (N, D) -> (weight (D,), bias, info).

    Full-batch gradient descent (Adam) from zero, each class weighted by half over its count (the forget set is the
    small one), L2 ``l2`` on the weight; deterministic (no random draw). ``info``: training accuracy per class."""
    import torch

    x = torch.cat([forget.float(), retain.float()]).detach().cpu()
    y = torch.cat([torch.ones(len(forget)), torch.zeros(len(retain))])
    if len(forget) == 0 or len(retain) == 0:
        raise HmuError("the text gate needs forget and retain captions")
    sw = torch.where(y > 0, 0.5 / len(forget), 0.5 / len(retain))
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    for _ in range(steps):
        logits = x @ w + b
        loss = (sw * torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")).sum()
        loss = loss + l2 * (w * w).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = (x @ w + b) > 0
        info = {"train_recall_forget": float(pred[y > 0].float().mean()),
                "train_specificity_retain": float((~pred[y == 0]).float().mean()),
                "n_forget": len(forget), "n_retain": len(retain), "steps": steps, "lr": lr, "l2": l2,
                "loss": float(loss.detach())}
    return w.detach(), float(b.detach()), info


def save_gate(path: str | os.PathLike, gate: Gate, *, strong: float, weak: float) -> None:
    from src.common.io import atomic_torch_save

    atomic_torch_save({**gate.to_dict(), "strong_alpha": float(strong), "weak_alpha": float(weak)}, path)


GATE_KEYS = {"format", "version", "kind", "keywords", "match", "weight", "bias", "info", "dtype", "strong_alpha",
             "weak_alpha"}


def read_gate(path: str | os.PathLike, *, dim: int | None = None) -> tuple[Gate, float, float]:
    """``save_gate``'s file -> (gate, strong alpha, weak alpha), strictly (format, keys, the weight's size ``dim``)."""
    from src.common.io import torch_load

    obj = torch_load(path, what="task-vector gate")
    if not isinstance(obj, dict) or obj.get("format") != GATE_FORMAT:
        raise HmuError(f"{path} is not an hmu gate file (no format={GATE_FORMAT!r})")
    if obj.get("version") != GATE_VERSION:
        raise HmuError(f"{path}: gate file version {obj.get('version')} is not supported (expected {GATE_VERSION})")
    if set(obj) != GATE_KEYS:
        missing, extra = sorted(GATE_KEYS - set(obj)), sorted(set(obj) - GATE_KEYS)
        raise HmuError(f"{path}: gate file keys do not match (missing {missing}, unexpected {extra})")
    w = obj["weight"]
    if w is not None and (w.ndim != 1 or (dim is not None and w.shape[0] != dim)):
        raise HmuError(f"{path}: text-gate weight has shape {tuple(w.shape)}, expected ({dim},)")
    strong, weak = float(obj["strong_alpha"]), float(obj["weak_alpha"])
    if not (math.isfinite(strong) and math.isfinite(weak)) or strong <= 0 or weak < 0:
        raise HmuError(f"{path}: alphas must be finite with strong > 0 and weak >= 0, got {strong}, {weak}")
    gate = Gate(kind=obj["kind"], keywords=tuple(obj["keywords"]), match=obj["match"], weight=w,
                bias=float(obj["bias"]), info=dict(obj["info"]))
    return gate, strong, weak


class GatedGenerator:
    """A generator whose masked transformer carries the task-vector adapter: per prompt the adapter runs at
    ``-strong`` when ``gate`` flags the caption, else at ``-weak`` (module docstring). Everything else (VQ,
    residual transformer, sampling, attributes) is the wrapped generator's."""

    OWN = ("inner", "gate", "strong", "weak", "decisions")

    def __init__(self, inner, gate: Gate, *, strong: float, weak: float) -> None:
        from src.models.lora import adapters, set_scale

        if not adapters(inner.mask):
            raise HmuError("GatedGenerator: the masked transformer has no LoRA adapter")
        for k, v in (("inner", inner), ("gate", gate), ("strong", float(strong)), ("weak", float(weak)),
                     ("decisions", [])):
            object.__setattr__(self, k, v)
        # what a caller that uses the masked transformer directly (not through generate) gets: the strong negation,
        # never the adapter's own +1 (the concept amplified); generate sets the scale per prompt group
        set_scale(inner.mask, -self.strong)

    def __getattr__(self, name: str):
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def __setattr__(self, name: str, value) -> None:
        """Sampling settings (``batch_size``, ``gumbel_sample``, ...) go to the wrapped generator."""
        if name in self.OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.inner, name, value)

    def __copy__(self):
        """A copy whose sampling settings can change without touching this one (the models stay shared)."""
        import copy

        new = object.__new__(type(self))
        for k in self.OWN:
            object.__setattr__(new, k, getattr(self, k))
        object.__setattr__(new, "inner", copy.copy(self.inner))
        object.__setattr__(new, "decisions", self.decisions)
        return new

    def sampling(self) -> dict[str, Any]:
        return {**self.inner.sampling(), "gate": self.gate.kind, "strong_alpha": self.strong,
                "weak_alpha": self.weak}

    def flags(self, captions: Sequence[str]) -> list[bool]:
        """The gate's decision per caption (recorded in :attr:`decisions`)."""
        import torch

        feats = None
        if self.gate.kind in ("text", "either"):
            with torch.no_grad():
                feats = self.inner.text_encoder.encode(list(captions)).float()
        rec = self.gate.decide(list(captions), feats)
        self.decisions.extend(rec)
        return [r["flagged"] for r in rec]

    def generate_coded(self, captions: Sequence[str], lengths: Sequence[int | None] | None = None, *, generator):
        from src.models.lora import lora_scale

        captions = list(captions)
        if lengths is not None and len(lengths) != len(captions):
            raise HmuError(f"{len(captions)} captions but {len(lengths)} lengths")
        flagged = self.flags(captions)
        feats: list[Any] = [None] * len(captions)
        codes: list[Any] = [None] * len(captions)
        for want, alpha in ((True, self.strong), (False, self.weak)):
            rows = [i for i, f in enumerate(flagged) if f == want]
            if not rows:
                continue
            with lora_scale(self.inner.mask, -alpha):
                f, c = self.inner.generate_coded([captions[i] for i in rows],
                                                 None if lengths is None else [lengths[i] for i in rows],
                                                 generator=generator)
            for i, fi, ci in zip(rows, f, c):
                feats[i], codes[i] = fi, ci
        return feats, codes

    def generate(self, captions: Sequence[str], lengths: Sequence[int | None] | None = None, *, generator):
        return self.generate_coded(captions, lengths, generator=generator)[0]


def load_gated(inner, run_dir: str | os.PathLike) -> GatedGenerator:
    """Wrap a generator loaded from a gated task-vector run: its adapter added to ``inner.mask`` (strictly) and its
    gate read (strictly)."""
    from pathlib import Path

    from src.models.lora import add_lora, load_lora_state_dict, read_lora

    model_dir = Path(run_dir) / "model"
    adapter = model_dir / ADAPTER_FILE
    if not adapter.is_file():
        raise HmuError(f"gated task-vector run {run_dir} has {GATE_FILE} but no {ADAPTER_FILE}")
    cfg, state, _ = read_lora(adapter)
    device = next(inner.mask.parameters()).device
    mask = add_lora(inner.mask, cfg).to(device).eval()
    load_lora_state_dict(mask, state, where=str(adapter))
    inner.mask = mask
    dim = getattr(inner.text_encoder, "dim", None)
    gate, strong, weak = read_gate(model_dir / GATE_FILE, dim=dim)
    return GatedGenerator(inner, gate, strong=strong, weak=weak)


__all__ = ["ADAPTER_FILE", "GATE_FILE", "GATE_KINDS", "Gate", "GatedGenerator", "fit_text_gate", "load_gated",
           "read_gate", "save_gate"]
