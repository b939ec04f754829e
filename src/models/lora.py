"""LoRA (Hu et al. 2021) adapters for any torch model, with a runtime scale, a pure merge and strict adapter files.

An adapter adds ``s * (alpha / rank) * B @ A`` to a weight ``W`` (out, in): ``A`` (rank, in) drawn like LoRA's
reference code (``kaiming_uniform(a=sqrt(5))``: uniform in +-1/sqrt(in)), ``B`` (out, rank) zero, so a fresh adapter
is the identity. ``s`` is a *runtime* scale, 1 while training: task-vector negation (SafeMo's -alpha) is
``s = -alpha`` and nothing else changes, and :func:`merge` folds any ``s`` into a plain model.

Where the adapters go (:func:`add_lora`): the attention q/k/v/out projections of every ``nn.MultiheadAttention`` and
the feed-forward linears (``linear1``/``linear2`` of ``nn.TransformerEncoderLayer``), which is every transformer
block of MoMask's masked and residual transformers and of BAMM (all built by ``momask.transformer._encoder``).

``nn.MultiheadAttention`` needs care, and this is what is done about it: it does not call its projections as
modules. q/k/v are the three row blocks of one fused ``in_proj_weight`` (3E, E), and even ``out_proj`` (an
``nn.Linear``) is only read for its ``.weight``/``.bias`` by ``F.multi_head_attention_forward`` (and by the fused
fast path). So a wrapper module put in place of ``out_proj`` is silently bypassed (its adapter never acts and never
trains), and there is no q/k/v module to wrap at all. Here the attention adapters are weight parametrizations
(``torch.nn.utils.parametrize``): ``in_proj_weight`` becomes ``W + coef * [B_q A_q; B_k A_k; B_v A_v]`` (each of q,
k, v its own rank-r pair, so it is three LoRAs, not one rank-r update of the fused matrix) and ``out_proj.weight``
becomes ``W + coef * B_o A_o``. Whatever reads the weight sees the adapted one. The price: adapter dropout (on the
adapter's input) cannot be applied to a weight, so attention adapters have none; the feed-forward adapters are
:class:`LoRALinear` wrappers (called as modules) and do apply it. In eval mode dropout is the identity, so the
merged model equals the adapted one either way.

Pure functions: :func:`add_lora` and :func:`merge` return new models and leave their argument as it was.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from src.common.errors import HmuError

FORMAT = "hmu-lora"
VERSION = 1
KINDS = ("q", "k", "v", "out", "ff")


@dataclass(frozen=True, kw_only=True)
class LoRAConfig:
    """Adapter sizes and where they go. Defaults: SafeMo's (rank 16, alpha 16, dropout 0.05, all of q/k/v/out/ff)."""

    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.05
    targets: tuple[str, ...] = KINDS
    ff_names: tuple[str, ...] = ("linear1", "linear2")   # names of the feed-forward nn.Linear children to adapt

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise HmuError(f"LoRA rank must be >= 1, got {self.rank}")
        if not math.isfinite(self.alpha) or self.alpha <= 0:
            raise HmuError(f"LoRA alpha must be a positive number, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise HmuError(f"LoRA dropout must lie in [0, 1), got {self.dropout}")
        bad = [t for t in self.targets if t not in KINDS]
        if bad or not self.targets:
            raise HmuError(f"LoRA targets must be a non-empty subset of {', '.join(KINDS)}, got {self.targets}")
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "ff_names", tuple(self.ff_names))

    @property
    def coef(self) -> float:
        """alpha / rank: the factor on B @ A at runtime scale 1."""
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LoRAConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise HmuError(f"unknown LoRA config keys: {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _init_a(rank: int, fan_in: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A (rank, fan_in), uniform in +-1/sqrt(fan_in) (= kaiming_uniform with a = sqrt(5), LoRA's init)."""
    bound = 1.0 / math.sqrt(fan_in)
    where = generator.device if generator is not None else like.device   # a CUDA generator draws on CUDA
    u = torch.rand((rank, fan_in), generator=generator, dtype=torch.float64, device=where)
    return ((2 * u - 1) * bound).to(dtype=like.dtype, device=like.device)


class _Adapter(nn.Module):
    """What every adapter shares: its config and the runtime scale s (not saved: it is how the adapter is applied)."""

    def __init__(self, cfg: LoRAConfig):
        super().__init__()
        self.cfg = cfg
        self.scale = 1.0

    def extra_repr(self) -> str:
        return f"rank={self.cfg.rank}, alpha={self.cfg.alpha}, scale={self.scale}"


class LoRALinear(_Adapter):
    """``base(x) + s * alpha/rank * B(A(dropout(x)))`` around a frozen ``nn.Linear``; (..., in) -> (..., out).

    It has no ``weight`` attribute on purpose: code that reads a linear's weight directly (instead of calling it)
    would silently skip the adapter, so it fails loudly instead. :func:`merge` turns it back into an ``nn.Linear``.
    """

    def __init__(self, base: nn.Linear, cfg: LoRAConfig, *, generator: torch.Generator | None = None):
        super().__init__(cfg)
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        self.base = base
        self.lora_A = nn.Parameter(_init_a(cfg.rank, base.in_features, base.weight, generator))
        self.lora_B = nn.Parameter(base.weight.new_zeros(base.out_features, cfg.rank))
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def delta_weight(self, scale: float | None = None) -> torch.Tensor:
        """``s * alpha/rank * B @ A`` (out, in); ``scale`` overrides the runtime s."""
        s = self.scale if scale is None else float(scale)
        return (s * self.cfg.coef) * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.scale == 0.0:
            return out
        return out + (self.scale * self.cfg.coef) * F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)


