"""Checked ``.npz`` caches: a header with the key and a checksum of every array, verified on every read.

A cache file is a plain ``.npz`` (no pickles) holding the cached arrays plus ``__hmu_cache__``: a JSON header with
the cache kind, the full key it was written for, and each array's dtype, shape and sha256. :func:`read_cache`
returns the arrays only when the file is readable, the header's kind and key are the ones asked for, every array
matches its checksum, floating arrays are finite and not all zero, and the caller's own ``check`` (shapes, ranges)
passes. Anything else -- a truncated or CRC-damaged zip, a file of zeros, rows reordered after writing, a header from
another key -- is a *miss*: one warning naming the file and what is wrong, and the caller recomputes and rewrites it.
A damaged cache is never an error, and never a "bug in hmu".
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

HEADER = "__hmu_cache__"
FORMAT = 1


def array_digest(a: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (C order)."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def write_cache(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], *, kind: str, key: str) -> None:
    """Write ``arrays`` and their header to ``path`` atomically (temporary file + ``os.replace``)."""
    from src.common.io import atomic_path

    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    if HEADER in arrays:
        raise ValueError(f"{HEADER} is reserved")
    header = {"format": FORMAT, "kind": kind, "key": key,
              "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape), "sha256": array_digest(v)}
                         for k, v in arrays.items()}}
    with atomic_path(Path(path), suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{HEADER: np.asarray(json.dumps(header, sort_keys=True))}, **arrays)


def cache_problem(path: str | os.PathLike, *, kind: str, key: str, nonzero: bool = True,
                  check: Callable[[dict[str, np.ndarray]], str | None] | None = None
                  ) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """(arrays, None) for a good cache file, (None, what is wrong) otherwise; never raises for a bad file."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            names = list(z.files)
            if HEADER not in names:
                return None, "no hmu cache header (written by an older version or by something else)"
            header = json.loads(str(z[HEADER]))
            arrays = {k: z[k] for k in names if k != HEADER}
    except Exception as exc:  # noqa: BLE001 - any unreadable file (BadZipFile, zlib.error, EOFError...) is a miss
        return None, f"unreadable: {type(exc).__name__}: {' '.join(str(exc).split())[:100]}"
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return None, "unknown header format"
    if header.get("kind") != kind:
        return None, f"a {header.get('kind')!r} cache, not {kind!r}"
    if header.get("key") != key:
        return None, "written for other inputs (its key differs)"
    meta = header.get("arrays")
    if not isinstance(meta, dict) or set(meta) != set(arrays):
        return None, "its arrays are not the ones its header lists"
    for name, a in arrays.items():
        m = meta[name]
        if not isinstance(m, dict) or m.get("dtype") != a.dtype.str or m.get("shape") != list(a.shape):
            return None, f"array {name!r} has dtype/shape {a.dtype.str}{a.shape}, its header says otherwise"
        if m.get("sha256") != array_digest(a):
            return None, f"array {name!r} does not match its checksum (the file was changed after it was written)"
        if a.dtype.kind in "fc":
            if not np.isfinite(a).all():
                return None, f"array {name!r} holds NaN or inf"
            if nonzero and a.size and not a.any():
                return None, f"array {name!r} is all zeros"
    if check is not None:
        why = check(arrays)
        if why:
            return None, why
    return arrays, None


def read_cache(path: str | os.PathLike, *, kind: str, key: str, nonzero: bool = True,
               check: Callable[[dict[str, np.ndarray]], str | None] | None = None,
               rebuild_hint: str = "it will be recomputed") -> dict[str, np.ndarray] | None:
    """The arrays of a good cache file; None (with one warning naming the file) for a damaged or stale one, and
    None silently when there is no file."""
    p = Path(path)
    if not p.is_file():
        return None
    arrays, why = cache_problem(p, kind=kind, key=key, nonzero=nonzero, check=check)
    if arrays is None:
        log.warning("ignoring %s cache %s: %s; %s", kind, p, why, rebuild_hint)
    return arrays
