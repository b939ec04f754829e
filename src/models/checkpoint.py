"""MoMask checkpoints in upstream's exact file format: strict loads, atomic saves, no fall-back to other files.

Layout (as upstream): ``checkpoints/<dataset folder>/<name>/{opt.txt, meta/{mean,std}.npy, model/<file>.tar}``.
The dataset folder is ours (``HumanML3D``) or upstream's alias (``t2m``); reading tries both, ours first.

File contents (top-level keys):
- VQ: ``{'vq_model' (or legacy 'net'): sd, 'ep'}``; latest.tar adds ``'opt_vq_model', 'scheduler', 'total_it'``.
- masked transformer: ``'t2m_transformer'`` (or legacy ``'trans'``); residual: ``'res_transformer'``.
- length estimator: ``{'estimator': sd, 'epoch', 'niter'}``.
Files written by hmu also hold ``'hmu_meta'`` (config, and for edits: method, args, source hash); it is never
required when reading.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.common.errors import HmuError
from src.common.io import atomic_torch_save, refuse_overwrite, sha256_file, torch_load
from src.models.strict import state_dict_mismatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One model family's file conventions."""

    name: str
    keys: tuple[str, ...]      # accepted state-dict keys, the first is the one we write
    optimizer_key: str
    epoch_key: str = "ep"
    iter_key: str = "total_it"


KINDS: dict[str, Kind] = {
    "vq": Kind("vq", ("vq_model", "net"), "opt_vq_model"),
    "mask": Kind("mask", ("t2m_transformer", "trans"), "opt_t2m_transformer"),
    "res": Kind("res", ("res_transformer",), "opt_res_transformer"),
    "len": Kind("len", ("estimator",), "opt_estimator", epoch_key="epoch", iter_key="niter"),
}

# frozen CLIP weights that upstream transformers carried; our models take text features instead
DROPPED_PREFIXES = ("clip_model.",)


