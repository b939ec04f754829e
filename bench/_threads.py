"""Thread pinning shared by the bench scripts (standard library only: it runs before numpy and torch are imported).

BLAS libraries read their thread count once, at import, so a script that wants ``--threads N`` to hold for numpy as
well as torch must set the environment before importing them: ``pin_threads()`` does that from ``sys.argv``.
"""
from __future__ import annotations

import os
import sys

_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def threads_from_argv(argv: list[str] | None = None, default: str = "1") -> str:
    """The value of ``--threads N`` / ``--threads=N`` in argv, else $OMP_NUM_THREADS, else ``default``."""
    a = sys.argv if argv is None else argv
    for i, x in enumerate(a):
        if x == "--threads" and i + 1 < len(a):
            return a[i + 1]
        if x.startswith("--threads="):
            return x.split("=", 1)[1]
    return os.environ.get("OMP_NUM_THREADS", default) or default


def pin_threads(argv: list[str] | None = None) -> str:
    """Set every BLAS/OpenMP thread variable to ``threads_from_argv()``; return it."""
    n = threads_from_argv(argv)
    for v in _VARS:
        os.environ[v] = n
    return n
