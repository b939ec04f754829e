"""ESD (Gandikota et al., "Erasing Concepts from Diffusion Models", ICCV 2023) for masked token transformers.

    python -m src.methods.esd --dataset_name synth --concept violence --trans_name mtrans --name mtrans_esd \\
        [--steps 200 --lr 5e-4 --eta 1.0 --rank 16 --lora_alpha 16 --retain_weight 0.0]

ESD fine-tunes a diffusion model so that its conditional noise prediction for the concept follows *negative
guidance* of the frozen original: ``eps(x_t, c) -> eps*(x_t) - eta * (eps*(x_t, c) - eps*(x_t))``. Here the
prediction is the masked transformer's logits over the codebook at masked positions (what classifier-free guidance
mixes at generation, ``uncond + s * (cond - uncond)``), so the target is, per masked position,

    target = uncond - eta * (cond - uncond)        (cond, uncond: the frozen original's logits, the same input)

and the loss is the mean squared difference between the model's conditional logits and the target over the masked
valid positions of forget motions (ESD's MSE on the noise). The inputs stand in for ESD's noised latents x_t: the
forget motions' first-layer codes with a cosine-scheduled fraction of the valid positions replaced by the mask token
(:func:`partial_mask`, the states iterative decoding passes through). Optional ``--retain_weight``: the same MSE on
retain motions toward the frozen model's own conditional logits (not in ESD; 0 by default).

Why LoRA, not full fine-tuning: the update is confined to a low-rank subspace of the attention and feed-forward
weights (:mod:`src.models.lora`, the same adapters as the task vector), which is the parameter-efficient form ESD
variants use on large models and limits collateral drift on retain prompts at no extra hyper-parameter; the adapter
is merged at scale 1 into a plain run (``load_mask_transformer`` reads it strictly), so nothing downstream changes.
Dropout is off during the fine-tuning (the model runs in eval mode, the condition is never dropped): the target is a
deterministic function of the frozen model and the input, and the prediction should be too. Randomness (masking,
data order, adapter init) comes from one ``torch.Generator`` seeded by ``--seed``.

MoMask masked transformers only (BAMM's and the residual transformer's forwards differ; not yet here).
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from src.common.errors import HmuError, cli
from src.common.validate import Range
from src.config.command import DeviceOptions, Locations, RunOptions, group, opt, parse_config


# ------------------------------------------------------------------------------------------------ pure core
@dataclass(frozen=True, kw_only=True)
class EsdOptions:
    """Fine-tuning settings (module docstring)."""

    eta: float = 1.0
    rank: int = 16
    lora_alpha: float = 16.0
    steps: int = 200
    lr: float = 5e-4
    retain_weight: float = 0.0
    grad_clip: float = 1.0

    def lora(self):
        from src.models.lora import LoRAConfig

        return LoRAConfig(rank=self.rank, alpha=self.lora_alpha, dropout=0.0)


def esd_target(cond, uncond, eta: float):
    """ESD's negative guidance: ``uncond - eta * (cond - uncond)`` (tensors of one shape)."""
    return uncond - eta * (cond - uncond)


def partial_mask(ids, lengths, *, mask_id: int, pad_id: int, generator=None):
    """ids (B, T), token lengths (B,) -> (input ids, padding mask (B, T) True = pad, masked (B, T) bool): per row a
    cosine-scheduled fraction (at least one) of the valid positions set to ``mask_id``; pads to ``pad_id``."""
    import torch

    from src.models.momask.tools import cosine_schedule, lengths_to_mask

    bs, n = ids.shape
    where = generator.device if generator is not None else ids.device
    valid = lengths_to_mask(lengths, n)
    t = torch.rand((bs,), generator=generator, device=where).to(ids.device)
    num = (lengths.float() * cosine_schedule(t)).round().clamp(min=1)
    order = torch.rand((bs, n), generator=generator, device=where).to(ids.device)
    order = torch.where(valid, order, torch.full_like(order, 2.0)).argsort(dim=-1).argsort(dim=-1)
    masked = (order < num[:, None]) & valid
    x = torch.where(valid, ids, torch.full_like(ids, pad_id))
    x = torch.where(masked, torch.full_like(ids, mask_id), x)
    return x, ~valid, masked


