"""Module modes for a block of code (no torch import: anything with ``training``, ``eval()`` and ``train(bool)``)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def eval_mode(*modules) -> Iterator[None]:
    """Put modules in eval mode for the block and restore their flags afterwards, also when the block raises (the
    caller's models are not left changed). ``None`` entries are skipped."""
    mods = [m for m in modules if m is not None]
    flags = [m.training for m in mods]
    for m in mods:
        m.eval()
    try:
        yield
    finally:
        for m, f in zip(mods, flags):
            m.train(f)
