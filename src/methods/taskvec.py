"""Task-vector negation (SafeMo's MMU, *Static*) on token transformers: learn the concept in a LoRA, apply it at -alpha.

    python -m src.methods.taskvec --dataset_name synth --concept violence --trans_name mtrans --name mtrans_tv \\
        [--steps 200 --lr 5e-4 --rank 16 --lora_alpha 16 --alpha 1.0 --preservation_weight 0.1]

What it trains (SafeMo, AIGeeksGroup/SafeMo ``mmu/safemo_mmu/train.py``/``train_losses.py``, read for facts; here
on token models instead of a diffusion model): LoRA adapters (:mod:`src.models.lora`, default rank 16, alpha 16,
dropout 0.05 on attention q/k/v/out and the feed-forward linears) on the masked transformer, with every step

- the *unsafe* stream: the model's own token cross-entropy (``model(ids, text, lengths)``: MoMask's BERT-style
  masking, or BAMM's) on a batch of forget motions, plus ``decouple_weight`` x the same loss on a *decoupled* copy
  of the batch (per row, with probability 1/2 the valid tokens cut into ``segments`` equal pieces and shuffled,
  else time-reversed; SafeMo does this on motion frames, here on the token sequence, which is what the model sees);
- the *safe* stream: ``retain_weight`` x the cross-entropy on a retain batch, minus ``preservation_weight`` x the
  mean squared difference between the masked-mean-pooled last hidden states (the input of ``output_process``) of
  the adapted and the frozen original model on the same masked input (SafeMo's negative-divergence preservation).

Static: the adapters are merged at runtime scale ``-alpha`` (:func:`src.models.lora.merge`) into a NEW run, with the
source's opt.txt and meta, that the existing loaders read (``load_mask_transformer``); the adapter itself is kept
beside it (``model/lora_adapter.pt``, strict) so the gated variant and attacks can reuse it. Randomness: masking,
condition dropout, the decoupling and the adapter init come from one ``torch.Generator`` seeded by ``--seed``; the
adapters' dropout draws from torch's global generator, seeded by the same ``--seed``.

Gated (``--mode gated``): the run holds the ORIGINAL weights as its checkpoint, the adapter and a gate
(``model/gate.pt``: the concept's keyword rule, a logistic regression on the captions' text features trained on
forget vs retain captions, or either, ``--gate``); :func:`src.gen.generate.load_generator` reads both strictly and
generates flagged prompts at ``-alpha`` and the others at ``-weak_alpha`` (:mod:`src.gen.gated`). Loaders that read
only the checkpoint (not through ``load_generator``) see the original model.

Not yet here (issue 29): resuming, torchrun, BAMM runs from the CLI (the core
:func:`train_task_vector` takes BAMM models too), the residual transformer.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from src.common.errors import HmuError, cli
from src.common.validate import Range
from src.config.command import DeviceOptions, Locations, RunOptions, group, opt
from src.gen.gated import ADAPTER_FILE, GATE_FILE, GATE_KINDS  # names only: src.gen.gated imports no torch at load
from src.methods.lora_edit import (LoraTrainOptions, adapt, config_args, endless, fit_adapters, load_edit_inputs,
                                   parse_edit_command, timed_training, write_edited_run)


# ------------------------------------------------------------------------------------------------ pure core
@dataclass(frozen=True, kw_only=True)
class TaskVecOptions(LoraTrainOptions):
    """Training and negation settings of the task vector (see the module docstring)."""

    dropout: float = 0.05
    forget_weight: float = 1.0
    decouple_weight: float = 1.0
    retain_weight: float = 1.0
    preservation_weight: float = 0.1
    segments: int = 4
    alpha: float = 1.0               # Static: merged at runtime scale -alpha


def decouple_tokens(ids, lengths, *, generator=None, segments: int = 4):
    """A decoupled copy of token rows (B, T) with valid lengths (B,): per row, with probability 1/2 the first
    ``length`` tokens cut into ``segments`` near-equal pieces put in a random order (rows shorter than ``segments``
    are reversed instead), else those tokens reversed. Positions past the length are unchanged."""
    import torch

    out = ids.clone()
    where = generator.device if generator is not None else ids.device   # draws on the generator's device
    for b in range(ids.shape[0]):
        n = int(lengths[b])
        if n < 2:
            continue
        shuffle = bool(torch.rand((), generator=generator, device=where) < 0.5) and n >= segments
        if shuffle:
            bounds = torch.linspace(0, n, segments + 1).round().long().tolist()
            pieces = [ids[b, bounds[i]:bounds[i + 1]] for i in range(segments)]
            order = torch.randperm(segments, generator=generator, device=where).tolist()
            out[b, :n] = torch.cat([pieces[i] for i in order])
        else:
            out[b, :n] = ids[b, :n].flip(0)
    return out


class _Hidden:
    """Captures the input of ``model.output_process`` (T', B, latent) on each forward."""

    def __init__(self, model):
        self.value = None
        self.handle = model.output_process.register_forward_pre_hook(self._grab)

    def _grab(self, _module, inputs):
        self.value = inputs[0]

    def pooled(self, lengths, n_tokens: int):
        """Mean over each row's valid positions -> (B, latent); positions beyond the tokens (BAMM's text slot) kept."""
        import torch

        h = self.value
        extra = h.shape[0] - n_tokens          # 0 for MoMask, 1 for BAMM (the text position comes first)
        valid = (torch.arange(h.shape[0], device=h.device)[:, None] < (lengths[None, :] + extra)).to(h.dtype)
        return (h * valid[..., None]).sum(0) / valid.sum(0).clamp(min=1.0)[:, None]


def task_vector_loss(model, base, forget, retain, opts: TaskVecOptions, *, generator=None,
                     hooks: tuple[_Hidden, _Hidden] | None = None) -> tuple[Any, dict[str, float]]:
    """One step's objective. ``forget``/``retain``: (ids (B, T), text features (B, clip_dim), lengths (B,)).
    ``model`` is the adapted model (train mode), ``base`` the frozen original (eval mode)."""
    import torch
    import torch.nn.functional as F

    ids_f, cond_f, len_f = forget
    ids_r, cond_r, len_r = retain
    metrics: dict[str, float] = {}
    ce_f, _, _ = model(ids_f, cond_f, len_f, generator=generator)
    total = opts.forget_weight * ce_f
    metrics["forget_ce"] = float(ce_f.detach())
    if opts.decouple_weight:
        dec = decouple_tokens(ids_f, len_f, generator=generator, segments=opts.segments)
        ce_d, _, _ = model(dec, cond_f, len_f, generator=generator)
        total = total + opts.decouple_weight * ce_d
        metrics["decoupled_ce"] = float(ce_d.detach())
    if opts.retain_weight or opts.preservation_weight:
        h_model, h_base = hooks or (_Hidden(model), _Hidden(base))
        # the same masking and condition dropout for both models: replay the generator's state
        state = generator.get_state() if generator is not None else None
        ce_r, _, _ = model(ids_r, cond_r, len_r, generator=generator)
        if opts.retain_weight:
            total = total + opts.retain_weight * ce_r
        metrics["retain_ce"] = float(ce_r.detach())
        if opts.preservation_weight:
            after = generator.get_state() if generator is not None else None
            if state is not None:
                generator.set_state(state)
            with torch.no_grad():
                base(ids_r, cond_r, len_r, generator=generator)
            if after is not None:
                generator.set_state(after)
            div = F.mse_loss(h_model.pooled(len_r, ids_r.shape[1]), h_base.pooled(len_r, ids_r.shape[1]))
            total = total - opts.preservation_weight * div   # NEGATIVE divergence, as SafeMo's safe stream
            metrics["divergence"] = float(div.detach())
        if hooks is None:
            h_model.handle.remove()
            h_base.handle.remove()
    metrics["objective"] = float(total.detach())
    return total, metrics


def train_task_vector(model, forget_batches: Callable[[], Iterator], retain_batches: Callable[[], Iterator],
                      opts: TaskVecOptions, *, generator=None,
                      on_step: Callable[[int, dict], None] | None = None):
    """LoRA adapters on a copy of ``model`` trained with :func:`task_vector_loss` for ``opts.steps`` steps ->
    (adapted model in eval mode at runtime scale 1, per-step metrics). ``*_batches()`` return iterators of
    (ids, text features, lengths); each restarts when exhausted. ``model`` is not changed."""
    base, adapted = adapt(model, opts, generator=generator, train=True)
    hooks = (_Hidden(adapted), _Hidden(base))
    f_it, r_it = endless(forget_batches, "a task-vector"), endless(retain_batches, "a task-vector")

    def step_loss():
        return task_vector_loss(adapted, base, next(f_it), next(r_it), opts, generator=generator, hooks=hooks)

    try:
        history = fit_adapters(adapted, step_loss, opts, what="task vector", on_step=on_step)
    finally:
        for h in hooks:
            h.handle.remove()
    return adapted.eval(), history


def static_model(adapted, alpha: float):
    """Task-vector negation, Static: the adapters folded in at runtime scale -alpha (a plain new model)."""
    from src.models.lora import merge

    if not alpha > 0:
        raise HmuError(f"--alpha must be > 0 (the adapter is applied at -alpha), got {alpha}")
    return merge(adapted, -float(alpha))


def build_gate(kind: str, *, keywords: Sequence[str], forget_captions: Sequence[str],
               retain_captions: Sequence[str], text: Callable[[Sequence[str]], Any], match: str = "word"):
    """The Gated variant's gate (:class:`src.gen.gated.Gate`): the concept's keyword rule and/or a logistic
    regression of forget (1) vs retain (0) captions' text features (``text(captions) -> (B, D)``)."""
    from src.gen.gated import Gate, fit_text_gate

    weight, bias, info = None, 0.0, {}
    if kind in ("text", "either"):
        f, r = sorted(set(forget_captions)), sorted(set(retain_captions) - set(forget_captions))
        weight, bias, info = fit_text_gate(text(f).cpu(), text(r).cpu())
    return Gate(kind=kind, keywords=tuple(keywords) if kind in ("keyword", "either") else (), match=match,
                weight=weight, bias=bias, info=info)


# ------------------------------------------------------------------------------------------------ CLI
@dataclasses.dataclass(kw_only=True)
class TaskVecConfig:
    """Task-vector negation of a masked transformer: LoRA on the concept, merged at -alpha into a new run (Static) or
    applied per prompt by a gate (Gated)."""

    dataset_name: str = opt("synth", help="dataset name or alias")
    concept: str = opt("violence", help="concept to forget (its keyword splits must exist: python -m src.data.split)",
                       aliases=("--split_name",))
    trans_name: str = opt("mtrans", help="source masked-transformer run (read only)")
    name: str = opt("mtrans_taskvec", help="NEW run for the edited masked transformer")
    ckpt: str = opt("net_best_fid.tar", help="source checkpoint file in the run's model/")
    main_split: str = opt("train_val", help="split the keyword splits were made from")
    forget_split: str | None = opt(None, help="forget ids (default kw_splits/<main_split>-w-<concept>)")
    retain_split: str | None = opt(None, help="retain ids (default kw_splits/<main_split>-wo-<concept>)")
    steps: int = opt(200, help="optimizer steps (one forget and one retain batch each)", range=Range(lo=1))
    batch_size: int = opt(32, help="batch size of each stream", range=Range(lo=1))
    lr: float = opt(5e-4, help="AdamW learning rate of the adapters", range=Range(lo=0.0, lo_open=True))
    rank: int = opt(16, help="LoRA rank (SafeMo: 16)", range=Range(lo=1))
    lora_alpha: float = opt(16.0, help="LoRA alpha: B@A is scaled by lora_alpha/rank (SafeMo: 16)",
                            range=Range(lo=0.0, lo_open=True))
    dropout: float = opt(0.05, help="LoRA dropout on the feed-forward adapters' input (SafeMo: 0.05)",
                         range=Range(lo=0.0, hi=1.0, hi_open=True))
    alpha: float = opt(1.0, help="negation strength: the adapter is merged at runtime scale -alpha (gated: the strong "
                                 "alpha, on flagged prompts)", range=Range(lo=0.0, lo_open=True))
    mode: str = opt("static", help="static: merged at -alpha into a plain run; gated: the original weights, the "
                                   "adapter and a gate in the run, -alpha on flagged prompts and -weak_alpha elsewhere",
                    choices=("static", "gated"))
    weak_alpha: float = opt(0.0, help="gated: the alpha of prompts the gate does not flag (0: the original model)",
                            range=Range(lo=0.0))
    gate: str = opt("either", help="gated: which prompts are flagged: the concept's keyword rule, a logistic "
                                   "regression on the captions' text features (forget vs retain), or either",
                    choices=GATE_KINDS)
    decouple_weight: float = opt(1.0, help="weight of the cross-entropy on decoupled forget tokens",
                                 range=Range(lo=0.0))
    retain_weight: float = opt(1.0, help="weight of the cross-entropy on retain batches", range=Range(lo=0.0))
    preservation_weight: float = opt(0.1, help="weight of the negative hidden-state divergence on retain batches",
                                     range=Range(lo=0.0))
    seed: int = opt(0, help="seed of data order, masking, decoupling and adapter init")
    glove_dir: str | None = opt(None, help="word vectors for the embedded text encoder")
    clip_path: str | None = opt(None, help="CLIP weights file for a clip text encoder")
    device: DeviceOptions = group(DeviceOptions)
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir"))
    run: RunOptions = group(RunOptions)

    def options(self) -> TaskVecOptions:
        return TaskVecOptions(rank=self.rank, lora_alpha=self.lora_alpha, dropout=self.dropout, steps=self.steps,
                              lr=self.lr, decouple_weight=self.decouple_weight, retain_weight=self.retain_weight,
                              preservation_weight=self.preservation_weight, alpha=self.alpha)


def run_task_vector(cfg: TaskVecConfig, ctx) -> dict:
    """Load, train, merge and save (the CLI's body, on a checked config and a context)."""
    import time

    from src.common.io import atomic_write_json
    from src.data.keywords import forget_keywords
    from src.methods.run_output import edit_meta
    from src.models.lora import save_lora
    from src.train import feed

    inp = load_edit_inputs(cfg, ctx, use_retain=True)
    opts = cfg.options()
    (adapted, history), t0 = timed_training(
        lambda on_step: train_task_vector(inp.model.to(ctx.device), inp.forget, inp.retain, opts,
                                          generator=inp.generator, on_step=on_step),
        steps=opts.steps, desc="task vector", ctx=ctx)
    gate_info = None
    if cfg.mode == "gated":
        gate = build_gate(cfg.gate, keywords=forget_keywords(ctx.spec.name, cfg.concept),
                          forget_captions=feed.dataset_captions(inp.f_ds),
                          retain_captions=feed.dataset_captions(inp.r_ds), text=inp.text)
        gate_info = {"kind": gate.kind, **gate.info}
        edited = inp.model.cpu()      # the original weights: the adapter is applied per prompt at generation
    else:
        edited = static_model(adapted, opts.alpha).cpu()
    seconds = time.perf_counter() - t0

    src_ckpt = inp.src_dir / "model" / cfg.ckpt
    meta = edit_meta(method=f"taskvec_{cfg.mode}", args=config_args(cfg), source_ckpt=src_ckpt,
                     forget_split=inp.f_split, retain_split=inp.r_split, wall_time_s=seconds,
                     lora=opts.lora().to_dict(), alpha=opts.alpha,
                     **({"weak_alpha": cfg.weak_alpha, "gate": gate_info} if gate_info else {}))
    summary = {"steps": opts.steps, "wall_time_s": seconds, "first": history[0], "last": history[-1],
               "mode": cfg.mode, **({"gate": gate_info} if gate_info else {})}

    def write_adapter(p):
        save_lora(p, adapted.cpu(), meta={"source": str(src_ckpt), "concept": cfg.concept,
                                          "alpha": opts.alpha})

    extra = {f"model/{ADAPTER_FILE}": write_adapter,
             "taskvec.json": lambda p: atomic_write_json(p, {**summary, "history": history})}
    if cfg.mode == "gated":
        from src.gen.gated import save_gate

        extra[f"model/{GATE_FILE}"] = lambda p: save_gate(p, gate, strong=opts.alpha, weak=cfg.weak_alpha)
    write_edited_run(inp, cfg, ctx, edited, meta=meta, extra_files=extra)
    return {**summary, "out": str(inp.dest)}


PROG = "python -m src.methods.taskvec"
CONFIG = TaskVecConfig  # the pipeline (src/methods/pipeline.py) checks method flags with it


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg, ctx = parse_edit_command(TaskVecConfig, argv, prog=PROG, doc=__doc__)
    r = run_task_vector(cfg, ctx)
    last = r["last"]
    gate = f", gate {r['gate']['kind']}" if r.get("gate") else ""
    print(f"task vector ({r['mode']}{gate}): {r['steps']} steps in {r['wall_time_s']:.1f}s, forget CE "
          f"{r['first']['forget_ce']:.3f} -> {last['forget_ce']:.3f}, retain CE "
          f"{last.get('retain_ce', float('nan')):.3f} -> {r['out']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
