"""Atomic writers and guarded loaders: a killed write never leaves a partial file, nothing is overwritten without force."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import HmuError


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) and check it can be written; HmuError otherwise."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HmuError(f"cannot create output folder {p}: {exc.strerror or exc}") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise HmuError(f"output folder {p} is not writable")
    return p


def refuse_overwrite(path: str | os.PathLike, force: bool, what: str = "output") -> None:
    """Raise HmuError if ``path`` exists and ``force`` is False."""
    if Path(path).exists() and not force:
        raise HmuError(f"{what} {path} already exists (pass --force to overwrite)")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success it replaces ``path`` with ``os.replace``.

    On any exception the temporary file is removed and ``path`` keeps its old content.
    """
    dest = Path(path)
    ensure_writable_dir(dest.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix if suffix is not None else dest.suffix + ".tmp",
                               dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_save_npy(path: str | os.PathLike, array: Any) -> None:
    import numpy as np

    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def non_finite_tensors(obj: Any, prefix: str = "") -> list[str]:
    """Names (``a.b.c``) of the floating tensors inside ``obj`` (nested dicts, lists, tuples) holding NaN or inf."""
    import torch

    if isinstance(obj, torch.Tensor):
        bad = obj.is_floating_point() or obj.is_complex()
        return [prefix or "tensor"] if bad and not bool(torch.isfinite(obj).all()) else []
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += non_finite_tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out += non_finite_tensors(v, f"{prefix}.{i}" if prefix else str(i))
    return out


def check_finite(obj: Any, path: str | os.PathLike) -> None:
    """HmuError naming ``path`` and the first tensor at fault if ``obj`` holds NaN or inf: no NaN model is written."""
    bad = non_finite_tensors(obj)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise HmuError(f"refusing to write {path}: {bad[0]}{more} holds NaN or inf values")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and ``os.replace``; refuses (HmuError) an object holding NaN/inf."""
    import torch

    check_finite(obj, path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# Types a released checkpoint may hold besides tensors and containers, allowed by name for ``weights_only``: numpy
# scalars (a metric stored as np.float64) and argparse's Namespace (options saved with the weights). Nothing else is
# ever unpickled; there is no fallback to a full load, since an arbitrary pickle runs code (``__reduce__``).
_SAFE_GLOBALS_ADDED = False


def _allow_safe_globals() -> None:
    global _SAFE_GLOBALS_ADDED
    if _SAFE_GLOBALS_ADDED:
        return
    import argparse

    import numpy as np
    import torch

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    torch.serialization.add_safe_globals([
        argparse.Namespace, np.dtype, scalar,
        (scalar, "numpy.core.multiarray.scalar"),  # files written with numpy 1.x
        (scalar, "numpy._core.multiarray.scalar"),
        *(t for t in vars(np.dtypes).values() if isinstance(t, type) and issubclass(t, np.dtype)),
    ])
    _SAFE_GLOBALS_ADDED = True


def torch_load(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """Load a torch file on CPU with ``weights_only=True`` (tensors, containers, numbers, strings, numpy scalars,
    argparse Namespace); one-line HmuError naming the file on any failure, and never a full unpickle."""
    import pickle
    import re
    import zipfile

    import torch

    p = Path(path)
    if not p.is_file():
        raise HmuError(f"{what} not found: {p}")
    _allow_safe_globals()
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = " ".join(str(exc).split())
        if "Weights only load failed" in text:
            m = re.search(r"GLOBAL ([\w.]+)", text)
            obj = m.group(1) if m else "an object that is not plain data"
            raise HmuError(f"{what} {p} holds a pickled object ({obj}) that could run code: refused, only tensors "
                           f"and plain data are loaded") from None
        raise HmuError(f"{what} {p} is not a readable torch file ({text[:120]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError,
            AttributeError, TypeError) as exc:
        raise HmuError(f"{what} {p} is corrupt, truncated or not a torch file ({type(exc).__name__})") from None


_PLAIN_PICKLE_GLOBALS = frozenset({("builtins", "set"), ("builtins", "frozenset"), ("builtins", "list"),
                                   ("builtins", "dict"), ("builtins", "tuple"), ("collections", "OrderedDict")})


def safe_pickle_load(path: str | os.PathLike, what: str = "file") -> Any:
    """Unpickle plain data only (dict, list, tuple, set, str, int, float, bool, None): a pickle that names any other
    global (a class, a function such as ``os.system``) is refused with a one-line HmuError naming the file, before
    anything runs. For upstream's word-vector files ``our_vab_{words,idx}.pkl``."""
    import pickle

    class _PlainUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) in _PLAIN_PICKLE_GLOBALS:
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"{module}.{name}")

    p = Path(path)
    if not p.is_file():
        raise HmuError(f"{what} not found: {p}")
    try:
        with open(p, "rb") as fh:
            return _PlainUnpickler(fh).load()
    except pickle.UnpicklingError as exc:
        msg = " ".join(str(exc).split())
        if "." in msg and " " not in msg:  # a refused global
            raise HmuError(f"{what} {p} holds a pickled object ({msg}) that could run code: refused, only plain "
                           f"data (lists, dicts, strings, numbers) is loaded") from None
        raise HmuError(f"{what} {p} is not a readable pickle ({msg[:120]})") from None
    except (EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError, KeyError, OSError,
            MemoryError, RecursionError) as exc:
        raise HmuError(f"{what} {p} is corrupt or not a pickle ({type(exc).__name__})") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
