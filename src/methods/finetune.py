"""Fine-tuning baseline: continue training the original transformers on the RETAIN set only, from their weights.

    python -m src.methods.finetune --dataset_name synth --concept violence --trans_name mtrans --res_name rtrans \\
        --name mtrans_ft --train_parts mask --max_epoch 5

``--train_parts`` says which parts train: ``mask`` (the masked transformer), ``res`` or ``mask,res``.

Presets (``--preset``; an explicit flag overrides its preset's value):

``budget`` (default; the quickstart's)
    the masked transformer only, 5 epochs, lr 1e-4 (AdamW), no warm-up, the source run's batch size.
``upstream`` (the paper's baseline, Mamiglia/hmu e8912ba ``scripts/train/batch_ft_t2m.sh``)
    both transformers (``mask,res``), 500 more epochs, batch 64. Upstream runs momask's ``train_t2m_transformer.py``
    and ``train_res_transformer.py`` with ``--is_continue --max_epoch 1000`` on a copy of the released runs (trained
    to epoch 500), so they resume ``latest.tar``: epoch 500 -> 1000, and the optimizer and scheduler state come back.
    The nominal options (lr 2e-4, ``--warm_up_iter 2000``, ``--milestones 50000``, gamma 0.1; momask-codes c9f2bf5
    ``options/train_option.py``) are then inert: the resumed iteration count is far past both 2,000 and 50,000
    (~360 iterations an epoch on HumanML3D x 500 epochs), so warm-up never runs and the lr is 2e-4 x 0.1 = 2e-5.
    The preset uses that effective rate, with no warm-up, from ``--ckpt`` (a fresh AdamW: the released
    ``net_best_fid.tar`` carries no optimizer state).
Each trained part becomes a NEW run (``<name>`` for the masked transformer, ``<res_out_name>`` = ``<name>_res`` for
the residual one) whose opt.txt and meta are the source's; the sources are only read. Data: the retain ids
``kw_splits/<main_split>-wo-<concept>`` (default main split ``train_val``, as upstream), normalised with the VQ run's
mean/std, coded by the frozen VQ, with the trainers' own losses (src/train/mask.py, src/train/residual.py). Resumable
with ``--is_continue`` (the shared engine: latest.tar every epoch). The wall time (summed over resumed sessions) is
printed and stored in the checkpoint's ``hmu_meta.wall_time_s``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.common.run_names import help_default, with_run_defaults
from src.common.validate import POSITIVE, comma_choices
from src.config.command import DeviceOptions, Locations, RunOptions, WandbFlags, flat_dict, group, opt
from src.config.flags import SpeedOptions, which_epoch_file

PROG = "python -m src.methods.finetune"
PARTS = ("mask", "res")

# Each preset's values for the fields left unset (see the module docstring for where upstream's come from).
PRESETS = {
    "budget": {"train_parts": "mask", "max_epoch": 5, "lr": 1e-4, "warm_up_iter": 0, "batch_size": None},
    "upstream": {"train_parts": "mask,res", "max_epoch": 500, "lr": 2e-5, "warm_up_iter": 0, "batch_size": 64},
}


@dataclasses.dataclass(kw_only=True)
class FinetuneConfig:
    """Fine-tuning baseline: continue training the original transformers on the RETAIN set only."""

    # models
    dataset_name: str = opt("synth", help="dataset name or alias (synth, HumanML3D/t2m, Motion-X)")
    concept: str = opt("violence", aliases=("--split_name",), help="concept to forget")
    name: str = opt(None, required=True, aliases=("--out_name",),
                    help="NEW run for the fine-tuned masked transformer")
    res_out_name: str | None = opt(None, help="NEW run for the fine-tuned residual transformer (<name>_res)")
    trans_name: str | None = opt(None, help="source masked-transformer run (read only; " + help_default("mask") + ")")
    res_name: str | None = opt(None, help="source residual-transformer run (read only; " + help_default("res") + ")")
    ckpt: str = opt("net_best_fid.tar", help="source checkpoint file in each run's model/")
    which_epoch: str | None = opt(None, type=which_epoch_file,
                                  help="upstream's spelling of --ckpt: a file of <run>/model/ without .tar (latest, "
                                       "net_best_fid, net_best_acc, E0010 from --save_every_e)")
    train_parts: str | None = opt(None, help="comma-separated parts to train: mask, res (preset: budget mask, "
                                             "upstream mask,res)")
    preset: str = opt("budget", choices=tuple(PRESETS),
                      help="budget: the quickstart's short run; upstream: the paper's baseline (see the module doc)")
    # data
    main_split: str = opt("train_val", help="split the keyword splits were made from")
    split: str | None = opt(None, help="training ids (default kw_splits/<main_split>-wo-<concept>)")
    # optimisation
    max_epoch: int | None = opt(None, range=POSITIVE, help="epochs of fine-tuning (preset: budget 5, upstream 500)")
    batch_size: int | None = opt(None, help="batch size (preset: budget the source run's, upstream 64)")
    lr: float | None = opt(None, help="learning rate, AdamW (preset: budget 1e-4, upstream 2e-5)")
    warm_up_iter: int | None = opt(None, help="linear lr warm-up iterations (presets: 0)")
    log_every: int = opt(50, range=POSITIVE, help="log every N iterations")
    # run
    is_continue: bool = opt(False, help="resume from <name>/model/latest.tar")
    seed: int = opt(0, help="seed of data order, masking and condition dropout")
    save_every_e: int = opt(0, help="also keep model/E%%04d.tar every N epochs (upstream's name); 0 = never")
    device: DeviceOptions = group(DeviceOptions)
    speed: SpeedOptions = group(SpeedOptions, title="speed")
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "clip_path", "glove_dir"))
    run: RunOptions = group(RunOptions)
    wandb: WandbFlags = group(WandbFlags)

    def resolved(self) -> FinetuneConfig:
        """The preset's values for the fields left unset, the source runs from the run-name table, ``--which_epoch``
        as ``--ckpt``, the dataset by its canonical name."""
        from src.common.datasets import get_spec

        cfg = with_preset(self)
        cfg = with_run_defaults(cfg, cfg.dataset_name, trans_name="mask", res_name="res")
        return dataclasses.replace(cfg, dataset_name=get_spec(cfg.dataset_name).name,
                                   ckpt=cfg.which_epoch or cfg.ckpt, which_epoch=None)


CONFIG = FinetuneConfig


def with_preset(cfg: FinetuneConfig) -> FinetuneConfig:
    """``cfg`` with every field left unset (None) taken from ``PRESETS[cfg.preset]``."""
    return dataclasses.replace(cfg, **{k: v for k, v in PRESETS[cfg.preset].items() if getattr(cfg, k) is None})


def parse_parts(text: str) -> list[str]:
    return comma_choices(text, PARTS,
                         lambda _: f"--train_parts {text!r}: choose from {', '.join(PARTS)} (comma-separated)")


def prepare_output(paths, dataset_name: str, out_name: str, source_dir: Path, *, is_continue: bool,
                   force: bool) -> tuple[Path, bool]:
    """The output run folder (created with the source's opt.txt and meta) -> (folder, resume?)."""
    import shutil

    from src.methods.run_output import output_dir, write_run

    dest = output_dir(paths, dataset_name, out_name, force=True, sources=(source_dir,))
    if dest.exists() and is_continue and not force:
        if not (dest / "model" / "latest.tar").is_file():
            raise HmuError(f"--is_continue: {dest / 'model' / 'latest.tar'} not found")
        return dest, True
    if is_continue and not dest.exists():
        raise HmuError(f"--is_continue: run {dest} does not exist")
    if dest.exists() and not force:
        raise HmuError(f"run folder {dest} already exists (pass --is_continue to resume or --force to start over)")
    if dest.exists():
        shutil.rmtree(dest)
    write_run(dest, source_run=source_dir, out_name=out_name, checkpoints={})
    return dest, False


def finetune_part(part: str, ft: FinetuneConfig, ctx, *, dest: Path, resume: bool, split: str) -> dict:
    """Fine-tune one part ('mask' or 'res') into ``dest`` with the shared engine; returns the engine's summary."""
    from src.common.seed import fix_seed
    from src.methods.run_output import edit_meta
    from src.models.checkpoint import find_run_dir, load_mask_transformer, load_mean_std, load_res_transformer, load_vq
    from src.train import feed
    from src.train.engine import TrainSpec
    from src.train.transformer import train_transformer

    paths, device = ctx.paths, ctx.device
    fix_seed(ft.seed)
    loader = load_mask_transformer if part == "mask" else load_res_transformer
    name = ft.trans_name if part == "mask" else ft.res_name
    model, cfg, src_dir = loader(paths, ft.dataset_name, name, ckpt=ft.ckpt)
    vq, _, vq_dir = load_vq(paths, ft.dataset_name, cfg.vq_name)
    vq = vq.to(device).eval()
    for p in vq.parameters():
        p.requires_grad_(False)
    mean, std = load_mean_std(vq_dir)
    cfg = cfg.replace(lr=ft.lr, warm_up_iter=ft.warm_up_iter, milestones=[10**9], max_epoch=ft.max_epoch,
                      batch_size=ft.batch_size or cfg.batch_size, seed=ft.seed)
    folder = feed.open_folder(paths, ft.dataset_name)
    train_ds = feed.t2m_dataset(folder, split, mean=mean, std=std, cfg=cfg, seed=ft.seed)
    if len(train_ds) < cfg.batch_size:
        raise HmuError(f"--split {split}: {len(train_ds)} training items, fewer than --batch_size {cfg.batch_size}")
    encoder = feed.build_encoder(paths, cfg, device, glove_dir=ft.where.glove_dir, clip_path=ft.where.clip_path)
    text = feed.TextFeatures(encoder, feed.dataset_captions(train_ds), progress=ctx.progress)

    src_ckpt = find_run_dir(paths, ft.dataset_name, name) / "model" / ft.ckpt
    previous = _previous_wall_time(dest) if resume else 0.0
    meta = edit_meta(method="finetune", args=flat_dict(ft), source_ckpt=src_ckpt, part=part, split=split,
                     config=cfg.to_dict() if hasattr(cfg, "to_dict") else None)
    key = "t2m_transformer" if part == "mask" else "res_transformer"
    tspec = TrainSpec(model_key=key, opt_key=f"opt_{key}", best_file="net_best_fid.tar")
    meta["wall_time_s_before"] = previous
    from src.common.logging import MetricLogger
    from src.train.engine import Checkpointing

    logger = MetricLogger(dest / "train_log.jsonl", wandb=ctx.wandb, name=dest.name,
                          config={"method": "finetune", "part": part, "split": split, "source": str(src_ckpt),
                                  **{k: v for k, v in flat_dict(ft).items() if not k.startswith("wandb")}},
                          dir=dest, job_type="unlearn")
    try:
        result = train_transformer(model, cfg=cfg, vq=vq, text=text, train_ds=train_ds, run_dir=dest, spec=tspec,
                                   layers="first" if part == "mask" else "all", device=device, resume=resume,
                                   meta=meta, max_epoch=ft.max_epoch, seed=ft.seed, log_every=ft.log_every,
                                   progress=ctx.progress, logger=logger, amp=ft.speed.amp,
                                   num_workers=ft.speed.num_workers,
                                   checkpointing=Checkpointing(save_every_e=ft.save_every_e))
        # no validation set here: the last epoch is net_best_fid.tar
        logger.summary(event_detail="net_best_fid.tar", best_by="last_epoch", wall_time_s=result["wall_time_s"])
    finally:
        where = logger.finish()
    if where:
        print(where)
    total = previous + result["wall_time_s"]
    from src.common import dist

    if dist.is_main():
        _record_wall_time(dest, total)
    return {**result, "wall_time_total_s": total, "out": str(dest), "src": str(src_dir)}


def _previous_wall_time(dest: Path) -> float:
    import json

    p = dest / "finetune.json"
    try:
        return float(json.loads(p.read_text())["wall_time_s"])
    except (OSError, ValueError, KeyError):
        return 0.0


def _record_wall_time(dest: Path, seconds: float) -> None:
    """Wall time so far (all sessions) in ``finetune.json`` and in the final checkpoint's hmu_meta."""
    from src.common.io import atomic_torch_save, atomic_write_json, torch_load

    atomic_write_json(dest / "finetune.json", {"wall_time_s": seconds})
    best = dest / "model" / "net_best_fid.tar"
    if best.is_file():
        ckpt = torch_load(best)
        ckpt.setdefault("hmu_meta", {})["wall_time_s"] = seconds
        atomic_torch_save(ckpt, best)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.config.command import command_context, parse_config

    cfg = parse_config(FinetuneConfig, argv, prog=PROG, doc=__doc__).resolved()
    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run, cfg.wandb)
    return run_finetune(cfg, ctx)