class LoRAWeightDelta(_Adapter):
    """A parametrization ``W -> W + s * alpha/rank * [B_1 A_1; B_2 A_2; ...]`` of a weight that is read directly.

    ``parts``: the row blocks of W in order, ``(kind, rows)``; kinds not in ``cfg.targets`` get no adapter (zero
    rows). For MultiheadAttention's fused ``in_proj_weight`` the parts are q, k, v (E rows each).
    """

    def __init__(self, weight: torch.Tensor, parts: tuple[tuple[str, int], ...], cfg: LoRAConfig, *,
                 generator: torch.Generator | None = None):
        super().__init__(cfg)
        if sum(r for _, r in parts) != weight.shape[0]:
            raise ValueError(f"parts {parts} do not cover the weight's {weight.shape[0]} rows")
        self.parts = tuple(parts)
        self.param_order: tuple[str, ...] = ()   # the parametrized module's parameter names before (for merge)
        for kind, rows in self.parts:
            if kind in cfg.targets:
                self.register_parameter(f"lora_A_{kind}",
                                        nn.Parameter(_init_a(cfg.rank, weight.shape[1], weight, generator)))
                self.register_parameter(f"lora_B_{kind}", nn.Parameter(weight.new_zeros(rows, cfg.rank)))

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.parts if k in self.cfg.targets)

    def delta_weight(self, scale: float | None = None) -> torch.Tensor:
        s = self.scale if scale is None else float(scale)
        blocks = []
        for kind, rows in self.parts:
            if kind in self.cfg.targets:
                blocks.append(getattr(self, f"lora_B_{kind}") @ getattr(self, f"lora_A_{kind}"))
            else:
                blocks.append(None)
        ref = next(b for b in blocks if b is not None)
        full = torch.cat([b if b is not None else ref.new_zeros(rows, ref.shape[1])
                          for b, (_, rows) in zip(blocks, self.parts)], dim=0)
        return (s * self.cfg.coef) * full

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.scale == 0.0:
            return weight
        return weight + self.delta_weight()


# ------------------------------------------------------------------------------------------------ adding
def _attention_sites(model: nn.Module) -> Iterator[tuple[str, nn.MultiheadAttention]]:
    for name, mod in model.named_modules():
        if isinstance(mod, nn.MultiheadAttention):
            yield name, mod


