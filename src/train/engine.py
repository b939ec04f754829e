"""The training loop shared by every model family: epochs, progress, JSONL logs, best-by-validation, resume.

Determinism across a kill: every epoch draws its data order from ``seed + epoch`` (a fresh numpy Generator), the torch
RNG state is saved in ``latest.tar`` at each epoch end, and resuming restarts the interrupted epoch from that state. A
run killed mid-epoch therefore ends with the same weights as an uninterrupted one (up to float non-determinism of the
backend).

Under ``torchrun`` (src/common/dist.py) the same loop runs on every rank: the model's step is wrapped in
DistributedDataParallel (gradients averaged over the ranks), each rank takes its contiguous share of every global batch
(``feed.epoch_order`` shards it; the global batch stays the flag's), the epoch's means are averaged over the ranks, and
only rank 0 writes ``latest.tar``, the best file and the JSONL log. Each rank's torch RNG state is saved in
``latest.tar`` and restored on resume, so a killed multi-process run resumes exactly as a single-process one does.
Mixed precision (``amp``: "bf16" | "fp16", CUDA only) runs the step under autocast; fp16 adds a gradient scaler.
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
    fid_file: str = "net_best_fid.tar"  # lowest FID of the ``fid_eval`` hook, when one is given


@dataclass
class Checkpointing:
    """Upstream's epoch options. ``fid_eval(epoch) -> {"fid": ..., ...}`` (the T2M evaluator's FID on validation data)
    runs every ``eval_every_e`` epochs and after the last one; the lowest FID is kept in ``spec.fid_file``.
    ``save_every_e`` > 0 keeps ``model/E%04d.tar`` every that many epochs (upstream's name)."""

    fid_eval: Callable[[int], dict[str, float]] | None = None
    eval_every_e: int = 1
    save_every_e: int = 0


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


AMP_CHOICES = ("off", "bf16", "fp16")


def _step_module(model, step):
    """The trainer's step as a module for DistributedDataParallel: its forward is ``step(batch, it)``. The step
    closes over the model's own submodules; DDP only needs the forward to pass through it, so that its gradient hooks
    expect this iteration's backward."""
    import torch

    class StepModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, batch, it):
            return step(batch, it)

    return StepModule()


def _wrap_ddp(model, step):
    """-> step(batch, it) that runs through DistributedDataParallel when the process group is up, else ``step``."""
    from src.common import dist

    if dist.world_size() == 1 or not any(p.requires_grad for p in model.parameters()):
        return step
    from torch.nn.parallel import DistributedDataParallel

    # device_ids=None: the step moves its own inputs; find_unused_parameters: a trainer's step may leave some
    # parameters out of one iteration's graph (the residual transformer's shared heads, condition dropout).
    ddp = DistributedDataParallel(_step_module(model, step), device_ids=None, find_unused_parameters=True)
    return lambda batch, it: ddp(batch, it)


def autocast(device, amp: str | None):
    """The autocast context of ``amp`` ("off"/None, "bf16", "fp16") on ``device``; off on CPU (no speed-up there)."""
    import contextlib

    import torch

    if amp not in AMP_CHOICES and amp is not None:
        raise HmuError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    if not amp or amp == "off" or torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def prefetch(iterable: Iterable[Any], ahead: int) -> Iterable[Any]:
    """``iterable``'s items, prepared up to ``ahead`` in advance by a background thread (``ahead`` 0: in line).
    Batch collation (numpy, tensor copies) then overlaps the training step; the order is unchanged."""
    if ahead <= 0:
        yield from iterable
        return
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=ahead)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in iterable:
                if stop.is_set():
                    return
                q.put(("item", item))
            q.put(("end", done))
        except BaseException as exc:  # re-raised in the training thread
            q.put(("error", exc))

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()


