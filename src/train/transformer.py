"""The one training function of the token transformers over a frozen VQ's codes: MoMask's masked transformer (code
layer 0), its residual transformer (all layers), BAMM (code layer 0) and the fine-tuning method (either part).

Each model's ``forward(ids, text, m_lens, generator=None)`` returns ``(loss, predicted ids, accuracy)``; ``layers``
says which code ids it takes ("first": ``ids[..., 0]``, "all": ``ids``). The prepared run (config, VQ, data, text
features) comes from :func:`prepare_transformer_run`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LAYERS = ("first", "all")


def encode_codes(vq, motions, lengths, unit: int):
    """Normalised motions (B, T, D), lengths (B,) frames -> (code ids (B, T', Q), token lengths (B,))."""
    import torch

    with torch.no_grad():
        ids, _ = vq.encode(motions)
    return ids, torch.div(lengths, unit, rounding_mode="floor")


@dataclass
class TransformerRun:
    """A prepared transformer run: its config and folder, the frozen VQ, the data and the text features."""

    cfg: Any
    run_dir: Any
    resume: bool
    vq: Any
    vq_cfg: Any
    train_ds: Any
    val_ds: Any
    text: Any
    weights: Any = None     # per training entry, for --balance_actions (None: uniform shuffling)


def prepare_transformer_run(cfg, run, *, opt_extra: dict[str, str] | None = None) -> TransformerRun:
    """Create or reopen the run folder of ``cfg`` and load what training it needs (``run``: options.RunOptions).

    ``opt_extra``: hmu-only opt.txt keys written with a new run (e.g. BAMM's ``model_family``).
    """
    from src.common.errors import HmuError
    from src.common.seed import fix_seed
    from src.models.checkpoint import find_run_dir, load_mean_std, load_vq
    from src.train import feed, options, run_folder

    paths, device = run.paths, run.device
    cfg.extra.update(opt_extra or {})
    run_dir, cfg, resume = run_folder.prepare_run(paths, cfg, is_continue=run.is_continue, force=run.force,
                                                  overrides=run.continue_overrides)
    fix_seed(cfg.seed)
    vq, vq_cfg, vq_dir = load_vq(paths, cfg.dataset_name, cfg.vq_name)
    if vq.downsample != cfg.unit_length:
        raise HmuError(f"--unit_length {cfg.unit_length} differs from the VQ's downsampling {vq.downsample} "
                       f"({find_run_dir(paths, cfg.dataset_name, cfg.vq_name)})")
    vq = vq.to(device).eval()
    for p in vq.parameters():
        p.requires_grad_(False)
    mean, std = load_mean_std(vq_dir)
    folder = feed.open_folder(paths, cfg.dataset_name)
    split, val_split = options.extra(cfg, "split", "train"), options.extra(cfg, "val_split", "val")
    train_ds = feed.t2m_dataset(folder, split, mean=mean, std=std, cfg=cfg, seed=cfg.seed)
    val_ds = feed.t2m_dataset(folder, val_split, mean=mean, std=std, cfg=cfg, seed=cfg.seed)
    encoder = feed.build_encoder(paths, cfg, device, glove_dir=run.glove_dir, clip_path=run.clip_path)
    text = feed.TextFeatures(encoder, feed.dataset_captions(train_ds, val_ds), progress=run.progress)
    weights = feed.entry_weights(folder, train_ds, power=float(options.extra(cfg, "balance_actions", "0")))
    return TransformerRun(cfg=cfg, run_dir=run_dir, resume=resume, vq=vq, vq_cfg=vq_cfg, train_ds=train_ds,
                          val_ds=val_ds, text=text, weights=weights)


def train_transformer(model, *, cfg, vq, text, train_ds, run_dir, spec, layers: str, device, resume: bool,
                      meta: dict, val_ds=None, score_key: str | None = None, max_epoch: int | None = None,
                      seed: int | None = None, log_every: int | None = None, progress: bool = True,
                      logger=None, checkpointing=None, amp: str | None = None,
                      num_workers: int = 0, weights=None) -> dict:
    """Train ``model`` on the VQ codes of ``train_ds`` with the shared engine -> the engine's summary.

    AdamW (weight decay 1e-5, as upstream) with the config's schedule; the text condition is ``text(captions)``.
    With ``val_ds`` every epoch is scored on one fixed draw of crops, masks and condition dropout (so epochs compare)
    and the best ``score_key`` ("acc" or "loss") is kept in ``spec.best_file``. ``logger`` and ``checkpointing`` go to
    the engine (a wandb-mirrored log; FID selection and periodic copies). ``weights`` (one per training entry):
    each epoch draws ``len(train_ds)`` entries with replacement in proportion to them, instead of a shuffle.
    """
    import torch

    from src.train import feed
    from src.train.engine import make_optimizer, train

    if layers not in LAYERS:
        raise ValueError(f"layers must be one of {LAYERS}, got {layers!r}")
    seed = cfg.seed if seed is None else seed
    model = model.to(device).train()
    optimizer, scheduler = make_optimizer(model, cfg, weight_decay=1e-5)

    def forward(batch, generator=None):
        captions, _, motions, lengths = batch
        ids, m_lens = encode_codes(vq, motions.to(device), lengths.to(device), cfg.unit_length)
        return model(ids[..., 0] if layers == "first" else ids, text(captions), m_lens, **(
            {"generator": generator} if generator is not None else {}))

    def step(batch, it: int):
        loss, _, acc = forward(batch)
        return {"loss": loss, "acc": acc, "lr": scheduler.get_last_lr()[0]}

    validate = None
    if val_ds is not None:
        val_batches = feed.fixed_batches(val_ds, batch_size=cfg.batch_size, seed=seed)

        def validate():
            g = torch.Generator(device=device).manual_seed(seed)
            losses, accs = [], []
            for batch in val_batches:
                loss, _, acc = forward(batch, generator=g)
                losses.append(float(loss))
                accs.append(acc)
            return {"loss": sum(losses) / len(losses), "acc": sum(accs) / len(accs)}

    return train(model=model, optimizer=optimizer, scheduler=scheduler, spec=spec, run_dir=run_dir,
                 batches=feed.t2m_batches(train_ds, batch_size=cfg.batch_size, seed=seed, weights=weights), step=step,
                 validate=validate, score_key=score_key, max_epoch=cfg.max_epoch if max_epoch is None else max_epoch,
                 seed=seed, meta=meta, resume=resume, log_every=cfg.log_every if log_every is None else log_every,
                 progress=progress, logger=logger, checkpointing=checkpointing, amp=amp,
                 num_workers=num_workers)


def train_new_transformer(cfg, run, *, build_model, layers: str, spec, score_key: str,
                          opt_extra: dict[str, str] | None = None, fid_hook=None) -> tuple[TransformerRun, dict]:
    """A trainer's whole run (``run``: options.RunOptions): prepare it, build the untrained model with
    ``build_model(cfg, vq_cfg)``, train and validate it -> (the prepared run, the engine's summary).

    ``fid_hook(prepared run, model, layers)`` -> an FID function for the engine or None (no evaluator): given by the
    CLI (src.train.fid.transformer_hook_factory). With one, ``net_best_fid.tar`` is the lowest-FID epoch's.
    ``result["best_by"]`` names the criterion that chose ``net_best_fid.tar`` ("fid" or None: the caller's)."""
    from src.train import options, run_folder
    from src.train.engine import Checkpointing

    t = prepare_transformer_run(cfg, run, opt_extra=opt_extra)
    model = build_model(t.cfg, t.vq_cfg)
    hook = fid_hook(t, model, layers) if fid_hook is not None and t.cfg.eval_every_e > 0 else None
    logger = options.metric_logger(t.run_dir, t.cfg, run.wandb)
    try:
        result = train_transformer(
            model, cfg=t.cfg, vq=t.vq, text=t.text, train_ds=t.train_ds, val_ds=t.val_ds, run_dir=t.run_dir,
            spec=spec, layers=layers, device=run.device, resume=t.resume, meta=run_folder.run_meta(t.cfg),
            score_key=score_key, progress=run.progress, logger=logger, amp=run.amp,
            num_workers=run.num_workers, weights=t.weights,
            checkpointing=Checkpointing(fid_eval=hook, eval_every_e=t.cfg.eval_every_e, save_every_e=run.save_every_e))
        result["best_by"] = "fid" if hook is not None else None
        result["logger"] = logger
    except BaseException:
        logger.finish()
        raise
    return t, result


def train_first_layer(cfg, run, *, build_model, label: str, opt_extra: dict[str, str] | None = None,
                      fid_hook=None) -> dict:
    """Train a transformer over code layer 0 (MoMask's masked transformer, BAMM): files as upstream's
    ``t2m_transformer`` checkpoints, best validation accuracy kept as ``net_best_acc.tar``; ``net_best_fid.tar`` is
    the lowest-FID epoch with ``fid_hook`` (see :func:`train_new_transformer`), else the best accuracy's."""
    from src.train import run_folder
    from src.train.engine import TrainSpec

    spec = TrainSpec(model_key="t2m_transformer", opt_key="opt_t2m_transformer", best_file="net_best_acc.tar",
                     higher_is_better=True)
    t, result = train_new_transformer(cfg, run, build_model=build_model, layers="first", spec=spec, score_key="acc",
                                      opt_extra=opt_extra, fid_hook=fid_hook)
    result["summary"] = finish_selection(t, result, label, best_file="net_best_acc.tar", criterion="val_acc",
                                         best_val_acc=result["best"])
    return result


def finish_selection(t: TransformerRun, result: dict, label: str, *, best_file: str, criterion: str,
                     **values) -> str:
    """After training: ``net_best_fid.tar`` from ``best_file`` unless FID chose it; the criterion in opt.txt and the
    log; the wandb run finished -> the summary line."""
    from src.train import options, run_folder

    best_by = result.get("best_by") or criterion
    if best_by != "fid":
        run_folder.copy_best(t.run_dir, best_file, "net_best_fid.tar", selected_by=criterion)
    options.record_selection(t.run_dir, t.cfg, best_by)
    logger = result.pop("logger", None)
    extra = {"best_fid": result["best_fid"]} if result.get("best_fid") is not None else {}
    if logger is not None:
        logger.summary(event_detail="net_best_fid.tar", best_by=best_by, best=result["best"], **extra)
        where = logger.finish()
        if where:
            print(where)
    return run_folder.summary_line(label, t.run_dir, result, **values, **extra, best_by=best_by)
