"""Train the residual VQ-VAE: ``python -m src.train.vq --name rvq_tiny --dataset_name synth``.

Loss as upstream (models/vq/vq_trainer.py): smooth-L1 reconstruction of the normalised features, plus ``loss_vel``
times the same loss on the root-relative joint positions (upstream calls it the velocity term), plus ``commit`` times
the commitment loss. Validation: reconstruction MPJPE (mm) of whole val motions; the best goes to
``model/net_best_fid.tar`` (upstream ranks by FID, which needs an evaluator). At the end the test split's MPJPE is
printed and appended to ``train_log.jsonl``.
"""
from __future__ import annotations

from collections.abc import Sequence

from src.common.errors import HmuError, cli


DESCRIPTION = "Train MoMask's residual VQ-VAE (upstream flags; sizes from --preset unless given)."
VQ_FLAGS = ("window_size", "weight_decay", "commit", "loss_vel", "recons_loss", "num_quantizers", "nb_code",
            "code_dim", "mu", "down_t", "stride_t", "width", "depth", "dilation_growth_rate", "vq_act",
            "quantize_dropout_prob", "shared_codebook")


def command() -> type:
    from src.common.validate import NON_NEGATIVE
    from src.config.flags import opt
    from src.config.momask import VQConfig
    from src.train.options import preset_default_text, trainer_command

    text = preset_default_text(VQConfig, "vq")
    extra = [("epoch_size", int | None, opt(None, range=NON_NEGATIVE, help="windows drawn per epoch (0 = all "
                                                                            f"windows; default: {text('epoch_size', 0)})")),
             ("sample_codebook_temp", float, opt(0.5, help="Gumbel temperature of the code choice in training "
                                                           "(upstream 0.5; 0 = nearest code)"))]
    return trainer_command(VQConfig, "vq", model=VQ_FLAGS, model_title="VQ-VAE", extra=extra)


def build_parser():
    from src.train.options import command_parser

    return command_parser(command(), prog="python -m src.train.vq", doc=DESCRIPTION)