def _device_of(model):
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


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
    logger: MetricLogger | None = None,
    checkpointing: Checkpointing | None = None,
    amp: str | None = None,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Run ``max_epoch`` epochs; return a summary (best score, epochs run, wall time).

    batches(epoch) yields the epoch's batches (derive its randomness from ``seed + epoch``); step(batch, it) does the
    forward pass and returns a dict of scalar tensors/floats with a ``loss`` entry, on which the engine calls backward.
    Files: ``<run_dir>/model/latest.tar`` every epoch, ``<run_dir>/model/<spec.best_file>`` whenever ``score_key``
    improves, ``<run_dir>/train_log.jsonl`` (one record per ``log_every`` iterations and per epoch) through ``logger``
    (default: a JSONL-only :class:`MetricLogger`; pass one with wandb to mirror it). ``checkpointing``: FID selection
    and periodic copies (:class:`Checkpointing`).
    ``amp``: autocast of the step on CUDA ("bf16" | "fp16"; off on CPU); ``num_workers``: batches prepared that many
    ahead in a background thread.
    """
    import torch

    from src.common.progress import progress as progress_bar

    from src.common import dist

    main = dist.is_main()
    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    latest = model_dir / "latest.tar"
    if main:
        model_dir.mkdir(parents=True, exist_ok=True)
    # rank 0 logs (JSONL, wandb when asked); the other ranks log nothing
    logger = (logger or MetricLogger(run_dir / "train_log.jsonl")) if main else None
    ck = checkpointing or Checkpointing()
    best_fid = math.inf
    progress = progress and main
    device = _device_of(model)
    use_scaler = amp == "fp16" and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None

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
        best_fid = hmu.get("best_fid", best_fid)
        rank_rngs = hmu.get("torch_rng_ranks")
        if rank_rngs is not None and len(rank_rngs) == dist.world_size():
            torch.set_rng_state(rank_rngs[dist.rank()])
        elif "torch_rng" in hmu:
            torch.set_rng_state(hmu["torch_rng"])
        if scaler is not None and "grad_scaler" in hmu:
            scaler.load_state_dict(hmu["grad_scaler"])
        _restore_hidden_buffers(model, hmu.get("buffers", {}))
        log.info("resumed %s at epoch %d (iteration %d)", latest, start_epoch, total_it)

    run_step = _wrap_ddp(model, step)
    params = [p for p in model.parameters() if p.requires_grad]
    t0 = time.time()
    epochs_run = 0
    for epoch in range(start_epoch, max_epoch):
        model.train()
        sums: dict[str, float] = {}
        n = 0
        # total from len(batches(epoch)) when it has one (src.common.progress.Sized): the bar shows an ETA
        epoch_batches = batches(epoch)
        total = len(epoch_batches) if hasattr(epoch_batches, "__len__") else None  # src.common.progress.Sized
        it_bar = progress_bar(prefetch(epoch_batches, num_workers), desc=f"epoch {epoch + 1}/{max_epoch}", unit="batch",
                              enabled=progress, total=total)
        for batch in it_bar:
            with autocast(device, amp):
                out = run_step(batch, total_it)
            loss = out["loss"]
            if not bool(torch.isfinite(loss.detach()).all()):
                # stop before the step spreads NaN into the weights: latest.tar and the best file keep the last
                # good epoch, and nothing non-finite is saved
                raise HmuError(f"training stopped: loss is {float(loss.detach())} at epoch {epoch + 1}, iteration "
                               f"{total_it + 1} of {run_dir}; the last good checkpoint is kept "
                               f"({'none yet' if not latest.exists() else latest}); check the data "
                               f"(Mean/Std, features) and --lr")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if clip_grad:
                torch.nn.utils.clip_grad_norm_(params, clip_grad)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total_it += 1
            n += 1
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach() if hasattr(v, "detach") else v)
            if main and total_it % log_every == 0:
                logger.log(step=total_it, epoch=epoch, **{k: float(v.detach() if hasattr(v, "detach") else v) for k, v in out.items()})
            it_bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        record = dist.mean_over_ranks({f"train_{k}": v / max(n, 1) for k, v in sums.items()})
        if validate is not None:
            model.eval()
            with torch.no_grad():
                record.update({f"val_{k}": float(v) for k, v in validate().items()})
        if main and ck.fid_eval is not None and ((epoch + 1) % max(ck.eval_every_e, 1) == 0 or epoch + 1 == max_epoch):
            model.eval()
            with torch.no_grad():
                record.update({f"eval_{k}": float(v) for k, v in ck.fid_eval(epoch + 1).items()})
            if record.get("eval_fid", math.inf) < best_fid:
                best_fid = record["eval_fid"]
                atomic_torch_save({spec.model_key: _model_state(model), "ep": epoch + 1, **spec.extra_best_keys,
                                   "hmu_meta": {**(meta or {}), "selected_by": "fid", "fid": best_fid}},
                                  model_dir / spec.fid_file)
        if main and ck.save_every_e > 0 and (epoch + 1) % ck.save_every_e == 0:
            atomic_torch_save({spec.model_key: _model_state(model), "ep": epoch + 1, "total_it": total_it,
                               "hmu_meta": meta or {}}, model_dir / f"E{epoch + 1:04d}.tar")
        rngs = dist.all_gather_objects(torch.get_rng_state())  # a collective: every rank, every epoch
        epochs_run += 1
        improved = False
        if score_key is not None and f"val_{score_key}" in record:
            s = record[f"val_{score_key}"]
            improved = s > best if spec.higher_is_better else s < best
            best = s if improved else best
        if not main:
            continue
        logger.log(step=total_it, epoch=epoch + 1, **record)
        if improved:
            atomic_torch_save({spec.model_key: _model_state(model), "ep": epoch + 1, **spec.extra_best_keys,
                               "hmu_meta": meta or {}}, model_dir / spec.best_file)
        ckpt = {spec.model_key: _model_state(model), "ep": epoch + 1, "total_it": total_it}
        if spec.opt_key:
            ckpt[spec.opt_key] = optimizer.state_dict()
        if scheduler is not None:
            ckpt["scheduler"] = scheduler.state_dict()
        ckpt["hmu_train"] = {"best": best, "best_fid": best_fid, "torch_rng": rngs[0], "torch_rng_ranks": rngs,
                             "seed": seed, "buffers": _hidden_buffers(model), "world_size": dist.world_size()}
        if scaler is not None:
            ckpt["hmu_train"]["grad_scaler"] = scaler.state_dict()
        ckpt["hmu_meta"] = meta or {}
        atomic_torch_save(ckpt, latest)
        log.info("epoch %d/%d %s%s", epoch + 1, max_epoch,
                 " ".join(f"{k}={v:.4f}" for k, v in record.items()), " (best)" if improved else "")
    if main and (score_key is None or not (model_dir / spec.best_file).exists()):
        # No validation score: the last epoch is the one to use.
        atomic_torch_save({spec.model_key: _model_state(model), "ep": max_epoch, **spec.extra_best_keys,
                           "hmu_meta": meta or {}}, model_dir / spec.best_file)
    dist.barrier()  # the other ranks may read the files rank 0 just wrote
    return {"best": best, "best_fid": best_fid if math.isfinite(best_fid) else None, "epochs_run": epochs_run,
            "total_it": total_it, "wall_time_s": time.time() - t0}


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
                      max_epoch: int, seed: int, progress: bool = True, wandb=None, amp: str | None = None,
                      num_workers: int = 0) -> tuple[dict, dict]:
    """Train with the highest validation ``score_key`` kept in ``model/best.tar``, then load those weights back
    strictly into ``model`` (eval mode) -> (the engine's summary, the best file's dict). The one-file trainers
    (evaluator, action classifier) use it. ``wandb``: src.common.logging.WandbOptions, mirrors the log when enabled."""
    logger = MetricLogger(Path(run_dir) / "train_log.jsonl", wandb=wandb, name=Path(run_dir).name,
                          config={"model_key": model_key, "max_epoch": max_epoch, "seed": seed}, dir=run_dir)
    spec = TrainSpec(model_key=model_key, opt_key=f"opt_{model_key}", best_file="best.tar", higher_is_better=True)
    summary = train(model=model, optimizer=optimizer, scheduler=None, spec=spec, run_dir=run_dir, batches=batches,
                    step=step, validate=validate, score_key=score_key, max_epoch=max_epoch, seed=seed,
                    progress=progress, logger=logger, amp=amp, num_workers=num_workers)
    where = logger.finish()
    if where:
        print(where)
    best = torch_load(Path(run_dir) / "model" / "best.tar")
    model.load_state_dict(best[model_key], strict=True)
    model.eval()
    return summary, best
