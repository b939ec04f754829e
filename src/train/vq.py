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
    from src.train.options import balance_field, preset_default_text, trainer_command

    text = preset_default_text(VQConfig, "vq")
    extra = [("epoch_size", int | None, opt(None, range=NON_NEGATIVE, help="windows drawn per epoch (0 = all "
                                                                            f"windows; default: {text('epoch_size', 0)})")),
             ("sample_codebook_temp", float, opt(0.5, help="Gumbel temperature of the code choice in training "
                                                           "(upstream 0.5; 0 = nearest code)")),
             balance_field(VQConfig, "vq", "training windows (needs --epoch_size > 0)")]
    return trainer_command(VQConfig, "vq", model=VQ_FLAGS, model_title="VQ-VAE", extra=extra)


def build_parser():
    from src.train.options import command_parser

    return command_parser(command(), prog="python -m src.train.vq", doc=DESCRIPTION)


def reconstruct(model, motions: Sequence, *, mean, std, joints_num: int):
    """Yield ``(index, true joints, reconstructed joints)`` (T', 22, 3) for raw motions (T_i, D) through
    ``decode(encode(x))``, each cropped to a multiple of the VQ's downsampling and run in groups of equal length (no
    padding); motions shorter than one unit are skipped."""
    import numpy as np
    import torch

    from src.data.motion import recover_from_ric

    device = next(model.parameters()).device
    unit = model.downsample
    groups: dict[int, list[int]] = {}
    for i, m in enumerate(motions):
        t = (len(m) // unit) * unit
        if t:
            groups.setdefault(t, []).append(i)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for t, idx in sorted(groups.items()):
                raw = np.stack([np.asarray(motions[i][:t], dtype=np.float32) for i in idx])
                x = torch.from_numpy((raw - mean) / std).to(device)
                ids, _ = model.encode(x)
                rec = model.forward_decoder(ids).cpu().numpy() * std + mean
                j_true = recover_from_ric(raw, joints_num)
                j_rec = recover_from_ric(rec.astype(np.float32), joints_num)
                for k, i in enumerate(idx):
                    yield i, j_true[k], j_rec[k]
    finally:
        model.train(was_training)


def reconstruction_mpjpe(model, motions: Sequence, *, mean, std, joints_num: int) -> dict[str, float]:
    """Mean per-joint position error (mm) of ``decode(encode(x))`` over raw motions (T_i, D).

    ``mpjpe_mm`` compares global joints (root trajectory included), ``mpjpe_local_mm`` root-relative ones.
    """
    return reconstruction_figures(model, motions, None, mean=mean, std=std, joints_num=joints_num)[0]


def reconstruction_figures(model, motions: Sequence, segments: Sequence | None, *, mean, std, joints_num: int
                           ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(:func:`reconstruction_mpjpe`'s dict, :func:`action_reconstruction`'s summary or {} without ``segments``)
    from one pass of ``decode(encode(x))``."""
    import numpy as np

    from src.data.action_figures import reconstruction_rows, summarise

    err_g = err_l = 0.0
    count = 0
    pairs = []
    for i, j_true, j_rec in reconstruct(model, motions, mean=mean, std=std, joints_num=joints_num):
        err_g += float(np.linalg.norm(j_rec - j_true, axis=-1).mean())
        loc_t, loc_r = j_true - j_true[:, :1, :], j_rec - j_rec[:, :1, :]
        err_l += float(np.linalg.norm(loc_r - loc_t, axis=-1).mean())
        count += 1
        if segments is not None:
            pairs.append((j_true, j_rec, segments[i]))
    per_action = summarise(reconstruction_rows(pairs)) if segments is not None else {}
    if count == 0:
        return {"mpjpe_mm": float("nan"), "mpjpe_local_mm": float("nan"), "n": 0}, per_action
    return {"mpjpe_mm": 1000.0 * err_g / count, "mpjpe_local_mm": 1000.0 * err_l / count, "n": count}, per_action


def action_reconstruction(model, motions: Sequence, segments: Sequence, *, mean, std, joints_num: int
                          ) -> dict[str, dict[str, float]]:
    """Per action label: median MPJPE (m) and highest ankle / wrist reach of the ground truth and of its
    reconstruction over the action's frames (``src.data.action_figures``). ``segments[i]``: ``[(action, start,
    end)]`` of ``motions[i]`` (labels.json), so a rare action is not hidden in the mean."""
    return reconstruction_figures(model, motions, segments, mean=mean, std=std, joints_num=joints_num)[1]


def _motions(folder, split: str, min_len: int) -> tuple[list, list]:
    """(motion ids, raw motions) of a split, those of at least ``min_len`` frames."""
    from src.data.datasets import resolve_ids

    ids, out = [], []
    for mid in resolve_ids(folder.root, split):
        m = folder.motion(mid)
        if len(m) >= min_len:
            ids.append(mid)
            out.append(m)
    return ids, out


def _segments(labels, ids: Sequence[str]) -> list | None:
    """Each motion's ``[(action, start, end)]`` from labels.json, None without labels (datasets other than synth)."""
    from src.data.action_figures import action_segments

    if not labels:
        return None
    return [action_segments(labels["motions"].get(mid, {})) for mid in ids]


