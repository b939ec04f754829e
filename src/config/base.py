"""Typed option dataclasses that speak upstream's opt.txt: values convert by field type, unknown keys are kept.

Round trip: a value still equal to what was parsed is written back with its original text, so an upstream
file re-written unchanged is byte-identical (``feat_bias: 5`` stays ``5`` although the field is a float).
"""
from __future__ import annotations

import ast
import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar

from src.common.errors import HmuError
from src.common.io import atomic_write_text

from .opt_txt import format_opt_text, parse_opt_text, read_opt_file


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def convert_value(raw: str, tp: Any, *, where: str) -> Any:
    """Convert one raw opt.txt value to ``tp`` (bool, int, float, str, list[...], Optional[...])."""
    base, optional = _unwrap_optional(tp)
    if optional and raw == "None":
        return None
    try:
        if base is bool:
            if raw not in ("True", "False"):
                raise ValueError("expected True or False")
            return raw == "True"
        if base is int:
            return int(raw)
        if base is float:
            return float(raw)
        if base is str:
            return raw
        if typing.get_origin(base) in (list, tuple):
            (item_tp,) = typing.get_args(base)[:1] or (str,)
            val = ast.literal_eval(raw)
            if not isinstance(val, (list, tuple)):
                val = [val]
            return [item_tp(v) for v in val]
    except (ValueError, SyntaxError, TypeError) as exc:
        raise HmuError(f"{where}: cannot read {raw!r} as {getattr(base, '__name__', base)} ({exc})") from None
    raise TypeError(f"unsupported option type {tp!r} ({where})")


def format_value(value: Any) -> str:
    """Upstream writes ``str(v)``."""
    return str(value)


@dataclasses.dataclass(kw_only=True)
class OptConfig:
    """Base for the typed configs. Subclasses list fields with upstream names and defaults."""

    # fields that exist only in hmu files: not written back into an upstream file that lacked them
    HMU_ONLY: ClassVar[tuple[str, ...]] = ()

    extra: dict[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    # raw text of every key read from a file (None for a config made in code)
    _raw: dict[str, str] | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def typed_fields(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in ("extra", "_raw")}

    @classmethod
    def from_dict(cls, raw: dict[str, str], source: str = "opt.txt"):
        """Build from ``{key: raw string}``; unknown keys land in ``extra``."""
        fields = cls.typed_fields()
        kwargs: dict[str, Any] = {}
        extra: dict[str, str] = {}
        for key, text in raw.items():
            if key in fields:
                kwargs[key] = convert_value(text, fields[key], where=f"{source}: {key}")
            else:
                extra[key] = text
        return cls(**kwargs, extra=extra, _raw=dict(raw))

    @classmethod
    def from_text(cls, text: str, source: str = "opt.txt"):
        return cls.from_dict(parse_opt_text(text, source), source)

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read an opt.txt file; HmuError naming it when absent or malformed."""
        return cls.from_dict(read_opt_file(path), str(path))

    def to_dict(self) -> dict[str, str]:
        """``{key: raw string}`` as it will be written."""
        fields = self.typed_fields()
        raw = self._raw or {}
        out: dict[str, str] = {}
        for name, tp in fields.items():
            value = getattr(self, name)
            if name in raw:
                try:
                    unchanged = convert_value(raw[name], tp, where=name) == value
                except HmuError:
                    unchanged = False
                out[name] = raw[name] if unchanged else format_value(value)
            elif self._raw is not None and value == _default_of(type(self), name):
                # a key the source file lacked (older upstream code, or an hmu-only key such as text_encoder)
                # is not invented while it keeps its default, so the file round-trips byte-identically
                continue
            else:
                out[name] = format_value(value)
        out.update(self.extra)
        return out

    def to_text(self) -> str:
        return format_opt_text(self.to_dict())

    def save(self, path: str | os.PathLike) -> Path:
        """Write opt.txt atomically."""
        atomic_write_text(path, self.to_text())
        return Path(path)

    def replace(self, **changes):
        """A copy with ``changes``; keeps unknown keys and the original text of unchanged values."""
        return dataclasses.replace(self, **changes)

    @property
    def dataset_spec(self):
        """The DatasetSpec for ``dataset_name`` (aliases such as ``t2m`` accepted)."""
        from src.common.datasets import get_spec

        return get_spec(self.dataset_name)


def _default_of(cls, name: str) -> Any:
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING
