"""Run a module or script with file writes under ``HMU_GUARD_ROOT`` forbidden on every rank but 0.

    python -m torch.distributed.run --nproc_per_node 2 tests/dist/guard.py -m src.train.length ...
    python -m torch.distributed.run --nproc_per_node 2 tests/dist/guard.py tests/dist/tiny_train.py ...

A write (open for writing, os.open with a write flag, mkdir, rename/replace, unlink, rmtree, torch.save) by a rank
other than 0 to a path under the root raises ``GuardError`` there, which fails the torchrun job.
"""
from __future__ import annotations

import builtins
import io
import os
import runpy
import shutil
import sys
from pathlib import Path

ROOT = os.path.realpath(os.environ["HMU_GUARD_ROOT"])


class GuardError(RuntimeError):
    pass


def _inside(path) -> bool:
    try:
        p = os.path.realpath(os.fspath(path))
    except TypeError:
        return False
    return p == ROOT or p.startswith(ROOT + os.sep)


def _check(what: str, *paths) -> None:
    for p in paths:
        if isinstance(p, (str, bytes, os.PathLike)) and _inside(p):
            raise GuardError(f"rank {os.environ.get('RANK')} tried to {what} {p}")


def install() -> None:
    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+"):
            _check("open for writing", file)
        return real_open(file, mode, *a, **k)

    def guarded_os_open(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            _check("os.open for writing", path)
        return real_os_open(path, flags, *a, **k)

    def wrap(mod, name, what, nargs=1):
        real = getattr(mod, name)

        def f(*a, **k):
            _check(what, *a[:nargs])
            return real(*a, **k)

        setattr(mod, name, f)

    builtins.open = io.open = guarded_open  # pathlib opens through io.open
    os.open = guarded_os_open
    for name in ("mkdir", "makedirs", "remove", "unlink", "rmdir"):
        wrap(os, name, name)
    for name in ("rename", "replace"):
        wrap(os, name, name, 2)
    wrap(shutil, "rmtree", "rmtree")
    real_mkdir, real_touch, real_unlink = Path.mkdir, Path.touch, Path.unlink

    def pmkdir(self, *a, **k):
        _check("mkdir", self)
        return real_mkdir(self, *a, **k)

    def ptouch(self, *a, **k):
        _check("touch", self)
        return real_touch(self, *a, **k)

    def punlink(self, *a, **k):
        _check("unlink", self)
        return real_unlink(self, *a, **k)

    Path.mkdir, Path.touch, Path.unlink = pmkdir, ptouch, punlink
    import torch

    real_save = torch.save

    def tsave(obj, f, *a, **k):
        _check("torch.save", f)
        return real_save(obj, f, *a, **k)

    torch.save = tsave


def main() -> None:
    if os.environ.get("RANK", "0") != "0":
        install()
    args = sys.argv[1:]
    if args[0] == "-m":
        sys.argv = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    main()