def add_lora(model: nn.Module, cfg: LoRAConfig = LoRAConfig(), *,
             generator: torch.Generator | None = None) -> nn.Module:
    """A copy of ``model`` with adapters on its attention q/k/v/out and feed-forward linears (``cfg.targets``).

    Every original parameter of the copy is frozen; only the adapters train (``lora_parameters``). ``A`` is drawn
    from ``generator`` in module order. Raises HmuError when the model has nowhere to put an adapter.
    """
    new = copy.deepcopy(model)
    flags = {n: p.requires_grad for n, p in new.named_parameters()}
    for p in new.parameters():
        p.requires_grad_(False)
    added = 0
    attn_kinds = [k for k in ("q", "k", "v") if k in cfg.targets]
    for name, mha in list(_attention_sites(new)):
        if attn_kinds:
            if not mha._qkv_same_embed_dim or mha.in_proj_weight is None:
                raise HmuError(f"LoRA: attention {name!r} has separate q/k/v weights (kdim/vdim != embed_dim); "
                               "only the fused in_proj_weight is supported")
            e = mha.embed_dim
            delta = LoRAWeightDelta(mha.in_proj_weight, (("q", e), ("k", e), ("v", e)), cfg, generator=generator)
            delta.param_order = tuple(mha._parameters)
            parametrize.register_parametrization(mha, "in_proj_weight", delta)
            added += len(attn_kinds)
        if "out" in cfg.targets:
            w = mha.out_proj.weight
            delta = LoRAWeightDelta(w, (("out", w.shape[0]),), cfg, generator=generator)
            delta.param_order = tuple(mha.out_proj._parameters)
            parametrize.register_parametrization(mha.out_proj, "weight", delta)
            added += 1
    if "ff" in cfg.targets:
        for name, mod in list(new.named_modules()):
            for child_name, child in list(mod.named_children()):
                if child_name in cfg.ff_names and type(child) is nn.Linear:
                    setattr(mod, child_name, LoRALinear(child, cfg, generator=generator).train(child.training))
                    added += 1
    if added == 0:
        raise HmuError(f"LoRA: {type(model).__name__} has no attention or feed-forward layer to adapt "
                       f"(targets {', '.join(cfg.targets)})")
    new._lora_requires_grad = flags  # restored by merge()
    return new


def adapters(model: nn.Module) -> list[tuple[str, _Adapter]]:
    """Every adapter of an adapted model, (module name, adapter), in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _Adapter)]


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The adapters' parameters (what an optimizer of an adapted model gets)."""
    return [p for _, a in adapters(model) for n, p in a.named_parameters(recurse=False) if n.startswith("lora_")]


def set_scale(model: nn.Module, scale: float) -> None:
    """Set the runtime scale s of every adapter (1 = as trained, -alpha = negated task vector, 0 = off)."""
    if not math.isfinite(float(scale)):
        raise HmuError(f"LoRA scale must be finite, got {scale}")
    found = adapters(model)
    if not found:
        raise HmuError("set_scale: the model has no LoRA adapters")
    for _, a in found:
        a.scale = float(scale)


@contextmanager
def lora_scale(model: nn.Module, scale: float) -> Iterator[nn.Module]:
    """``with lora_scale(model, -2.0): ...`` runs with s = -2 and restores every adapter's scale afterwards."""
    before = [(a, a.scale) for _, a in adapters(model)]
    set_scale(model, scale)
    try:
        yield model
    finally:
        for a, s in before:
            a.scale = s


# ------------------------------------------------------------------------------------------------ merging
def _unparametrize(mod: nn.Module) -> None:
    """Fold a module's LoRA parametrizations into plain parameters, in place.

    Not ``parametrize.remove_parametrizations``: a deep copy of a parametrized module shares its generated class
    with the original, and that function deletes the property from the class, which would break the model that
    ``merge`` was given. Here only this instance changes: its class goes back to the original one.
    """
    plists = mod.parametrizations
    if not all(len(plist) == 1 and isinstance(plist[0], LoRAWeightDelta) for plist in plists.values()):
        raise HmuError(f"merge: {type(mod).__name__} has parametrizations other than LoRA; cannot fold them")
    values = {name: getattr(mod, name).detach().clone() for name in plists.keys()}
    flags = {name: plist.original.requires_grad for name, plist in plists.items()}
    order = next(iter(plists.values()))[0].param_order
    del mod._modules["parametrizations"]
    mod.__class__ = mod.__class__.__bases__[0]
    for name, value in values.items():
        mod.register_parameter(name, nn.Parameter(value, requires_grad=flags[name]))
    if set(order) == set(mod._parameters):  # the original parameter order, so state_dict keys come out as before
        mod._parameters = {k: mod._parameters[k] for k in order}


@torch.no_grad()
def merge(model: nn.Module, scale: float) -> nn.Module:
    """A plain copy of an adapted model with every adapter folded in at runtime scale ``scale``.

    The result has the original model's class, parameter names and requires_grad flags (so it saves and loads
    like an unadapted model); ``model`` is not changed.
    """
    if not adapters(model):
        raise HmuError("merge: the model has no LoRA adapters")
    if not math.isfinite(float(scale)):
        raise HmuError(f"LoRA scale must be finite, got {scale}")
    new = copy.deepcopy(model)
    for _, a in adapters(new):
        a.scale = float(scale)
    for _, mod in list(new.named_modules()):
        if parametrize.is_parametrized(mod):
            _unparametrize(mod)
    for _, mod in list(new.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, LoRALinear):
                base = child.base
                base.weight.copy_(base.weight + child.delta_weight())
                setattr(mod, child_name, base)
    flags = getattr(new, "_lora_requires_grad", None) or {}
    for n, p in new.named_parameters():
        p.requires_grad_(flags.get(n, True))
    if hasattr(new, "_lora_requires_grad"):
        del new._lora_requires_grad
    return new


