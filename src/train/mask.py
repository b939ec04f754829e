"""Train the masked transformer on a VQ's first code layer:
``python -m src.train.mask --name mtrans_tiny --vq_name rvq_tiny --dataset_name synth``.

As upstream (models/mask_transformer/transformer_trainer.py): motions are normalised with the VQ run's
``meta/mean.npy``/``std.npy`` (not the dataset's, an upstream quirk kept on purpose), coded by the frozen VQ, then a
cosine-scheduled fraction of each sequence is corrupted BERT-style and predicted with cross-entropy; the text
condition is dropped with ``cond_drop_prob`` for classifier-free guidance. The best validation accuracy is saved as
``net_best_acc.tar`` and, because no evaluator runs during training, also as ``net_best_fid.tar`` (the file
generation loads by default; ``hmu_meta.selected_by`` says ``val_acc``).
"""
from __future__ import annotations

from collections.abc import Sequence

from src.common.errors import cli
from src.common.validate import parse_checked


def build_parser(residual: bool = False):
    from src.train.common import add_transformer_args, base_parser

    what = "residual transformer (code layers 1..Q-1)" if residual else "masked transformer (code layer 0)"
    p = base_parser(f"Train MoMask's {what} (upstream flags; sizes from --preset unless given).")
    add_transformer_args(p, residual=residual)
    return p


def setup_transformer(args, cls, kind: str, *, opt_extra: dict[str, str] | None = None):
    """Shared by mask, residual and BAMM trainers -> dict with config, run folder, device, VQ, data, text features.

    ``opt_extra``: hmu-only opt.txt keys written with a new run (e.g. BAMM's ``model_family``).
    """
    from src.common.errors import HmuError
    from src.common.seed import fix_seed
    from src.models.checkpoint import find_run_dir, load_mean_std, load_vq
    from src.train import common

    paths, device = common.setup(args)
    if not args.vq_name and not args.is_continue:
        raise HmuError("--vq_name is required (the VQ run whose codes this transformer models)")
    cfg = common.resolve_config(cls, args, kind)
    cfg.extra.update(opt_extra or {})
    run, cfg, resume = common.prepare_run(paths, cfg, is_continue=args.is_continue, force=args.force,
                                          overrides=common.continue_overrides(args))
    fix_seed(cfg.seed)
    vq, vq_cfg, vq_dir = load_vq(paths, cfg.dataset_name, cfg.vq_name)
    if vq.downsample != cfg.unit_length:
        raise HmuError(f"--unit_length {cfg.unit_length} differs from the VQ's downsampling {vq.downsample} "
                       f"({find_run_dir(paths, cfg.dataset_name, cfg.vq_name)})")
    vq = vq.to(device).eval()
    for p in vq.parameters():
        p.requires_grad_(False)
    mean, std = load_mean_std(vq_dir)
    folder = common.open_folder(paths, cfg.dataset_name)
    split, val_split = common.extra(cfg, "split", "train"), common.extra(cfg, "val_split", "val")
    train_ds = common.t2m_dataset(folder, split, mean=mean, std=std, cfg=cfg, seed=cfg.seed)
    val_ds = common.t2m_dataset(folder, val_split, mean=mean, std=std, cfg=cfg, seed=cfg.seed)
    encoder = common.build_encoder(paths, cfg, args, device)
    text = common.TextFeatures(encoder, common.dataset_captions(train_ds, val_ds), progress=not args.no_progress)
    return {"paths": paths, "device": device, "cfg": cfg, "run": run, "resume": resume, "vq": vq, "vq_cfg": vq_cfg,
                "train_ds": train_ds, "val_ds": val_ds, "text": text}


def encode_codes(vq, motions, lengths, unit: int):
    """Normalised motions (B, T, D), lengths (B,) frames -> (code ids (B, T', Q), token lengths (B,))."""
    import torch

    with torch.no_grad():
        ids, _ = vq.encode(motions)
    return ids, torch.div(lengths, unit, rounding_mode="floor")


def train_first_layer(args, *, cls, kind: str, build_model, label: str, opt_extra: dict[str, str] | None = None):
    """Train a transformer over code layer 0 whose ``forward(ids, text, m_lens, generator=)`` returns
    ``(loss, predicted ids, accuracy)`` (MoMask's masked transformer, BAMM) -> the engine's summary.

    ``build_model(cfg, vq_cfg)`` makes the untrained model; files as upstream's ``t2m_transformer`` checkpoints.
    """
    import torch

    from src.train import common
    from src.train.engine import TrainSpec, train

    s = setup_transformer(args, cls, kind, opt_extra=opt_extra)
    cfg, device, vq, text = s["cfg"], s["device"], s["vq"], s["text"]
    model = build_model(cfg, s["vq_cfg"]).to(device)
    optimizer, scheduler = common.make_optimizer(model, cfg, weight_decay=1e-5)
    val_batches = common.fixed_batches(s["val_ds"], batch_size=cfg.batch_size, seed=cfg.seed)

    def step(batch, it: int):
        captions, _, motions, lengths = batch
        ids, m_lens = encode_codes(vq, motions.to(device), lengths.to(device), cfg.unit_length)
        loss, _, acc = model(ids[..., 0], text(captions), m_lens)
        return {"loss": loss, "acc": acc, "lr": scheduler.get_last_lr()[0]}

    def validate():
        # one fixed draw of crops, masks and condition dropout, so scores of different epochs compare
        g = torch.Generator(device=device).manual_seed(cfg.seed)
        losses, accs = [], []
        for captions, _, motions, lengths in val_batches:
            ids, m_lens = encode_codes(vq, motions.to(device), lengths.to(device), cfg.unit_length)
            loss, _, acc = model(ids[..., 0], text(captions), m_lens, generator=g)
            losses.append(float(loss))
            accs.append(acc)
        return {"loss": sum(losses) / len(losses), "acc": sum(accs) / len(accs)}

    tspec = TrainSpec(model_key="t2m_transformer", opt_key="opt_t2m_transformer", best_file="net_best_acc.tar",
                      higher_is_better=True)
    result = train(model=model, optimizer=optimizer, scheduler=scheduler, spec=tspec, run_dir=s["run"],
                   batches=common.t2m_batches(s["train_ds"], batch_size=cfg.batch_size, seed=cfg.seed), step=step,
                   validate=validate, score_key="acc", max_epoch=cfg.max_epoch, seed=cfg.seed,
                   meta=common.run_meta(cfg), resume=s["resume"], log_every=cfg.log_every,
                   progress=not args.no_progress)
    common.copy_best(s["run"], "net_best_acc.tar", "net_best_fid.tar", selected_by="val_acc")
    print(common.summary_line(label, s["run"], result, best_val_acc=result["best"]))
    return result


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_checked(build_parser(), argv)

    from src.config import MaskTransConfig
    from src.models.momask import build_mask_transformer

    train_first_layer(args, cls=MaskTransConfig, kind="mask", build_model=build_mask_transformer,
                      label="mask transformer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
