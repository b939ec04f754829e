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
    except (OSError, RuntimeError) as exc:
        if is_disk_full(exc, dest.parent):  # the machine's problem, said as such (issue 26), not "a bug in hmu"
            raise HmuError(f"no space left on device while writing {dest} (free some space, or write elsewhere); "
                           f"the previous file, if any, is unchanged") from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


LOW_SPACE = 64 << 20  # bytes: below this, a failed write on that file system is taken as a full disk


def is_disk_full(exc: BaseException, folder: str | os.PathLike | None = None) -> bool:
    """True when ``exc`` is a write that failed for want of space: ENOSPC/EDQUOT; or, while ``folder``'s file system
    has (almost) no free space left, a short write (numpy: ``OSError: 262144 requested and 65504 written``, no errno)
    or torch's zip writer failing (``RuntimeError: ... unexpected pos 768 vs 662``), as a full tmpfs gives them."""
    import errno
    import shutil

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if (isinstance(exc, RuntimeError) or (isinstance(exc, OSError) and exc.errno is None)) and folder is not None:
        try:
            return shutil.disk_usage(folder).free < LOW_SPACE
        except OSError:
            return False
    return False


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
_PY2_MODULES = {"__builtin__": "builtins"}


def safe_pickle_load(path: str | os.PathLike, what: str = "file") -> Any:
    """Unpickle plain data only (dict, list, tuple, set, str, int, float, bool, None): a pickle that names any other
    global (a class, a function such as ``os.system``) is refused with a one-line HmuError naming the file, before
    anything runs. For upstream's word-vector files ``our_vab_{words,idx}.pkl``."""
    import pickle

    class _PlainUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            # exact (module, name) pairs only, never a whole module: builtins also holds eval, exec and getattr.
            # Protocol 0-2 pickles name the module as Python 2 did (__builtin__); the base class maps it back.
            if (_PY2_MODULES.get(module, module), name) in _PLAIN_PICKLE_GLOBALS:
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


