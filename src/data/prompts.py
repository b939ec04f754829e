"""Prompt files, one reader for every CLI: ``text`` or ``text#frames`` lines, or JSON; and the one :class:`Prompt`.

Text files: one prompt a line; blank lines and lines starting with ``#`` are skipped. A frame count may follow the
LAST ``#`` (``a person kicks#64``); what follows it must then be a positive integer, or ``NA`` (MoMask's spelling of
"predict the length": the length estimator draws it), else a one-line HmuError naming ``file:line``. JSON files (:func:`read_prompts`): a list of strings or ``{"text", "length"?, "action"?, "concepts"?,
"segments"?}`` objects, or an object whose ``key`` holds such a list.
"""
from __future__ import annotations

import json
import os
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from src.common.errors import HmuError

DEFAULT_LENGTH = 120  # frames asked for a prompt that gives none (6 s at 20 fps)
MIN_LENGTH = 8        # frames: fewer cannot make one VQ token of any dataset here


@dataclass(frozen=True)
class Prompt:
    """A text to generate from, the frames asked for (None: not given), and what the caller knows about it."""

    text: str
    length: int | None = None
    _: KW_ONLY
    kind: str = ""                           # report: forget / retain / compositional / file / builtin
    action: str | None = None                # synth ground truth: the action the prompt asks for
    concepts: tuple[str, ...] = ()
    segments: tuple[dict, ...] = field(default=())   # compositional prompts: {"action", "start", "end", "concepts"}
    estimate: bool = False                   # ``text#NA``: the length estimator chooses the length (length is None)


def parse_prompt_line(line: str, *, where: str) -> Prompt | None:
    """One line of a prompt file -> a Prompt (length None when absent), or None for a blank or ``#`` comment line."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    text, sep, tail = line.rpartition("#")
    if not sep:
        return Prompt(line)
    if tail.strip().upper() == "NA":  # MoMask's prompt files: the length is predicted
        if not text.strip():
            raise HmuError(f"{where}: empty prompt")
        return Prompt(text.strip(), None, estimate=True)
    try:
        length = int(tail.strip())
    except ValueError:
        raise HmuError(f"{where}: length after '#' must be an integer number of frames, got '{tail.strip()}'") from None
    if length <= 0:
        raise HmuError(f"{where}: length must be positive, got {length}")
    if not text.strip():
        raise HmuError(f"{where}: empty prompt")
    return Prompt(text.strip(), length)


def read_prompt_lines(path: str | os.PathLike, *, default_length: int | None = None, kind: str = "",
                      what: str = "prompt file") -> list[Prompt]:
    """A ``text#frames`` file -> prompts (``default_length`` where a line gives none); ``what`` names the flag."""
    p = Path(path)
    if not p.is_file():
        raise HmuError(f"{what} file not found: {p}")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise HmuError(f"cannot read {what} {p}: {exc}") from None
    out = []
    for i, line in enumerate(lines, 1):
        pr = parse_prompt_line(line, where=f"{what} {p}:{i}")
        if pr is not None:
            length = pr.length if pr.length is not None or pr.estimate else default_length
            out.append(Prompt(pr.text, length, kind=kind, estimate=pr.estimate))
    if not out:
        raise HmuError(f"{what} {p} holds no prompt")
    return out


def _as_prompt(obj: Any, where: str, default_length: int) -> Prompt:
    if isinstance(obj, str):
        return Prompt(obj.strip(), default_length)
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
        raise HmuError(f"{where}: each prompt must be a string or an object with a non-empty 'text'")
    try:
        length = int(obj.get("length", default_length))
    except (TypeError, ValueError):
        raise HmuError(f"{where}: 'length' must be an integer number of frames") from None
    return Prompt(obj["text"].strip(), length, action=obj.get("action"), concepts=tuple(obj.get("concepts") or ()),
                  segments=tuple(obj.get("segments") or ()))


def read_prompts(path: str | os.PathLike, *, default_length: int = DEFAULT_LENGTH, key: str | None = None
                 ) -> list[Prompt]:
    """Prompts from a JSON file (module docstring) or a ``text#frames`` file; each asks for >= MIN_LENGTH frames."""
    p = Path(path)
    if p.suffix.lower() != ".json":
        out = read_prompt_lines(p, default_length=default_length)
    else:
        if not p.is_file():
            raise HmuError(f"prompt file not found: {p}")
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise HmuError(f"cannot read prompt file {p}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise HmuError(f"prompt file {p} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if key is not None and isinstance(obj, dict):
            if key not in obj:
                raise HmuError(f"prompt file {p} has no '{key}' list (has: {', '.join(map(str, obj))})")
            obj = obj[key]
        if not isinstance(obj, list):
            raise HmuError(f"prompt file {p} must hold a JSON list of prompts")
        out = [_as_prompt(o, f"{p} [{i}]", default_length) for i, o in enumerate(obj)]
        if not out:
            raise HmuError(f"prompt file {p} holds no prompt")
    for i, pr in enumerate(out):
        if pr.length is not None and pr.length < MIN_LENGTH:
            raise HmuError(f"prompt {i} of {p} asks for {pr.length} frames; at least {MIN_LENGTH} are needed")
    return out
