"""Saving an edited model as a NEW run: ``checkpoints/<dataset>/<out_name>/{opt.txt, meta/, model/<file>}``.

The run is assembled in a hidden staging folder beside its destination and renamed into place at the end, so a
failure leaves no half-written run, and the source run is only ever read. ``opt.txt`` is the source's, byte for byte
except its ``name:`` line; ``meta/`` (mean/std) is copied; the checkpoint records in ``hmu_meta`` the method, its
arguments, the source checkpoint's path and sha256, and whatever the method adds (selected codes, wall time).
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from src.common.errors import HmuError

_NAME_LINE = re.compile(r"^name: .*$", re.MULTILINE)


def output_dir(paths, dataset_name: str, out_name: str, *, force: bool, sources: tuple[Path, ...] = ()) -> Path:
    """Where ``out_name`` goes; HmuError (before any work) if it exists without ``force`` or is one of ``sources``."""
    from src.models.checkpoint import run_dir, run_dir_candidates

    if not out_name or "/" in out_name or out_name.startswith("."):
        raise HmuError(f"--name {out_name!r} must be a plain folder name")
    dest = run_dir(paths, dataset_name, out_name)
    for s in sources:
        if any(Path(c).resolve() == Path(s).resolve() for c in run_dir_candidates(paths, dataset_name, out_name)):
            raise HmuError(f"--name {out_name} is the source run {s}: an edit is always saved as a new run")
    if dest.exists() and not force:
        raise HmuError(f"run folder {dest} already exists (pass --force to overwrite)")
    return dest


def renamed_opt_text(source_opt: Path, out_name: str) -> str:
    """The source ``opt.txt`` with its ``name:`` line set to ``out_name`` (everything else unchanged)."""
    try:
        text = Path(source_opt).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HmuError(f"source run has no opt.txt: {source_opt}") from None
    if _NAME_LINE.search(text):
        return _NAME_LINE.sub(f"name: {out_name}", text, count=1)
    return text


def write_run(dest: Path, *, source_run: Path, out_name: str, checkpoints: dict[str, Any],
              extra_files: dict[str, Callable[[Path], None]] | None = None, force: bool = False) -> Path:
    """Write the new run ``dest`` atomically (staging folder + rename).

    ``checkpoints`` {file name in model/: object for torch.save}; ``extra_files`` {relative path: writer(path)}.
    """
    import torch

    dest = Path(dest)
    if dest.exists() and not force:
        raise HmuError(f"run folder {dest} already exists (pass --force to overwrite)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial.", dir=dest.parent))
    old = None
    try:
        (stage / "opt.txt").write_text(renamed_opt_text(Path(source_run) / "opt.txt", out_name), encoding="utf-8")
        if (Path(source_run) / "meta").is_dir():
            shutil.copytree(Path(source_run) / "meta", stage / "meta")
        (stage / "model").mkdir()
        for fname, obj in checkpoints.items():
            torch.save(obj, stage / "model" / fname)
        for rel, writer in (extra_files or {}).items():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            writer(stage / rel)
        for f in stage.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        os.chmod(stage, 0o777 & ~_umask())
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old.{os.getpid()}")
            dest.rename(old)
        stage.rename(dest)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
    return dest


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def edit_meta(*, method: str, args: dict, source_ckpt: Path, **more) -> dict:
    """``hmu_meta`` of an edit: method, arguments, source checkpoint path + sha256, and ``more``."""
    from src.models.checkpoint import make_hmu_meta

    meta = make_hmu_meta(method=method, args=args, source=source_ckpt)
    meta.update(more)
    return meta


def model_checkpoint(kind: str, model, *, epoch: int = -1, hmu_meta: dict | None = None, **extra) -> dict:
    """The file dict of ``src.models.checkpoint.save_checkpoint`` (upstream key for ``kind``), plus ``extra`` keys."""
    from src.models.checkpoint import KINDS

    k = KINDS[kind]
    obj = {k.keys[0]: {n: t.detach().cpu() for n, t in model.state_dict().items()}, k.epoch_key: int(epoch)}
    obj.update(extra)
    if hmu_meta is not None:
        obj["hmu_meta"] = hmu_meta
    return obj
