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

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from src.common.errors import HmuError, cli
from src.common.validate import Range
from src.config.command import DeviceOptions, Locations, RunOptions, group, opt
from src.methods.lora_edit import (LoraTrainOptions, adapt, config_args, endless, fit_adapters, load_edit_inputs,
                                   parse_edit_command, timed_training, write_edited_run)


# ------------------------------------------------------------------------------------------------ pure core
@dataclass(frozen=True, kw_only=True)
class EsdOptions(LoraTrainOptions):
    """Fine-tuning settings (module docstring); the adapters have no dropout."""

    eta: float = 1.0
    retain_weight: float = 0.0


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
    from src.models.lora import merge

    if opts.steps >= 1 and not hasattr(model, "mask_id"):
        raise HmuError("ESD here needs a MoMask masked transformer (BAMM / residual: not supported)")
    base, adapted = adapt(model, opts, generator=generator, train=False)
    f_it = endless(forget_batches, "an ESD")
    r_it = endless(retain_batches, "an ESD") if retain_batches is not None and opts.retain_weight else None

    def step_loss():
        return esd_loss(adapted, base, next(f_it), opts, generator=generator,
                        retain=next(r_it) if r_it is not None else None)

    history = fit_adapters(adapted, step_loss, opts, what="ESD", on_step=on_step)
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


def run_esd(cfg: EsdConfig, ctx) -> dict:
    """Load, fine-tune, save (the CLI's body, on a checked config and a context)."""
    import time

    from src.common.io import atomic_write_json
    from src.methods.run_output import edit_meta

    inp = load_edit_inputs(cfg, ctx, use_retain=bool(cfg.retain_weight), momask_only="ESD")
    opts = cfg.options()
    (edited, history), t0 = timed_training(
        lambda on_step: train_esd(inp.model.to(ctx.device), inp.forget, opts, retain_batches=inp.retain,
                                  generator=inp.generator, on_step=on_step),
        steps=opts.steps, desc="ESD", ctx=ctx)
    edited = edited.cpu()
    seconds = time.perf_counter() - t0
    src_ckpt = inp.src_dir / "model" / cfg.ckpt
    meta = edit_meta(method="esd", args=config_args(cfg), source_ckpt=src_ckpt, forget_split=inp.f_split,
                     wall_time_s=seconds, lora=opts.lora().to_dict(), eta=opts.eta,
                     **({"retain_split": inp.r_split} if cfg.retain_weight else {}))
    summary = {"steps": opts.steps, "wall_time_s": seconds, "first": history[0], "last": history[-1]}
    write_edited_run(inp, cfg, ctx, edited, meta=meta,
                     extra_files={"esd.json": lambda p: atomic_write_json(p, {**summary, "history": history})})
    return {**summary, "out": str(inp.dest)}


PROG = "python -m src.methods.esd"
CONFIG = EsdConfig  # the pipeline (src/methods/pipeline.py) checks method flags with it


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg, ctx = parse_edit_command(EsdConfig, argv, prog=PROG, doc=__doc__)
    r = run_esd(cfg, ctx)
    print(f"ESD: {r['steps']} steps in {r['wall_time_s']:.1f}s, MSE to the negative-guidance target "
          f"{r['first']['esd_mse']:.4f} -> {r['last']['esd_mse']:.4f} -> {r['out']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
