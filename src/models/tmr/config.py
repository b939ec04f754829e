"""Typed TMR configs that read and write the ``model`` block of upstream's run-dir ``config.json``."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from src.common.errors import HmuError
from src.config.sizes import TransformerSizes

_ENCODER_TARGET = "src.model.ACTORStyleEncoder"
_DECODER_TARGET = "src.model.ACTORStyleDecoder"
_TMR_TARGET = "src.model.TMR"


def _pick(cls, d: Mapping[str, Any], where: str):
    names = {f.name for f in fields(cls)}
    unknown = sorted(k for k in d if k not in names and k != "_target_")
    if unknown:
        raise HmuError(f"{where}: unknown TMR config keys {unknown[:5]}")
    picked = {k: v for k, v in d.items() if k in names}
    return _actor(cls, **picked) if issubclass(cls, _ActorSizes) else cls(**picked)


# upstream TMR's released sizes (the transformer fields live in src.config.sizes.TransformerSizes)
TMR_SIZES = TransformerSizes(latent_dim=256, ff_size=1024, num_layers=6, num_heads=4, dropout=0.1)


@dataclass(frozen=True)
class _ActorSizes(TransformerSizes):
    """The sizes an ACTOR-style encoder and decoder share: the transformer's (defaults: :data:`TMR_SIZES`) and the
    feature size ``nfeats``."""

    nfeats: int
    activation: str = "gelu"


def _actor(cls, **kw):
    """``cls(...)`` with TMR's released sizes where ``kw`` gives none (TransformerSizes' defaults are MoMask's)."""
    return cls(**{**TMR_SIZES.size_kwargs(), **kw})


@dataclass(frozen=True)
class EncoderConfig(_ActorSizes):
    """ACTOR-style encoder sizes; ``vae`` adds a logvar token beside the mu token."""

    vae: bool = True


@dataclass(frozen=True)
class DecoderConfig(_ActorSizes):
    """ACTOR-style decoder sizes (one latent token as memory, one PE query per frame)."""


def _default_lmd() -> dict[str, float]:
    return {"recons": 1.0, "latent": 1.0e-5, "kl": 1.0e-5, "contrastive": 0.1}


@dataclass(frozen=True)
class TMRConfig:
    """The whole model: two encoders, one decoder, loss weights and the contrastive settings.

    Defaults are the released HumanML3D model except ``temperature``: upstream's class default is 0.7 while every
    released config sets 0.1, so we default to the released value.
    """

    motion_encoder: EncoderConfig = field(default_factory=lambda: _actor(EncoderConfig, nfeats=263))
    text_encoder: EncoderConfig = field(default_factory=lambda: _actor(EncoderConfig, nfeats=768))
    motion_decoder: DecoderConfig = field(default_factory=lambda: _actor(DecoderConfig, nfeats=263))
    vae: bool = True
    fact: float | None = None
    sample_mean: bool = False
    lmd: dict[str, float] = field(default_factory=_default_lmd)
    lr: float = 1e-4
    temperature: float = 0.1
    threshold_selfsim: float = 0.80
    threshold_selfsim_metrics: float = 0.95

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "TMR config") -> TMRConfig:
        """Build from upstream's resolved ``cfg.model`` dict (``_target_`` keys are checked, then dropped)."""
        if not isinstance(d, Mapping):
            raise HmuError(f"{where}: 'model' must be a mapping")
        target = d.get("_target_", _TMR_TARGET)
        if target != _TMR_TARGET:
            raise HmuError(f"{where}: model _target_ {target!r} is not {_TMR_TARGET} (TEMOS runs are not supported)")
        parts = {}
        for name, sub_cls, sub_target in (("motion_encoder", EncoderConfig, _ENCODER_TARGET),
                                          ("text_encoder", EncoderConfig, _ENCODER_TARGET),
                                          ("motion_decoder", DecoderConfig, _DECODER_TARGET)):
            if name not in d:
                raise HmuError(f"{where}: missing model.{name}")
            sub = d[name]
            if sub.get("_target_", sub_target) != sub_target:
                raise HmuError(f"{where}: model.{name}._target_ {sub['_target_']!r} is not {sub_target}")
            parts[name] = _pick(sub_cls, sub, f"{where} model.{name}")
        rest = {k: v for k, v in d.items() if k not in parts}
        cfg = _pick(cls, rest, f"{where} model")
        return cls(**{**{f.name: getattr(cfg, f.name) for f in fields(cls)}, **parts})

    def to_dict(self) -> dict[str, Any]:
        """Upstream's ``cfg.model`` layout, with ``_target_`` keys, so upstream can instantiate it."""
        out: dict[str, Any] = {"_target_": _TMR_TARGET}
        for name in ("motion_encoder", "text_encoder"):  # upstream's key order: vae right after nfeats
            enc = getattr(self, name)
            out[name] = {"_target_": _ENCODER_TARGET, "nfeats": enc.nfeats, "vae": enc.vae, **asdict(enc)}
        out["motion_decoder"] = {"_target_": _DECODER_TARGET, **asdict(self.motion_decoder)}
        for f in fields(self):
            if f.name not in out:
                v = getattr(self, f.name)
                if (f.name, v) in (("fact", None), ("sample_mean", False)):
                    continue  # upstream's configs never write these defaults
                out[f.name] = dict(v) if isinstance(v, dict) else v
        return out