# ------------------------------------------------------------------------------------------------ saving
def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapters' tensors, keyed by their name in ``model.state_dict()`` (detached copies on CPU)."""
    names = {id(p) for p in lora_parameters(model)}
    out = {k: v.detach().cpu().clone() for k, v in model.state_dict(keep_vars=True).items() if id(v) in names}
    if not out:
        raise HmuError("the model has no LoRA adapters")
    return out


def load_lora_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, where: str = "adapter") -> None:
    """Copy adapter tensors into an adapted model, strictly: the same keys and shapes, all finite, or HmuError."""
    own = {k: v for k, v in model.state_dict(keep_vars=True).items()
           if id(v) in {id(p) for p in lora_parameters(model)}}
    if not own:
        raise HmuError(f"{where}: the model has no LoRA adapters to load into (add_lora with the saved config first)")
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in sorted(set(own) & set(state))
              if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        def few(xs: list[str]) -> str:
            return ", ".join(xs[:3]) + (f" (+{len(xs) - 3} more)" if len(xs) > 3 else "")
        parts = [f"missing {len(missing)}: {few(missing)}" if missing else "",
                 f"unexpected {len(unexpected)}: {few(unexpected)}" if unexpected else "",
                 f"shape mismatch: {few(shapes)}" if shapes else ""]
        raise HmuError(f"{where}: LoRA state does not match the model ({'; '.join(p for p in parts if p)})")
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise HmuError(f"{where}: LoRA tensors contain NaN or inf: {', '.join(bad[:3])}")
    with torch.no_grad():
        for k, p in own.items():
            p.copy_(state[k].to(dtype=p.dtype, device=p.device))


def adapter_config(model: nn.Module) -> LoRAConfig:
    """The one LoRAConfig shared by a model's adapters."""
    cfgs = {a.cfg for _, a in adapters(model)}
    if len(cfgs) != 1:
        raise HmuError(f"expected one LoRA config on the model, found {len(cfgs)}")
    return cfgs.pop()


def save_lora(path: str | os.PathLike, model: nn.Module, *, meta: Mapping[str, Any] | None = None) -> None:
    """Write the adapters (config, tensors, ``meta``) to one file, atomically."""
    from src.common.io import atomic_torch_save

    atomic_torch_save({"format": FORMAT, "version": VERSION, "config": adapter_config(model).to_dict(),
                       "state_dict": lora_state_dict(model), "meta": dict(meta or {})}, path)


def read_lora(path: str | os.PathLike) -> tuple[LoRAConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """``save_lora``'s file -> (config, adapter tensors, meta), read with the restricted loader."""
    from src.common.io import torch_load

    obj = torch_load(path, what="LoRA adapter")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise HmuError(f"{path} is not an hmu LoRA adapter file (no format={FORMAT!r})")
    if obj.get("version") != VERSION:
        raise HmuError(f"{path}: LoRA file version {obj.get('version')} is not supported (expected {VERSION})")
    return LoRAConfig.from_dict(obj["config"]), dict(obj["state_dict"]), dict(obj.get("meta") or {})


def load_lora(path: str | os.PathLike, base: nn.Module) -> nn.Module:
    """A copy of ``base`` with the adapters of file ``path`` added and loaded strictly."""
    cfg, state, _ = read_lora(path)
    model = add_lora(base, cfg)
    load_lora_state_dict(model, state, where=str(path))
    return model


def describe(model: nn.Module) -> dict[str, int]:
    """Counts for logs: adapters per kind and trainable adapter parameters."""
    out = {k: 0 for k in KINDS}
    for _, a in adapters(model):
        if isinstance(a, LoRALinear):
            out["ff"] += 1
        else:
            for k in a.kinds:
                out[k] += 1
    out["parameters"] = sum(p.numel() for p in lora_parameters(model))
    return out


__all__ = ["KINDS", "LoRAConfig", "LoRALinear", "LoRAWeightDelta", "adapter_config", "adapters", "add_lora",
           "describe", "load_lora", "load_lora_state_dict", "lora_parameters", "lora_scale", "lora_state_dict",
           "merge", "read_lora", "save_lora", "set_scale"]
