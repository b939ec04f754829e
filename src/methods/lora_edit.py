"""What the LoRA edits of a MoMask masked transformer share (ESD, :mod:`src.methods.esd`; the task vector,
:mod:`src.methods.taskvec`): the adapter settings, the frozen original beside the adapted copy, the endless data
streams, the optimizer loop, and a CLI run's inputs (keyword splits, source run, VQ, datasets, text features,
token streams) and its output (a new run with the edited checkpoint).

Each method keeps what is its own: the loss of one step, what it checks about the model, the extra files it writes.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from src.common.errors import HmuError


@dataclass(frozen=True, kw_only=True)
class LoraTrainOptions:
    """The adapter and optimizer settings every LoRA edit has (methods add their loss weights)."""

    rank: int = 16
    lora_alpha: float = 16.0
    dropout: float = 0.0
    steps: int = 200
    lr: float = 5e-4
    grad_clip: float = 1.0

    def lora(self):
        from src.models.lora import LoRAConfig

        return LoRAConfig(rank=self.rank, alpha=self.lora_alpha, dropout=self.dropout)


def adapt(model, opts: LoraTrainOptions, *, generator=None, train: bool):
    """-> (frozen copy of ``model`` in eval mode, a LoRA-adapted copy in train or eval mode). ``model`` is not
    changed; the adapter init draws from ``generator``."""
    from src.models.lora import add_lora

    if opts.steps < 1:
        raise HmuError(f"--steps must be >= 1, got {opts.steps}")
    base = copy.deepcopy(model).eval()
    for p in base.parameters():
        p.requires_grad_(False)
    adapted = add_lora(model, opts.lora(), generator=generator).train(train)
    return base, adapted


def endless(make: Callable[[], Iterator], what: str) -> Iterator:
    """Batches of ``make()``, restarted each time it is exhausted; ``what`` names the stream in the error raised
    when one pass yields nothing."""
    while True:
        empty = True
        for batch in make():
            empty = False
            yield batch
        if empty:
            raise HmuError(f"{what} data stream yielded no batch")


def fit_adapters(adapted, step_loss: Callable[[], tuple[Any, dict]], opts: LoraTrainOptions, *, what: str,
                 on_step: Callable[[int, dict], None] | None = None) -> list[dict]:
    """AdamW on the adapters of ``adapted`` for ``opts.steps`` steps of ``step_loss() -> (loss, metrics)``, with
    gradient clipping at ``opts.grad_clip`` (off at 0) -> the per-step metrics. A non-finite loss stops it."""
    import torch

    from src.models.lora import lora_parameters

    params = lora_parameters(adapted)
    optimizer = torch.optim.AdamW(params, lr=opts.lr, weight_decay=0.0)
    history = []
    for step in range(opts.steps):
        loss, metrics = step_loss()
        if not math.isfinite(float(loss.detach())):
            raise HmuError(f"{what}: non-finite objective at step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if opts.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, opts.grad_clip)
        optimizer.step()
        history.append(metrics)
        if on_step is not None:
            on_step(step, metrics)
    return history


# ------------------------------------------------------------------------------------------------ a CLI run
def token_stream(ds, *, vq, text, unit: int, batch_size: int, seed: int, device):
    """batches() -> iterator of (first-layer ids, text features, token lengths) over one shuffled epoch; each call
    is the next epoch."""
    from src.train import feed
    from src.train.transformer import encode_codes

    epoch = [0]

    def batches():
        bs = min(batch_size, len(ds))
        for batch in feed.t2m_batches(ds, batch_size=bs, seed=seed)(epoch[0]):
            captions, _, motions, lengths = batch
            ids, m_lens = encode_codes(vq, motions.to(device), lengths.to(device), unit)
            yield ids[..., 0], text(captions), m_lens
        epoch[0] += 1

    return batches


@dataclass
class EditInputs:
    """What a LoRA edit's CLI loads before training (:func:`load_edit_inputs`)."""

    src_dir: Any
    dest: Any
    model: Any
    f_split: str
    r_split: str
    f_ds: Any
    r_ds: Any                   # None when the retain set is not used
    text: Any
    forget: Callable[[], Iterator]
    retain: Callable[[], Iterator] | None
    generator: Any