def _kind(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown checkpoint kind '{kind}' (known: {', '.join(KINDS)})") from None


# ----------------------------------------------------------------------------------------------- paths

def run_dir(paths, dataset_name: str, name: str) -> Path:
    """Where a new run ``name`` is written: ``Paths.run_dir`` (``checkpoints/<dataset>/<name>``)."""
    try:
        return Path(paths.run_dir(dataset_name, name))
    except AttributeError:
        # Paths.run_dir asks DatasetSpec for `ckpt_folder`, which the spec table names `ckpt_folders`
        from src.common.datasets import get_spec

        return Path(paths.checkpoints_dir) / get_spec(dataset_name).ckpt_folders[0] / name


def run_dir_candidates(paths, dataset_name: str, name: str) -> list[Path]:
    """Every folder that may hold run ``name``: ours first, then upstream's alias (``t2m``)."""
    from src.common.datasets import get_spec

    spec = get_spec(dataset_name)
    first = run_dir(paths, dataset_name, name)
    out = [first]
    for folder in spec.ckpt_folders:
        cand = Path(paths.checkpoints_dir) / folder / name
        if cand not in out:
            out.append(cand)
    return out


def find_run_dir(paths, dataset_name: str, name: str) -> Path:
    """The existing run folder for ``name`` (ours or upstream's alias); HmuError naming where it looked."""
    from src.common.io import recover_folder

    cands = run_dir_candidates(paths, dataset_name, name)
    for c in cands:
        recover_folder(c)  # a write killed between its two renames: find the old or the new run, never none
        if c.is_dir():
            return c
    raise HmuError(f"run '{name}' not found; looked in {', '.join(str(c) for c in cands)} "
                   f"(download it with scripts/prepare/download_models.sh or train it)")


# ----------------------------------------------------------------------------------------------- loading

# Upstream's scripts/utils/prepare.sh links each released run's model/base.tar to one file: rvq -> net_best_fid.tar,
# mtrans -> latest.tar, rtrans -> net_best_fid.tar, bamm -> latest.tar. ``--ckpt base.tar`` means that file.
BASE_CKPT = "base.tar"
UPSTREAM_BASE = {"vq": "net_best_fid.tar", "mask": "latest.tar", "res": "net_best_fid.tar", "bamm": "latest.tar"}


def checkpoint_file(run_folder: str | os.PathLike, ckpt: str, kind: str) -> Path:
    """``<run>/model/<ckpt>``. ``base.tar`` is upstream's name for the released file (:data:`UPSTREAM_BASE`): the
    run's own ``model/base.tar`` when present, else the file upstream's prepare script links it to; when neither
    exists, an HmuError naming both. Never another file: a missing ``ckpt`` is the loader's one-line error."""
    model_dir = Path(run_folder) / "model"
    path = model_dir / ckpt
    if ckpt != BASE_CKPT or path.is_file() or kind not in UPSTREAM_BASE:
        return path
    released = model_dir / UPSTREAM_BASE[kind]
    if not released.is_file():
        raise HmuError(f"checkpoint {path} not found, nor {released} (upstream's base.tar of a {kind} run)")
    log.info("%s: base.tar is %s (upstream's prepare.sh link)", Path(run_folder).name, released.name)
    return released


def read_checkpoint(path: str | os.PathLike, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a checkpoint file on CPU -> (model state dict without ``clip_model.*`` keys, the whole file dict)."""
    p = Path(path)
    ckpt = torch_load(p, what=f"{_kind(kind).name} checkpoint")
    return checkpoint_entry(ckpt, kind, source=p), ckpt


def checkpoint_entry(ckpt: Any, kind: str, *, source: str | os.PathLike) -> dict[str, Any]:
    """The model state dict inside a checkpoint dict (the first of the kind's keys present), ``clip_model.*``
    keys dropped."""
    k = _kind(kind)
    p = source
    if not isinstance(ckpt, dict):
        raise HmuError(f"checkpoint {p} holds a {type(ckpt).__name__}, expected a dict with key '{k.keys[0]}'")
    key = next((key for key in k.keys if key in ckpt), None)
    if key is None:
        raise HmuError(f"checkpoint {p} has no model entry (expected one of {', '.join(k.keys)}; "
                       f"found {', '.join(map(str, list(ckpt)[:6])) or 'nothing'})")
    sd = ckpt[key]
    if not isinstance(sd, dict):
        raise HmuError(f"checkpoint {p}: entry '{key}' is not a state dict")
    dropped = [n for n in sd if n.startswith(DROPPED_PREFIXES)]
    if dropped:
        log.info("%s: dropping %d clip_model.* keys (text features come from a separate encoder)", p, len(dropped))
        sd = {n: v for n, v in sd.items() if not n.startswith(DROPPED_PREFIXES)}
    return sd


def load_weights(model, path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """Strictly load the model entry of ``path`` into ``model``; returns the file dict (epoch, meta, ...).

    Any missing, unexpected or wrongly shaped key is an HmuError naming the file and the first keys.
    """
    sd, ckpt = read_checkpoint(path, kind)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(getattr(v, "shape", ())) for k, v in sd.items()}
    problem = state_dict_mismatch(expected, got)
    if problem:
        raise HmuError(f"checkpoint {path} does not fit {type(model).__name__}: {problem}")
    on_meta = any(t.is_meta for t in model.state_dict().values())
    model.load_state_dict(sd, strict=True, assign=on_meta)
    return ckpt


# ----------------------------------------------------------------------------------------------- saving

def make_hmu_meta(config: Any = None, *, method: str | None = None, args: dict | None = None,
                  source: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ``hmu_meta`` entry: config (opt.txt key -> text), and for edits the method, its args, source file + hash."""
    meta: dict[str, Any] = {"version": 1}
    if config is not None:
        meta["config"] = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    if method is not None:
        meta["method"] = method
    if args is not None:
        meta["args"] = {k: (v if isinstance(v, (int, float, bool, str, type(None))) else str(v)) for k, v in args.items()}
    if source is not None:
        meta["source"] = str(source)
        meta["source_sha256"] = sha256_file(source)
    return meta


def save_checkpoint(path: str | os.PathLike, *, kind: str, model, epoch: int, optimizer=None, scheduler=None,
                    total_it: int | None = None, hmu_meta: dict | None = None, force: bool = True) -> Path:
    """Write ``path`` atomically in upstream's format (plus ``hmu_meta``). ``force=False`` refuses to overwrite.

    With an optimizer it is a ``latest.tar``-style file (optimizer, scheduler, epoch, iteration counter);
    without, a ``net_best_fid.tar``-style one.
    """
    k = _kind(kind)
    p = Path(path)
    refuse_overwrite(p, force, what="checkpoint")
    obj: dict[str, Any] = {k.keys[0]: {n: t.detach().cpu() for n, t in model.state_dict().items()},
                           k.epoch_key: int(epoch)}
    if optimizer is not None:
        obj[k.optimizer_key] = optimizer.state_dict()
        if scheduler is not None:
            obj["scheduler"] = scheduler.state_dict()
    if total_it is not None or optimizer is not None or k.name == "len":  # finest.tar always has 'niter'
        obj[k.iter_key] = int(total_it or 0)
    if hmu_meta is not None:
        obj["hmu_meta"] = hmu_meta
    atomic_torch_save(obj, p)
    return p


def resume_training(path: str | os.PathLike, *, kind: str, model, optimizer=None, scheduler=None) -> tuple[int, int]:
    """Load weights (strict) and, when given, optimizer/scheduler state from a latest.tar -> (epoch, iteration)."""
    k = _kind(kind)
    ckpt = load_weights(model, path, kind)
    if optimizer is not None:
        if k.optimizer_key not in ckpt:
            raise HmuError(f"checkpoint {path} has no optimizer state ('{k.optimizer_key}'); it cannot resume")
        try:
            optimizer.load_state_dict(ckpt[k.optimizer_key])
        except (ValueError, KeyError) as exc:
            # upstream transformer optimizers also count the frozen CLIP parameters
            raise HmuError(f"optimizer state in {path} does not fit this model ({' '.join(str(exc).split())[:100]})"
                           ) from None
    if scheduler is not None and "scheduler" in ckpt:
        scheduler.load_state_dict(ckpt["scheduler"])
    return int(ckpt.get(k.epoch_key, 0)), int(ckpt.get(k.iter_key, 0))


def init_run_dir(paths, dataset_name: str, name: str, config, *, force: bool = False) -> Path:
    """Create ``checkpoints/<dataset>/<name>/{opt.txt, model/}``; an existing opt.txt needs ``force``."""
    d = run_dir(paths, dataset_name, name)
    refuse_overwrite(d / "opt.txt", force, what="run folder")
    (d / "model").mkdir(parents=True, exist_ok=True)
    config.save(d / "opt.txt")
    return d


# ----------------------------------------------------------------------------------------------- model loaders

def load_vq(paths, dataset_name: str, name: str, *, ckpt: str = "net_best_fid.tar", input_width: int | None = None):
    """Residual VQ-VAE of run ``name`` -> (model in eval mode, VQConfig, run folder). No fall-back file."""
    from src.config import VQConfig
    from src.models.momask import build_vq

    d = find_run_dir(paths, dataset_name, name)
    cfg = VQConfig.load(d / "opt.txt")
    model = build_vq(cfg, input_width=input_width)
    load_weights(model, checkpoint_file(d, ckpt, "vq"), "vq")
    return model.eval(), cfg, d


# checkpoint kind -> (config class name in src.config, builder name in src.models.momask)
TRANSFORMERS = {"mask": ("MaskTransConfig", "build_mask_transformer"),
                "res": ("ResTransConfig", "build_res_transformer")}


def load_transformer(kind: str, paths, dataset_name: str, name: str, *, ckpt: str = "net_best_fid.tar", vq_cfg=None):
    """MoMask transformer (``kind`` "mask" or "res") of run ``name``, sized by its opt.txt and its VQ's ->
    (model in eval mode, config, run folder). No fall-back file."""
    import src.config
    import src.models.momask
    from src.config import VQConfig

    if kind not in TRANSFORMERS:
        raise ValueError(f"unknown transformer kind '{kind}' (known: {', '.join(TRANSFORMERS)})")
    cls_name, builder = TRANSFORMERS[kind]
    d = find_run_dir(paths, dataset_name, name)
    cfg = getattr(src.config, cls_name).load(d / "opt.txt")
    if vq_cfg is None:
        vq_cfg = VQConfig.load(find_run_dir(paths, dataset_name, cfg.vq_name) / "opt.txt")
    model = getattr(src.models.momask, builder)(cfg, vq_cfg)
    load_weights(model, checkpoint_file(d, ckpt, kind), kind)
    return model.eval(), cfg, d


def load_mask_transformer(paths, dataset_name: str, name: str, **kw):
    """Masked transformer of run ``name`` -> (model, config, run folder); see :func:`load_transformer`."""
    return load_transformer("mask", paths, dataset_name, name, **kw)


def load_res_transformer(paths, dataset_name: str, name: str, **kw):
    """Residual transformer of run ``name`` -> (model, config, run folder); see :func:`load_transformer`."""
    return load_transformer("res", paths, dataset_name, name, **kw)


def load_len_estimator(paths, dataset_name: str, name: str = "length_estimator", *, ckpt: str = "finest.tar",
                       input_size: int | None = None, output_size: int | None = None):
    """Length estimator -> (model, LenEstConfig, run folder). Upstream writes no opt.txt: defaults (512 -> 50) apply."""
    from src.config import LenEstConfig
    from src.models.momask import build_len_estimator

    d = find_run_dir(paths, dataset_name, name)
    cfg = LenEstConfig.load(d / "opt.txt") if (d / "opt.txt").is_file() else LenEstConfig(name=name)
    model = build_len_estimator(cfg, input_size=input_size, output_size=output_size)
    load_weights(model, d / "model" / ckpt, "len")
    return model.eval(), cfg, d


def load_mean_std(run_folder: str | os.PathLike):
    """``meta/mean.npy`` and ``meta/std.npy`` of a VQ run -> (mean, std) float32 arrays."""
    import numpy as np

    meta = Path(run_folder) / "meta"
    out = []
    for n in ("mean", "std"):
        f = meta / f"{n}.npy"
        if not f.is_file():
            raise HmuError(f"normalisation file not found: {f}")
        try:
            out.append(np.load(f, allow_pickle=False).astype(np.float32))
        except (ValueError, OSError) as exc:
            raise HmuError(f"cannot read {f}: {exc}") from None
    from src.common.validate import check_mean_std

    check_mean_std(out[0], out[1], mean_path=meta / "mean.npy", std_path=meta / "std.npy")
    return out[0], out[1]