def run_finetune(cfg: FinetuneConfig, ctx) -> int:
    """Every part of ``cfg`` (resolved) fine-tuned into its NEW run; every output checked before any training."""
    from src.common import dist
    from src.data.datasets import resolve_ids
    from src.data.keywords import forget_keywords, split_paths
    from src.methods.run_output import output_dir
    from src.models.checkpoint import find_run_dir
    from src.train.options import init_distributed

    parts = parse_parts(cfg.train_parts)
    paths, spec = ctx.paths, ctx.dataset
    ctx = dataclasses.replace(ctx, device=init_distributed(ctx.device))
    forget_keywords(spec.name, cfg.concept)
    root = ctx.data_root
    split = cfg.split or str(split_paths(root, cfg.main_split, cfg.concept)[1].relative_to(root).with_suffix(""))
    resolve_ids(root, split)  # missing or empty retain split: one line, before any folder is made
    outs = {"mask": cfg.name, "res": cfg.res_out_name or f"{cfg.name}_res"}
    srcs = {"mask": cfg.trans_name, "res": cfg.res_name}
    plan = [(part, find_run_dir(paths, spec.name, srcs[part])) for part in parts]

    def check_outputs():  # on rank 0 only: the other ranks must not see the folders rank 0 starts creating
        for part, src_dir in plan:
            d = output_dir(paths, spec.name, outs[part], force=True, sources=(src_dir,))
            if d.exists() and not (ctx.force or cfg.is_continue):
                raise HmuError(f"run folder {d} already exists (pass --is_continue to resume or --force to start "
                               "over)")

    dist.on_main(check_outputs)
    total = 0.0
    for part, src_dir in plan:
        dest, resume = dist.on_main(lambda: prepare_output(paths, spec.name, outs[part], src_dir,
                                                           is_continue=cfg.is_continue, force=ctx.force))
        r = finetune_part(part, cfg, ctx, dest=dest, resume=resume, split=split)
        total += r["wall_time_total_s"]
        print(f"fine-tuned {part} transformer {srcs[part]} on {split}: {r['epochs_run']} epochs, {r['total_it']} "
              f"iterations, {r['wall_time_total_s']:.1f}s -> {dest}/model/net_best_fid.tar")
    print(f"fine-tuning wall time {total:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
