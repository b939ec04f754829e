"""Upstream's ``opt.txt`` text format: read into ordered raw strings, write back byte-identically.

Format (options/base_option.py upstream): a header line, ``key: value`` lines sorted by key, a footer line.
Values are ``str(v)`` of the argparse value, so a list reads ``[1, 2]`` and ``None`` reads ``None``.
"""
from __future__ import annotations

import os
from pathlib import Path

from src.common.errors import HmuError

HEADER = "------------ Options -------------"
FOOTER = "-------------- End ----------------"


def parse_opt_text(text: str, source: str = "opt.txt") -> dict[str, str]:
    """Split opt.txt text into ``{key: raw value}`` in file order; HmuError naming ``source`` on a malformed line."""
    out: dict[str, str] = {}
    line_of: dict[str, int] = {}
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise HmuError(f"{source}: not an opt.txt file (first line must be '{HEADER}')")
    for n, line in enumerate(lines[1:], start=2):
        if line.strip() == FOOTER:
            break
        if not line.strip():
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            # upstream writes 'key: ' for an empty string; partition on ':' keeps that readable
            key, sep, value = line.partition(":")
            if not sep:
                raise HmuError(f"{source}:{n}: expected 'key: value', got {line[:60]!r}")
            value = value.lstrip(" ")
        key = key.strip()
        if key in out:  # which of the two values was meant cannot be told: refuse
            raise HmuError(f"{source}:{n}: key '{key}' appears twice (first on line {line_of[key]})")
        out[key] = value
        line_of[key] = n
    else:
        raise HmuError(f"{source}: missing footer line '{FOOTER}' (file truncated?)")
    return out


def format_opt_text(items: dict[str, str]) -> str:
    """``{key: raw value}`` -> opt.txt text, keys sorted as upstream sorts them."""
    body = "".join(f"{k}: {items[k]}\n" for k in sorted(items))
    return f"{HEADER}\n{body}{FOOTER}\n"


def read_opt_file(path: str | os.PathLike) -> dict[str, str]:
    p = Path(path)
    if not p.is_file():
        raise HmuError(f"options file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HmuError(f"cannot read options file {p}: {exc}") from None
    return parse_opt_text(text, source=str(p))