def load_edit_inputs(cfg, ctx, *, use_retain: bool, momask_only: str | None = None) -> EditInputs:
    """The keyword splits of ``cfg.concept`` (or ``cfg.forget_split``/``cfg.retain_split``), the source masked
    transformer run ``cfg.trans_name`` (checkpoint ``cfg.ckpt``), the checked new run dir ``cfg.name``, the VQ's
    token streams of forget (seed ``cfg.seed``) and, with ``use_retain``, retain motions (seed ``cfg.seed + 1``),
    and the training generator seeded by ``cfg.seed``. ``momask_only``: the method's name, given when the source run
    must be a MoMask run (checked before the new run dir is claimed)."""
    import torch

    from src.common.seed import fix_seed
    from src.data.datasets import resolve_ids
    from src.data.keywords import forget_keywords, split_paths
    from src.methods.run_output import output_dir
    from src.models.checkpoint import find_run_dir, load_mask_transformer, load_mean_std, load_vq
    from src.train import feed

    paths, device, spec = ctx.paths, ctx.device, ctx.spec
    forget_keywords(spec.name, cfg.concept)
    root = paths.data_root(spec.name)
    w, wo = split_paths(root, cfg.main_split, cfg.concept)
    f_split = cfg.forget_split or str(w.relative_to(root).with_suffix(""))
    r_split = cfg.retain_split or str(wo.relative_to(root).with_suffix(""))
    resolve_ids(root, f_split)
    if use_retain:
        resolve_ids(root, r_split)
    src_dir = find_run_dir(paths, spec.name, cfg.trans_name)
    if momask_only is not None:
        from src.gen.generate import run_family

        if run_family(src_dir / "opt.txt") != "momask":
            raise HmuError(f"{cfg.trans_name} is not a MoMask masked-transformer run ({momask_only} here supports "
                           f"MoMask only)")
    dest = output_dir(paths, spec.name, cfg.name, force=ctx.force, sources=(src_dir,))

    fix_seed(cfg.seed)
    model, mcfg, src_dir = load_mask_transformer(paths, spec.name, cfg.trans_name, ckpt=cfg.ckpt)
    vq, _, vq_dir = load_vq(paths, spec.name, mcfg.vq_name)
    vq = vq.to(device).eval()
    mean, std = load_mean_std(vq_dir)
    folder = feed.open_folder(paths, spec.name)
    f_ds = feed.t2m_dataset(folder, f_split, mean=mean, std=std, cfg=mcfg, seed=cfg.seed)
    r_ds = feed.t2m_dataset(folder, r_split, mean=mean, std=std, cfg=mcfg, seed=cfg.seed) if use_retain else None
    encoder = feed.build_encoder(paths, mcfg, device, glove_dir=cfg.glove_dir, clip_path=cfg.clip_path)
    sets = [f_ds] + ([r_ds] if use_retain else [])
    text = feed.TextFeatures(encoder, feed.dataset_captions(*sets), progress=ctx.progress)
    unit = mcfg.unit_length
    forget = token_stream(f_ds, vq=vq, text=text, unit=unit, batch_size=cfg.batch_size, seed=cfg.seed,
                          device=device)
    retain = (token_stream(r_ds, vq=vq, text=text, unit=unit, batch_size=cfg.batch_size, seed=cfg.seed + 1,
                           device=device) if use_retain else None)
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    return EditInputs(src_dir=src_dir, dest=dest, model=model, f_split=f_split, r_split=r_split, f_ds=f_ds,
                      r_ds=r_ds, text=text, forget=forget, retain=retain, generator=g)


def timed_training(train: Callable[[Callable[[int, dict], None]], Any], *, steps: int, desc: str, ctx):
    """``train(on_step)`` under a progress bar of ``steps`` steps -> (its result, the ``time.perf_counter()`` it
    started at: the caller reads the wall time when its own work after training is done)."""
    import time

    from src.common.progress import progress as bar

    t0 = time.perf_counter()
    pbar = bar(total=steps, desc=desc, unit="step", enabled=ctx.progress)
    with pbar:
        result = train(lambda step, m: pbar.update(1))
    return result, t0


def config_args(cfg) -> dict:
    """A config as JSON-ready values (what the run's meta records as ``args``)."""
    import json

    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def write_edited_run(inputs: EditInputs, cfg, ctx, edited, *, meta: dict, extra_files: dict) -> None:
    """The new run ``inputs.dest``: the source's files, ``edited`` as checkpoint ``cfg.ckpt`` with ``meta``, and
    ``extra_files`` (relative path -> writer)."""
    from src.methods.run_output import model_checkpoint, write_run

    write_run(inputs.dest, source_run=inputs.src_dir, out_name=cfg.name, force=ctx.force,
              checkpoints={cfg.ckpt: model_checkpoint("mask", edited, hmu_meta=meta)}, extra_files=extra_files)


def parse_edit_command(config_cls, argv, *, prog: str, doc: str | None):
    """A LoRA edit CLI's start: its typed config from ``argv`` and the command context -> (config with the dataset's
    canonical name, context)."""
    from src.config.command import command_context, parse_config

    cfg = parse_config(config_cls, argv, prog=prog, doc=doc, raw_description=True)
    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run)
    return dataclasses.replace(cfg, dataset_name=ctx.spec.name), ctx
