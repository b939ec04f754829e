"""A trainer's run folder ``checkpoints/<dataset>/<name>/``: create or reopen it, and what goes into it besides the
engine's checkpoints (``hmu_meta``, the ``net_best_fid.tar`` copy, the summary line)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from src.common.errors import HmuError


def prepare_run(paths, cfg, *, is_continue: bool, force: bool, overrides: dict[str, Any] | None = None):
    """Create or reopen ``checkpoints/<dataset>/<name>`` -> (run folder, config, resume?).

    A new run writes opt.txt. An existing run needs ``is_continue`` (its opt.txt is reused; ``overrides`` such as a
    larger max_epoch apply) or ``force`` (its checkpoints, log and meta are deleted first).
    """
    from src.models.checkpoint import run_dir

    d = run_dir(paths, cfg.dataset_name, cfg.name)
    exists = (d / "opt.txt").is_file() or (d / "model" / "latest.tar").is_file()
    if exists and is_continue and not force:
        if not (d / "model" / "latest.tar").is_file():
            raise HmuError(f"--is_continue: {d / 'model' / 'latest.tar'} not found (train without --is_continue)")
        old = type(cfg).load(d / "opt.txt")
        cfg = old.replace(**(overrides or {}), is_continue=True)
        cfg.save(d / "opt.txt")
        return d, cfg, True
    if is_continue and not exists:
        raise HmuError(f"--is_continue: run {d} does not exist")
    if exists and not force:
        raise HmuError(f"run {d} already exists (pass --is_continue to resume it or --force to start over)")
    if exists:
        for sub in ("model", "meta"):
            if (d / sub).is_dir():
                shutil.rmtree(d / sub)
        (d / "train_log.jsonl").unlink(missing_ok=True)
    (d / "model").mkdir(parents=True, exist_ok=True)
    cfg.save(d / "opt.txt")
    return d, cfg, False


def run_meta(cfg, **more) -> dict:
    from src.models.checkpoint import make_hmu_meta

    meta = make_hmu_meta(cfg)
    meta.update(more)
    return meta


def copy_best(run_folder: Path, src_name: str, dst_name: str, *, selected_by: str) -> None:
    """Write ``dst_name`` with the weights of ``src_name`` (the file downstream code loads by default), noting
    which validation score chose them: no evaluator runs during training, so upstream's FID choice is unavailable."""
    from src.common.io import atomic_torch_save, torch_load

    model_dir = Path(run_folder) / "model"
    ckpt = torch_load(model_dir / src_name)
    meta = dict(ckpt.get("hmu_meta") or {})
    meta["selected_by"] = selected_by
    ckpt["hmu_meta"] = meta
    atomic_torch_save(ckpt, model_dir / dst_name)


def summary_line(name: str, run_folder: Path, result: dict, **extra_values) -> str:
    vals = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra_values.items())
    return (f"{name}: {result['epochs_run']} epochs, {result['total_it']} iterations in "
            f"{result['wall_time_s']:.1f}s -> {run_folder} {vals}").rstrip()