LOGGED = {"mpjpe_m": ("mpjpe_mm", 1000.0), "ankle_rec_m": ("ankle_m", 1.0), "ankle_true_m": ("ankle_gt_m", 1.0),
          "reach_rec_m": ("reach_m", 1.0), "reach_true_m": ("reach_gt_m", 1.0)}


def action_log(summary) -> dict[str, float]:
    """``{"<action>_mpjpe_mm", "<action>_ankle_m", "<action>_ankle_gt_m", "<action>_reach_m", "<action>_reach_gt_m"}``
    (medians) of :func:`action_reconstruction`'s summary, for the training log."""
    out = {}
    for name, figs in summary.items():
        for k, (short, scale) in LOGGED.items():
            if k in figs:
                out[f"{name}_{short}"] = float(figs[k]) * scale
    return out


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.train.options import parse_command

    args = parse_command(command(), argv, prog="python -m src.train.vq", doc=DESCRIPTION)

    import torch
    import torch.nn.functional as F

    from src.common.io import atomic_save_npy, atomic_write_json
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
    from src.data.synth.truth import read_labels

    labels = read_labels(folder.root, required=False)
    val_ids, val_motions = _motions(folder, val_split, spec.min_motion_length)
    val_segments = _segments(labels, val_ids)
    epoch_size = int(options.extra(cfg, "epoch_size", "0")) or None

    model = build_vq(cfg).to(device)
    optimizer, scheduler = engine.make_optimizer(model, cfg, weight_decay=cfg.weight_decay)
    rec_loss = F.smooth_l1_loss if cfg.recons_loss == "l1_smooth" else F.l1_loss
    pos = slice(4, 4 + (spec.joints_num - 1) * 3)

    balance = float(options.extra(cfg, "balance_actions", "0"))
    weights = None
    if balance > 0 and not labels:
        import logging

        logging.getLogger(__name__).warning("balance_actions %s: no action labels (%s), windows drawn uniformly",
                                            balance, folder.root / "labels.json")
    elif balance > 0:
        # rare actions (synth's kicks are ~1.5 % of the frames) are drawn more often, so the codebook learns them
        if not epoch_size:
            raise HmuError("--balance_actions needs --epoch_size > 0 (windows are drawn with replacement)")
        segs = _segments(labels, train_ds.ids)
        weights = feed.window_weights(feed.action_frame_weights(segs, [len(m) for m in train_ds.motions],
                                                                power=balance), cfg.window_size)

    def batches(epoch: int):
        import numpy as np

        from src.common.progress import Sized

        if weights is not None:
            order = feed.weighted_order(weights, batch_size=cfg.batch_size, seed=cfg.seed, epoch=epoch,
                                        limit=epoch_size)
        else:
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
        # per action too, so that a rare one cannot hide in the mean
        out, per_action = reconstruction_figures(model, val_motions, val_segments, mean=mean, std=std,
                                                 joints_num=spec.joints_num)
        return {**out, **action_log(per_action)}

    from src.train.fid import load_evaluator_if_available, vq_fid_hook
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
    per_action = None
    if (folder.root / "test.txt").is_file():
        test_ids, test_motions = _motions(folder, "test", spec.min_motion_length)
        test_segments = _segments(labels, test_ids)
        test, per_action = reconstruction_figures(model, test_motions, test_segments, mean=mean, std=std,
                                                  joints_num=spec.joints_num)
        if test_segments is not None:
            atomic_write_json(run / "action_figures.json", {"split": "test", "checkpoint": "net_best_fid.tar",
                                                            "actions": per_action})
        logger.log(step=result["total_it"], event="test", checkpoint="net_best_fid.tar",
                   **{f"test_{k}": v for k, v in {**test, **action_log(per_action or {})}.items()})
    where = logger.finish()
    if where:
        print(where)
    print(run_folder.summary_line("vq", run, result, best_val_mpjpe_mm=result["best"], best_by=best_by))
    if per_action:
        from src.data.action_figures import format_table

        print("test reconstruction per action (medians; ankle = highest ankle above the floor, reach = farthest wrist "
              "from the chest, m):")
        print(format_table(per_action))
    if test:
        print(f"test reconstruction MPJPE: {test['mpjpe_mm']:.1f} mm global, {test['mpjpe_local_mm']:.1f} mm "
              f"root-relative ({test['n']} motions, {run / 'model' / 'net_best_fid.tar'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