def reconstruction_mpjpe(model, motions: Sequence, *, mean, std, joints_num: int) -> dict[str, float]:
    """Mean per-joint position error (mm) of ``decode(encode(x))`` over raw motions (T_i, D).

    Motions are cropped to a multiple of the VQ's downsampling and run in groups of equal length (no padding).
    ``mpjpe_mm`` compares global joints (root trajectory included), ``mpjpe_local_mm`` root-relative ones.
    """
    import numpy as np
    import torch

    from src.data.motion import recover_from_ric

    device = next(model.parameters()).device
    unit = model.downsample
    groups: dict[int, list[np.ndarray]] = {}
    for m in motions:
        t = (len(m) // unit) * unit
        if t:
            groups.setdefault(t, []).append(np.asarray(m[:t], dtype=np.float32))
    err_g = err_l = 0.0
    count = 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for t, ms in sorted(groups.items()):
            raw = np.stack(ms)
            x = torch.from_numpy((raw - mean) / std).to(device)
            ids, _ = model.encode(x)
            rec = model.forward_decoder(ids).cpu().numpy() * std + mean
            j_true = recover_from_ric(raw, joints_num)
            j_rec = recover_from_ric(rec.astype(np.float32), joints_num)
            err_g += float(np.linalg.norm(j_rec - j_true, axis=-1).mean(axis=(1, 2)).sum())
            loc_t, loc_r = j_true - j_true[..., :1, :], j_rec - j_rec[..., :1, :]
            err_l += float(np.linalg.norm(loc_r - loc_t, axis=-1).mean(axis=(1, 2)).sum())
            count += len(ms)
    model.train(was_training)
    if count == 0:
        return {"mpjpe_mm": float("nan"), "mpjpe_local_mm": float("nan"), "n": 0}
    return {"mpjpe_mm": 1000.0 * err_g / count, "mpjpe_local_mm": 1000.0 * err_l / count, "n": count}


def _motions(folder, split: str, min_len: int) -> list:
    from src.data.datasets import resolve_ids

    out = []
    for mid in resolve_ids(folder.root, split):
        m = folder.motion(mid)
        if len(m) >= min_len:
            out.append(m)
    return out


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.train.options import parse_command

    args = parse_command(command(), argv, prog="python -m src.train.vq", doc=DESCRIPTION)

    import torch
    import torch.nn.functional as F

    from src.common.io import atomic_save_npy
    from src.common.seed import fix_seed
    from src.config import VQConfig
    from src.data.datasets import MotionWindowDataset
    from src.common.datasets import get_spec
    from src.models.momask import build_vq
    from src.train import engine, feed, options, run_folder
    from src.common import dist
    from src.train.engine import TrainSpec, train

    paths, device = options.setup(args)
    flags = options.flags_of(args)
    cfg = options.resolve_config(VQConfig, flags, "vq")
    cfg = cfg.replace(save_every_e=args.save_every_e)  # upstream's field, written as used
    if cfg.num_quantizers < 1 or cfg.nb_code < 2:
        raise HmuError("--num_quantizers must be >= 1 and --nb_code >= 2")
    run, cfg, resume = run_folder.prepare_run(paths, cfg, is_continue=args.is_continue, force=args.run.force,
                                          overrides=options.continue_overrides(flags))
    spec = get_spec(cfg.dataset_name)
    fix_seed(cfg.seed)
    folder = feed.open_folder(paths, cfg.dataset_name)
    mean, std = folder.mean_std()
    if dist.is_main():
        atomic_save_npy(run / "meta" / "mean.npy", mean)
        atomic_save_npy(run / "meta" / "std.npy", std)

    split, val_split = options.extra(cfg, "split", "train"), options.extra(cfg, "val_split", "val")
    train_ds = MotionWindowDataset(folder, split, window=cfg.window_size, mean=mean, std=std)
    val_motions = _motions(folder, val_split, spec.min_motion_length)
    epoch_size = int(options.extra(cfg, "epoch_size", "0")) or None

    model = build_vq(cfg).to(device)
    optimizer, scheduler = engine.make_optimizer(model, cfg, weight_decay=cfg.weight_decay)
    rec_loss = F.smooth_l1_loss if cfg.recons_loss == "l1_smooth" else F.l1_loss
    pos = slice(4, 4 + (spec.joints_num - 1) * 3)

    def batches(epoch: int):
        import numpy as np

        from src.common.progress import Sized

        order = feed.epoch_order(len(train_ds), batch_size=cfg.batch_size, seed=cfg.seed, epoch=epoch,
                                 limit=epoch_size)
        return Sized((torch.from_numpy(np.stack([train_ds[int(i)] for i in idx])) for idx in order), len(order))

    temp = args.sample_codebook_temp

    def step(x, it: int):
        # RVQVAE.forward with the code-choice temperature as a flag (it hard-codes upstream's 0.5)
        x = x.to(device)
        z = model.encoder(x.permute(0, 2, 1))
        z_q, _, commit, perplexity = model.quantizer(z, sample_codebook_temp=temp)
        pred = model.decoder(z_q)
        loss_rec = rec_loss(pred, x)
        loss_pos = rec_loss(pred[..., pos], x[..., pos])
        loss = loss_rec + cfg.loss_vel * loss_pos + cfg.commit * commit
        return {"loss": loss, "loss_rec": loss_rec, "loss_vel": loss_pos, "loss_commit": commit,
                "perplexity": perplexity, "lr": scheduler.get_last_lr()[0]}

    def validate():
        return reconstruction_mpjpe(model, val_motions, mean=mean, std=std, joints_num=spec.joints_num)

    from src.eval.train_fid import load_evaluator_if_available, vq_fid_hook
    from src.train.engine import Checkpointing

    hook = None
    if cfg.eval_every_e > 0 and val_motions:
        evaluator = load_evaluator_if_available(paths, cfg.dataset_name, device)
        if evaluator is not None:
            hook = vq_fid_hook(evaluator, model, val_motions, mean=mean, std=std)
    best_by = "fid" if hook is not None else "val_mpjpe_mm" if val_motions else "last_epoch"
    # with FID the lowest validation MPJPE is kept beside it, under its own name
    tspec = TrainSpec(model_key="vq_model", opt_key="opt_vq_model",
                      best_file="net_best_mpjpe.tar" if hook is not None else "net_best_fid.tar")
    logger = options.metric_logger(run, cfg, args.wandb.options())
    try:
        result = train(model=model, optimizer=optimizer, scheduler=scheduler, spec=tspec, run_dir=run,
                       batches=batches, step=step, validate=validate if val_motions else None, score_key="mpjpe_mm",
                       max_epoch=cfg.max_epoch, seed=cfg.seed, meta=run_folder.run_meta(cfg), resume=resume,
                       log_every=cfg.log_every, progress=not args.run.no_progress, logger=logger,
                       amp=args.speed.amp, num_workers=args.speed.num_workers,
                       checkpointing=Checkpointing(fid_eval=hook, eval_every_e=cfg.eval_every_e,
                                                   save_every_e=args.save_every_e))
        if dist.is_main():
            options.record_selection(run, cfg, best_by)
        logger.summary(event_detail="net_best_fid.tar", best_by=best_by, best=result["best"],
                       **({"best_fid": result["best_fid"]} if result["best_fid"] is not None else {}))
    except BaseException:
        logger.finish()
        raise

    from src.models.checkpoint import load_weights

    load_weights(model, run / "model" / "net_best_fid.tar", "vq")
    test = {}
    if not dist.is_main():
        return 0
    if (folder.root / "test.txt").is_file():
        test = reconstruction_mpjpe(model, _motions(folder, "test", spec.min_motion_length), mean=mean, std=std,
                                    joints_num=spec.joints_num)
        logger.log(step=result["total_it"], event="test", checkpoint="net_best_fid.tar",
                   **{f"test_{k}": v for k, v in test.items()})
    where = logger.finish()
    if where:
        print(where)
    print(run_folder.summary_line("vq", run, result, best_val_mpjpe_mm=result["best"], best_by=best_by))
    if test:
        print(f"test reconstruction MPJPE: {test['mpjpe_mm']:.1f} mm global, {test['mpjpe_local_mm']:.1f} mm "
              f"root-relative ({test['n']} motions, {run / 'model' / 'net_best_fid.tar'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