def esd_loss(model, base, batch, opts: EsdOptions, *, generator=None, retain=None) -> tuple[Any, dict[str, float]]:
    """One step's objective. ``batch``/``retain``: (ids (B, T), text features (B, clip_dim), token lengths (B,)).
    ``model``: the adapted model; ``base``: the frozen original (both in eval mode)."""
    import torch

    ids, cond, lengths = batch
    x, pad, masked = partial_mask(ids, lengths, mask_id=base.mask_id, pad_id=base.pad_id, generator=generator)
    with torch.no_grad():
        c = base.trans_forward(x, cond, pad)                       # (B, K, T)
        u = base.trans_forward(x, cond, pad, force_mask=True)
        target = esd_target(c, u, opts.eta)
    pred = model.trans_forward(x, cond, pad)
    sel = masked[:, None, :].expand_as(pred)
    loss = ((pred - target) ** 2)[sel].mean()
    metrics = {"esd_mse": float(loss.detach()), "masked": int(masked.sum())}
    total = loss
    if retain is not None and opts.retain_weight:
        ids_r, cond_r, len_r = retain
        xr, pad_r, m_r = partial_mask(ids_r, len_r, mask_id=base.mask_id, pad_id=base.pad_id, generator=generator)
        with torch.no_grad():
            keep = base.trans_forward(xr, cond_r, pad_r)
        pr = model.trans_forward(xr, cond_r, pad_r)
        mse_r = ((pr - keep) ** 2)[m_r[:, None, :].expand_as(pr)].mean()
        total = total + opts.retain_weight * mse_r
        metrics["retain_mse"] = float(mse_r.detach())
    metrics["objective"] = float(total.detach())
    return total, metrics


