"""Strict state-dict loading with one-line errors: the one place every model loader checks keys and shapes."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from src.common.errors import HmuError


def _head(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more


def _shape(v: Any) -> tuple:
    return tuple(v.shape) if hasattr(v, "shape") else tuple(v)


def state_dict_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str | None:
    """Key and shape differences between two ``{key: tensor or shape}`` maps in one line, or None if they agree."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} {list(_shape(found[k]))} vs {list(_shape(expected[k]))}"
              for k in expected if k in found and _shape(found[k]) != _shape(expected[k])]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_head(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_head(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches ({_head(shapes)}; file vs model)")
    return "; ".join(parts) or None


def load_state_dict_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str | os.PathLike) -> None:
    """``module.load_state_dict(state, strict=True)`` with a one-line HmuError naming ``source`` on any mismatch."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HmuError(f"{source} does not hold a state_dict of tensors")
    problem = state_dict_mismatch(module.state_dict(), state)
    if problem:
        raise HmuError(f"{source}: {problem}")
    module.load_state_dict(state, strict=True)
