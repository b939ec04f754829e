"""The training loop shared by every model family: epochs, progress, JSONL logs, best-by-validation, resume.

Determinism across a kill: every epoch draws its data order from ``seed + epoch`` (a fresh numpy Generator), the torch
RNG state is saved in ``latest.tar`` at each epoch end, and resuming restarts the interrupted epoch from that state. A
run killed mid-epoch therefore ends with the same weights as an uninterrupted one (up to float non-determinism of the
backend).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.common.errors import HmuError, one_line
from src.common.io import atomic_torch_save, torch_load
from src.common.logging import MetricLogger

log = logging.getLogger(__name__)


@dataclass
class TrainSpec:
    """What the engine needs to know about one model family's checkpoint format (upstream's key names)."""

    model_key: str                 # 'vq_model' | 't2m_transformer' | 'res_transformer' | 'estimator' | ...
    opt_key: str | None            # 'opt_vq_model' | 'opt_t2m_transformer' | ... (None: not saved)
    best_file: str = "net_best_fid.tar"
    higher_is_better: bool = False  # validation score direction
    extra_best_keys: dict[str, Any] = field(default_factory=dict)


def _model_state(model) -> dict:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("clip_model.")}


def _hidden_buffers(model) -> dict:
    """Non-persistent buffers (e.g. the VQ's EMA ``code_sum``/``code_count``): not in upstream's state dict, but a
    resumed run needs them to continue exactly where the killed one stopped."""
    keys = set(model.state_dict().keys())
    return {n: b.detach().clone() for n, b in model.named_buffers() if n not in keys}


def _restore_hidden_buffers(model, saved: dict) -> None:
    for name, value in saved.items():
        module_name, _, buf = name.rpartition(".")
        module = model.get_submodule(module_name) if module_name else model
        setattr(module, buf, value.to(getattr(module, buf).device))


def train(
    *,
    model,
    optimizer,
    scheduler,
    spec: TrainSpec,
    run_dir: str | Path,
    batches: Callable[[int], Iterable[Any]],
    step: Callable[[Any, int], dict[str, float]],
    validate: Callable[[], dict[str, float]] | None,
    score_key: str | None,
    max_epoch: int,
    seed: int,
    meta: dict | None = None,
    resume: bool = True,
    log_every: int = 50,
    progress: bool = True,
    clip_grad: float | None = None,
) -> dict[str, Any]:
    """Run ``max_epoch`` epochs; return a summary (best score, epochs run, wall time).

    batches(epoch) yields the epoch's batches (derive its randomness from ``seed + epoch``); step(batch, it) does the
    forward pass and returns a dict of scalar tensors/floats with a ``loss`` entry, on which the engine calls backward.
    Files: ``<run_dir>/model/latest.tar`` every epoch, ``<run_dir>/model/<spec.best_file>`` whenever ``score_key``
    improves, ``<run_dir>/train_log.jsonl`` (one record per ``log_every`` iterations and per epoch).
    """
    import torch

    from src.common.progress import progress as progress_bar

    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    latest = model_dir / "latest.tar"
    logger = MetricLogger(run_dir / "train_log.jsonl")

    start_epoch, total_it = 0, 0
    best = -math.inf if spec.higher_is_better else math.inf
    if resume and latest.exists():
        ckpt = torch_load(latest, "checkpoint")
        try:
            model.load_state_dict(ckpt[spec.model_key], strict=True)
        except (KeyError, RuntimeError, TypeError) as exc:
            raise HmuError(f"{latest} does not fit this model ({one_line(exc)[:300]})") from None
        if spec.opt_key and spec.opt_key in ckpt:
            optimizer.load_state_dict(ckpt[spec.opt_key])
        if scheduler is not None and "scheduler" in ckpt:
            scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, total_it = int(ckpt.get("ep", 0)), int(ckpt.get("total_it", 0))
        hmu = ckpt.get("hmu_train", {})
        best = hmu.get("best", best)
        if "torch_rng" in hmu:
            torch.set_rng_state(hmu["torch_rng"])
        _restore_hidden_buffers(model, hmu.get("buffers", {}))
        log.info("resumed %s at epoch %d (iteration %d)", latest, start_epoch, total_it)

    t0 = time.time()
    epochs_run = 0
    for epoch in range(start_epoch, max_epoch):
        model.train()
        sums: dict[str, float] = {}
        n = 0
        # total from len(batches(epoch)) when it has one (src.common.progress.Sized): the bar shows an ETA
        it_bar = progress_bar(batches(epoch), desc=f"epoch {epoch + 1}/{max_epoch}", unit="batch", enabled=progress)
        for batch in it_bar:
            out = step(batch, total_it)
            loss = out["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total_it += 1
            n += 1
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach() if hasattr(v, "detach") else v)
            if total_it % log_every == 0:
                logger.log(step=total_it, epoch=epoch, **{k: float(v.detach() if hasattr(v, "detach") else v) for k, v in out.items()})
            it_bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        record = {f"train_{k}": v / max(n, 1) for k, v in sums.items()}
        if validate is not None:
            model.eval()
            with torch.no_grad():
                record.update({f"val_{k}": float(v) for k, v in validate().items()})
        logger.log(step=total_it, epoch=epoch + 1, **record)
        improved = False
        if score_key is not None and f"val_{score_key}" in record:
            s = record[f"val_{score_key}"]
            improved = s > best if spec.higher_is_better else s < best
            if improved:
                best = s
                atomic_torch_save({spec.model_key: _model_state(model), "ep": epoch + 1, **spec.extra_best_keys,
                                   "hmu_meta": meta or {}}, model_dir / spec.best_file)
        ckpt = {spec.model_key: _model_state(model), "ep": epoch + 1, "total_it": total_it}
        if spec.opt_key:
            ckpt[spec.opt_key] = optimizer.state_dict()
        if scheduler is not None:
            ckpt["scheduler"] = scheduler.state_dict()
        ckpt["hmu_train"] = {"best": best, "torch_rng": torch.get_rng_state(), "seed": seed,
                             "buffers": _hidden_buffers(model)}
        ckpt["hmu_meta"] = meta or {}
        atomic_torch_save(ckpt, latest)
        epochs_run += 1
        log.info("epoch %d/%d %s%s", epoch + 1, max_epoch,
                 " ".join(f"{k}={v:.4f}" for k, v in record.items()), " (best)" if improved else "")
    if score_key is None or not (model_dir / spec.best_file).exists():
        # No validation score: the last epoch is the one to use.
        atomic_torch_save({spec.model_key: _model_state(model), "ep": max_epoch, **spec.extra_best_keys,
                           "hmu_meta": meta or {}}, model_dir / spec.best_file)
    return {"best": best, "epochs_run": epochs_run, "total_it": total_it, "wall_time_s": time.time() - t0}


def make_optimizer(model, cfg, *, weight_decay: float = 0.0, betas=(0.9, 0.99)):
    """AdamW over trainable parameters, and upstream's schedule as one LambdaLR: linear warm-up over
    ``warm_up_iter`` iterations, then x ``gamma`` at each milestone (stepped per iteration)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=betas, weight_decay=weight_decay)
    warm, milestones, gamma = int(cfg.warm_up_iter), sorted(int(m) for m in cfg.milestones), float(cfg.gamma)

    def factor(it: int) -> float:
        w = min(1.0, (it + 1) / (warm + 1)) if warm > 0 else 1.0
        return w * gamma ** sum(it >= m for m in milestones)

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_select_best(model, *, model_key: str, optimizer, run_dir, batches, step, validate, score_key: str,
                      max_epoch: int, seed: int, progress: bool = True) -> tuple[dict, dict]:
    """Train with the highest validation ``score_key`` kept in ``model/best.tar``, then load those weights back
    strictly into ``model`` (eval mode) -> (the engine's summary, the best file's dict). The one-file trainers
    (evaluator, action classifier) use it."""
    spec = TrainSpec(model_key=model_key, opt_key=f"opt_{model_key}", best_file="best.tar", higher_is_better=True)
    summary = train(model=model, optimizer=optimizer, scheduler=None, spec=spec, run_dir=run_dir, batches=batches,
                    step=step, validate=validate, score_key=score_key, max_epoch=max_epoch, seed=seed,
                    progress=progress)
    best = torch_load(Path(run_dir) / "model" / "best.tar")
    model.load_state_dict(best[model_key], strict=True)
    model.eval()
    return summary, best