def train_esd(model, forget_batches: Callable[[], Iterator], opts: EsdOptions, *,
              retain_batches: Callable[[], Iterator] | None = None, generator=None,
              on_step: Callable[[int, dict], None] | None = None):
    """LoRA adapters on a copy of ``model`` trained with :func:`esd_loss` for ``opts.steps`` steps, merged at scale 1
    -> (a plain edited model, per-step metrics). ``model`` is not changed."""
    import torch

    from src.models.lora import add_lora, lora_parameters, merge

    if opts.steps < 1:
        raise HmuError(f"--steps must be >= 1, got {opts.steps}")
    if not hasattr(model, "mask_id"):
        raise HmuError("ESD here needs a MoMask masked transformer (BAMM / residual: not supported)")
    base = copy.deepcopy(model).eval()
    for p in base.parameters():
        p.requires_grad_(False)
    adapted = add_lora(model, opts.lora(), generator=generator).eval()
    params = lora_parameters(adapted)
    optimizer = torch.optim.AdamW(params, lr=opts.lr, weight_decay=0.0)

    def endless(make):
        while True:
            empty = True
            for b in make():
                empty = False
                yield b
            if empty:
                raise HmuError("an ESD data stream yielded no batch")

    f_it = endless(forget_batches)
    r_it = endless(retain_batches) if retain_batches is not None and opts.retain_weight else None
    history = []
    for step in range(opts.steps):
        loss, metrics = esd_loss(adapted, base, next(f_it), opts, generator=generator,
                                 retain=next(r_it) if r_it is not None else None)
        if not math.isfinite(float(loss.detach())):
            raise HmuError(f"ESD: non-finite objective at step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if opts.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, opts.grad_clip)
        optimizer.step()
        history.append(metrics)
        if on_step is not None:
            on_step(step, metrics)
    return merge(adapted, 1.0).eval(), history


# ------------------------------------------------------------------------------------------------ CLI
@dataclasses.dataclass(kw_only=True)
class EsdConfig:
    """ESD (negative guidance) fine-tuning of a masked transformer into a new run."""

    dataset_name: str = opt("synth", help="dataset name or alias")
    concept: str = opt("violence", help="concept to forget (its keyword splits must exist: python -m src.data.split)",
                       aliases=("--split_name",))
    trans_name: str = opt("mtrans", help="source masked-transformer run (read only)")
    name: str = opt("mtrans_esd", help="NEW run for the edited masked transformer")
    ckpt: str = opt("net_best_fid.tar", help="source checkpoint file in the run's model/")
    main_split: str = opt("train_val", help="split the keyword splits were made from")
    forget_split: str | None = opt(None, help="forget ids (default kw_splits/<main_split>-w-<concept>)")
    retain_split: str | None = opt(None, help="retain ids (default kw_splits/<main_split>-wo-<concept>); used only "
                                              "with --retain_weight > 0")
    steps: int = opt(200, help="optimizer steps", range=Range(lo=1))
    batch_size: int = opt(32, help="batch size", range=Range(lo=1))
    lr: float = opt(5e-4, help="AdamW learning rate of the adapters", range=Range(lo=0.0, lo_open=True))
    eta: float = opt(1.0, help="negative-guidance strength: target = uncond - eta * (cond - uncond)",
                     range=Range(lo=0.0, lo_open=True))
    rank: int = opt(16, help="LoRA rank", range=Range(lo=1))
    lora_alpha: float = opt(16.0, help="LoRA alpha: B@A is scaled by lora_alpha/rank",
                            range=Range(lo=0.0, lo_open=True))
    retain_weight: float = opt(0.0, help="weight of keeping the original's conditional logits on retain motions "
                                         "(not in ESD)", range=Range(lo=0.0))
    seed: int = opt(0, help="seed of data order, masking and adapter init")
    glove_dir: str | None = opt(None, help="word vectors for the embedded text encoder")
    clip_path: str | None = opt(None, help="CLIP weights file for a clip text encoder")
    device: DeviceOptions = group(DeviceOptions)
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir"))
    run: RunOptions = group(RunOptions)

    def options(self) -> EsdOptions:
        return EsdOptions(eta=self.eta, rank=self.rank, lora_alpha=self.lora_alpha, steps=self.steps, lr=self.lr,
                          retain_weight=self.retain_weight)


PROG = "python -m src.methods.esd"
CONFIG = EsdConfig  # the pipeline (src/methods/pipeline.py) checks method flags with it


def run_esd(cfg: EsdConfig, ctx) -> dict:
    """Load, fine-tune, save (the CLI's body, on a checked config and a context)."""
    import json
    import time

    import torch

    from src.common.io import atomic_write_json
    from src.common.progress import progress as bar
    from src.common.seed import fix_seed
    from src.data.datasets import resolve_ids
    from src.data.keywords import forget_keywords, split_paths
    from src.gen.generate import run_family
    from src.methods.run_output import edit_meta, model_checkpoint, output_dir, write_run
    from src.methods.taskvec import _stream
    from src.models.checkpoint import find_run_dir, load_mask_transformer, load_mean_std, load_vq
    from src.train import feed

    paths, device, spec = ctx.paths, ctx.device, ctx.spec
    forget_keywords(spec.name, cfg.concept)
    root = paths.data_root(spec.name)
    w, wo = split_paths(root, cfg.main_split, cfg.concept)
    f_split = cfg.forget_split or str(w.relative_to(root).with_suffix(""))
    r_split = cfg.retain_split or str(wo.relative_to(root).with_suffix(""))
    resolve_ids(root, f_split)
    if cfg.retain_weight:
        resolve_ids(root, r_split)
    src_dir = find_run_dir(paths, spec.name, cfg.trans_name)
    if run_family(src_dir / "opt.txt") != "momask":
        raise HmuError(f"{cfg.trans_name} is not a MoMask masked-transformer run (ESD here supports MoMask only)")
    dest = output_dir(paths, spec.name, cfg.name, force=ctx.force, sources=(src_dir,))

    fix_seed(cfg.seed)
    model, mcfg, src_dir = load_mask_transformer(paths, spec.name, cfg.trans_name, ckpt=cfg.ckpt)
    vq, _, vq_dir = load_vq(paths, spec.name, mcfg.vq_name)
    vq = vq.to(device).eval()
    mean, std = load_mean_std(vq_dir)
    folder = feed.open_folder(paths, spec.name)
    f_ds = feed.t2m_dataset(folder, f_split, mean=mean, std=std, cfg=mcfg, seed=cfg.seed)
    sets = [f_ds]
    if cfg.retain_weight:
        r_ds = feed.t2m_dataset(folder, r_split, mean=mean, std=std, cfg=mcfg, seed=cfg.seed)
        sets.append(r_ds)
    encoder = feed.build_encoder(paths, mcfg, device, glove_dir=cfg.glove_dir, clip_path=cfg.clip_path)
    text = feed.TextFeatures(encoder, feed.dataset_captions(*sets), progress=ctx.progress)
    unit = mcfg.unit_length
    forget = _stream(f_ds, vq=vq, text=text, unit=unit, batch_size=cfg.batch_size, seed=cfg.seed, device=device)
    retain = (_stream(r_ds, vq=vq, text=text, unit=unit, batch_size=cfg.batch_size, seed=cfg.seed + 1,
                      device=device) if cfg.retain_weight else None)
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    opts = cfg.options()

    t0 = time.perf_counter()
    pbar = bar(total=opts.steps, desc="ESD", unit="step", enabled=ctx.progress)
    with pbar:
        edited, history = train_esd(model.to(device), forget, opts, retain_batches=retain, generator=g,
                                    on_step=lambda step, m: pbar.update(1))
    edited = edited.cpu()
    seconds = time.perf_counter() - t0
    src_ckpt = src_dir / "model" / cfg.ckpt
    meta = edit_meta(method="esd", args=json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
                     source_ckpt=src_ckpt, forget_split=f_split, wall_time_s=seconds, lora=opts.lora().to_dict(),
                     eta=opts.eta, **({"retain_split": r_split} if cfg.retain_weight else {}))
    summary = {"steps": opts.steps, "wall_time_s": seconds, "first": history[0], "last": history[-1]}
    write_run(dest, source_run=src_dir, out_name=cfg.name, force=ctx.force,
              checkpoints={cfg.ckpt: model_checkpoint("mask", edited, hmu_meta=meta)},
              extra_files={"esd.json": lambda p: atomic_write_json(p, {**summary, "history": history})})
    return {**summary, "out": str(dest)}


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(EsdConfig, argv, prog=PROG, doc=__doc__, raw_description=True)
    from src.config.command import command_context

    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run)
    cfg = dataclasses.replace(cfg, dataset_name=ctx.spec.name)
    r = run_esd(cfg, ctx)
    print(f"ESD: {r['steps']} steps in {r['wall_time_s']:.1f}s, MSE to the negative-guidance target "
          f"{r['first']['esd_mse']:.4f} -> {r['last']['esd_mse']:.4f} -> {r['out']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
