"""Train the length estimator: ``python -m src.train.length --name length_estimator --dataset_name synth``.

As upstream: a text feature (the same encoder as the transformers) -> logits over length bins of ``unit_length``
frames, trained with cross-entropy on ``len(motion) // unit_length``. Every caption of every train motion is one
example (text features are computed once). Lowest validation loss -> ``model/finest.tar`` (upstream's name).
"""
from __future__ import annotations

from collections.abc import Sequence

from src.common.errors import cli


DESCRIPTION = "Train MoMask's length estimator (text feature -> motion length bins)."


def command() -> type:
    from src.config.momask import LenEstConfig
    from src.train.options import trainer_command

    return trainer_command(LenEstConfig, "len", model=("unit_length", "output_size"), model_title="length estimator",
                           text=True, fid=False)


def build_parser():
    from src.train.options import command_parser

    return command_parser(command(), prog="python -m src.train.length", doc=DESCRIPTION)


def _examples(ds, text, unit: int, bins: int):
    """(features (N, dim), bins (N,)) for every (caption, motion) pair of a Text2MotionDataset."""
    import torch

    caps, labels = [], []
    for motion, texts in ds.entries:
        for cap, _ in texts:
            caps.append(cap)
            labels.append(min(len(motion) // unit, bins - 1))
    return text(caps), torch.tensor(labels, dtype=torch.long)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.train.options import parse_command

    args = parse_command(command(), argv, prog="python -m src.train.length", doc=DESCRIPTION)

    import numpy as np
    import torch
    import torch.nn.functional as F

    from src.common.io import atomic_torch_save, torch_load
    from src.common.seed import fix_seed
    from src.config import LenEstConfig
    from src.common.datasets import get_spec
    from src.models.momask import build_len_estimator
    from src.train import feed, options, run_folder
    from src.common import dist
    from src.train.engine import TrainSpec, train

    paths, device = options.setup(args)
    flags = options.flags_of(args)
    cfg = options.resolve_config(LenEstConfig, flags, "len", aliases={"clip_dim": "input_size"})
    cfg.extra["seed"] = str(flags.get("seed", 3407))
    run, cfg, resume = run_folder.prepare_run(paths, cfg, is_continue=args.is_continue, force=args.run.force,
                                          overrides=options.continue_overrides(flags))
    seed = int(cfg.extra.get("seed", 3407))
    fix_seed(seed)
    spec = get_spec(cfg.dataset_name)
    folder = feed.open_folder(paths, cfg.dataset_name)
    mean, std = folder.mean_std()  # only to build the datasets; the estimator never sees motion values
    split, val_split = options.extra(cfg, "split", "train"), options.extra(cfg, "val_split", "val")

    class _Lens:  # the dataset's length filter, with the config's unit
        max_motion_length, unit_length, dataset_name = spec.max_motion_length, cfg.unit_length, cfg.dataset_name

    train_ds = feed.t2m_dataset(folder, split, mean=mean, std=std, cfg=_Lens, seed=seed)
    val_ds = feed.t2m_dataset(folder, val_split, mean=mean, std=std, cfg=_Lens, seed=seed)
    encoder = feed.build_encoder(paths, cfg, device, glove_dir=args.where.glove_dir, clip_path=args.clip_path)
    text = feed.TextFeatures(encoder, feed.dataset_captions(train_ds, val_ds), progress=not args.run.no_progress)
    x_train, y_train = _examples(train_ds, text, cfg.unit_length, cfg.output_size)
    x_val, y_val = _examples(val_ds, text, cfg.unit_length, cfg.output_size)
    y_train, y_val = y_train.to(device), y_val.to(device)

    model = build_len_estimator(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def batches(epoch: int):
        from src.common.progress import Sized

        order = feed.epoch_order(len(y_train), batch_size=cfg.batch_size, seed=seed, epoch=epoch)
        return Sized((torch.from_numpy(np.asarray(idx)).to(device) for idx in order), len(order))

    def step(idx, it: int):
        logits = model(x_train[idx])
        loss = F.cross_entropy(logits, y_train[idx])
        return {"loss": loss, "acc": (logits.argmax(-1) == y_train[idx]).float().mean()}

    def validate():
        logits = model(x_val)
        return {"loss": F.cross_entropy(logits, y_val), "acc": (logits.argmax(-1) == y_val).float().mean(),
                "mae_frames": (logits.argmax(-1) - y_val).abs().float().mean() * cfg.unit_length}

    from src.train.engine import Checkpointing

    tspec = TrainSpec(model_key="estimator", opt_key="opt_estimator", best_file="finest.tar")
    logger = options.metric_logger(run, cfg, args.wandb.options())
    try:
        result = train(model=model, optimizer=optimizer, scheduler=None, spec=tspec, run_dir=run, batches=batches,
                       step=step, validate=validate, score_key="loss", max_epoch=cfg.max_epoch, seed=seed,
                       meta=run_folder.run_meta(cfg), resume=resume, log_every=cfg.log_every,
                       progress=not args.run.no_progress, logger=logger, amp=args.speed.amp,
                       num_workers=args.speed.num_workers,
                       checkpointing=Checkpointing(save_every_e=args.save_every_e))
    finally:
        where = logger.finish()
    if where:
        print(where)
    if not dist.is_main():
        return 0
    # upstream's length estimator files count with 'epoch'/'niter' (the engine writes 'ep'/'total_it')
    for name in ("finest.tar", "latest.tar"):
        path = run / "model" / name
        ckpt = torch_load(path)
        ckpt.setdefault("epoch", ckpt.get("ep", 0))
        ckpt.setdefault("niter", ckpt.get("total_it", result["total_it"]))
        atomic_torch_save(ckpt, path)
    print(run_folder.summary_line("length estimator", run, result, best_val_loss=result["best"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