# ----------------------------------------------------------------------------------------------- folder swaps
# A folder (a run, the report) is replaced in two renames: ``dest -> .<name>.old.<pid>``, then
# ``.<name>.partial.<pid>.<x> -> dest``. A crash between them leaves no ``dest``; :func:`recover_folder` (called by
# the next writer and by loaders) then finishes the swap when the staged folder was complete, or puts the old
# folder back, and removes what is left over. So after a crash either the old or the new folder is found.
COMPLETE_MARK = ".hmu_complete"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _leftover_pid(p: Path, kind: str) -> int | None:
    """The writer's pid in ``.<name>.old.<pid>`` / ``.<name>.partial.<pid>.<x>``; None when not ours."""
    tail = p.name.rsplit(f".{kind}.", 1)[-1]
    head = tail.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _stale(parent: Path, name: str, kind: str) -> list[Path]:
    out = []
    for p in parent.glob(f".{name}.{kind}.*"):
        pid = _leftover_pid(p, kind)
        if pid is not None and not _pid_alive(pid):
            out.append(p)
    return sorted(out, key=lambda p: p.stat().st_mtime)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def staging_dir(dest: str | os.PathLike) -> Path:
    """A new empty hidden folder beside ``dest`` to build its replacement in (see :func:`swap_in_folder`)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial.{os.getpid()}.", dir=dest.parent))


def swap_in_folder(stage: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Replace ``dest`` by the complete folder ``stage`` (made by :func:`staging_dir`), crash-safely."""
    import shutil

    stage, dest = Path(stage), Path(dest)
    for f in stage.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    (stage / COMPLETE_MARK).write_bytes(b"")  # from here on the staged folder may replace dest after a crash
    _fsync_dir(stage)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old.{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dest, old)
    try:
        os.replace(stage, dest)
    except BaseException:
        if old is not None:  # put the previous folder back: a failed swap must not lose it
            os.replace(old, dest)
        raise
    (dest / COMPLETE_MARK).unlink(missing_ok=True)
    _fsync_dir(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_folder(dest: str | os.PathLike) -> str | None:
    """Repair what a writer killed during :func:`swap_in_folder` left beside ``dest`` (leftovers of living writers
    are not touched); return what was done, or None. A warning line says it."""
    import logging
    import shutil

    dest = Path(dest)
    parent = dest.parent
    if not parent.is_dir():
        return None
    olds, partials = _stale(parent, dest.name, "old"), _stale(parent, dest.name, "partial")
    if not olds and not partials:
        return None
    done = None
    if not dest.exists():
        complete = [p for p in partials if (p / COMPLETE_MARK).is_file()]
        if complete:
            os.replace(complete[-1], dest)
            (dest / COMPLETE_MARK).unlink(missing_ok=True)
            done = f"{dest}: finished a replacement that was interrupted (the new folder was complete)"
        elif olds:
            os.replace(olds[-1], dest)
            done = f"{dest}: put the previous folder back after an interrupted replacement"
    for p in [*olds, *partials]:
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
    done = done or f"{dest}: removed leftovers of an interrupted write"
    logging.getLogger(__name__).warning("%s", done)
    _fsync_dir(parent)
    return done


def check_replaceable(dest: str | os.PathLike, *, force: bool, index: str, what: str = "output folder") -> None:
    """HmuError unless ``dest`` may be (re)written by :func:`staged_folder`: absent or empty, or (with ``force``) a
    folder this writer made before, recognised by its ``index`` file. A folder holding other things is never
    replaced, even with ``--force`` (``--out ~`` must not wipe a home folder)."""
    dest = Path(dest)
    recover_folder(dest)
    if not dest.exists():
        return
    if not dest.is_dir():
        raise HmuError(f"{what} {dest} exists and is not a folder")
    if (dest / index).is_file():
        if not force:
            raise HmuError(f"{what} {dest} already holds {index} (pass --force to replace the folder)")
        return
    if any(dest.iterdir()):
        raise HmuError(f"{what} {dest} is not empty and holds no {index}: not replaced (choose another folder)")


def begin_staged_folder(dest: str | os.PathLike, *, force: bool, index: str, what: str = "output folder") -> Path:
    """Check ``dest`` may be replaced (:func:`check_replaceable`) and return a new hidden sibling to build its new
    content in; finish with :func:`commit_staged_folder`. A writer that dies before committing leaves ``dest`` as it
    was; its staged folder is removed by the next :func:`recover_folder` (every writer and reader calls it)."""
    dest = Path(dest)
    check_replaceable(dest, force=force, index=index, what=what)
    stage = staging_dir(dest)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes 0700; the output folder gets the usual permissions
    import atexit
    import shutil

    atexit.register(shutil.rmtree, stage, True)  # an uncommitted stage is removed when the process ends
    return stage


def commit_staged_folder(stage: str | os.PathLike, dest: str | os.PathLike, *, index: str,
                         what: str = "output folder") -> None:
    """Swap the complete staged folder in for ``dest`` (nothing of the old folder survives beside the new files)."""
    stage, dest = Path(stage), Path(dest)
    if not (stage / index).is_file():
        raise HmuError(f"internal: {what} {dest} was staged without its {index}")
    if dest.exists() and not (dest / index).is_file() and dest.is_dir() and any(dest.iterdir()):
        raise HmuError(f"{what} {dest} was filled by something else meanwhile: not replaced")
    swap_in_folder(stage, dest)


@contextlib.contextmanager
def staged_folder(dest: str | os.PathLike, *, force: bool, index: str, what: str = "output folder") -> Iterator[Path]:
    """:func:`begin_staged_folder` ... :func:`commit_staged_folder` as a context: on an exception the staged folder
    is removed at once and ``dest`` keeps its old content."""
    import shutil

    dest = Path(dest)
    stage = begin_staged_folder(dest, force=force, index=index, what=what)
    try:
        yield stage
        commit_staged_folder(stage, dest, index=index, what=what)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
