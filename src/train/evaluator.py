"""Train Guo et al.'s T2M evaluator (text / motion co-embedding) on a HumanML3D-format dataset, e.g. synth, on a CPU.

    python -m src.train.evaluator --dataset_name synth --name text_mot_match

Objective (Guo et al.'s ``TextMotionMatchTrainer``): a margin contrastive loss on co-embedding distances,
``(1-y)·d² + y·max(margin - d, 0)²`` averaged, with y = 0 for a caption and its own motion and y = 1 for the caption
and the motion of another sample of the batch (the batch rolled by a random shift). Deliberate differences, to keep it
small: the movement encoder is trained jointly from scratch instead of being pretrained as an autoencoder; the shift is
drawn from [1, B-1] (upstream's can be 0, which makes the "negatives" the positives); default sizes are smaller than the
released ones (flags below), and they are written to ``opt.txt`` so :meth:`T2MEvaluator.load` rebuilds the same model.
Each epoch sees every training motion once, with a random caption and a random crop of
``min(T, max_motion_length) // unit_length * unit_length`` frames (upstream crops the same way).
Selection: R-precision top-3 on ``val`` (batches of 32, first caption, fixed crop).

Output (the released layout): ``checkpoints/<ds>/<name>/model/finest.tar`` (text_encoder, motion_encoder,
movement_encoder, optimiser states, epoch, iter), ``meta/mean.npy``, ``meta/std.npy`` (the dataset's Mean/Std) and
``opt.txt``. Word vectors: ``Paths.glove(<dataset>)``. Training is resumable (src/train/engine.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from src.common.errors import HmuError, cli
from src.config.command import (DeviceOptions, Locations, RunOptions, WandbFlags, command_context, config_parser,
                                group, parse_config)
from src.config.flags import SpeedOptions, opt

log = logging.getLogger(__name__)


@dataclasses.dataclass(kw_only=True)
class EvaluatorTrainConfig:
    """Train Guo et al.'s T2M evaluator (text / motion co-embedding) on a HumanML3D-format dataset, e.g. synth, on a CPU."""

    dataset_name: str = opt("synth", help="dataset name")
    name: str = opt("text_mot_match", help="run folder under checkpoints/<dataset>/")
    max_epoch: int = opt(8, help="epochs (on synth val R@1 reaches 0.87-0.89 by epoch 6-8)")
    batch_size: int = opt(32, help="batch size")
    lr: float = opt(1e-3, help="Adam learning rate (upstream 1e-4 for far more steps)")
    seed: int = opt(0, help="seed")
    margin: float = opt(10.0, help="contrastive margin (upstream 10)")
    dim_text_hidden: int = opt(128, help="text GRU size (released: 512)")
    dim_coemb_hidden: int = opt(128, help="co-embedding size (released: 512)")
    dim_motion_hidden: int = opt(256, help="motion GRU size (released: 1024)")
    dim_movement_enc_hidden: int = opt(128, help="movement conv size (released: 512)")
    dim_movement_latent: int = opt(128, help="movement latent size (released: 512)")
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "glove_dir"))
    device: DeviceOptions = group(DeviceOptions)
    speed: SpeedOptions = group(SpeedOptions)
    run: RunOptions = group(RunOptions)
    wandb: WandbFlags = group(WandbFlags)


def build_parser() -> argparse.ArgumentParser:
    return config_parser(EvaluatorTrainConfig, prog="python -m src.train.evaluator", doc=__doc__)


def contrastive_loss(a, b, label, margin: float):
    """Guo's ContrastiveLoss: mean((1-y) d² + y clamp(margin - d, 0)²) with d = ||a - b||."""
    import torch

    d = torch.nn.functional.pairwise_distance(a, b, keepdim=True)
    label = label.view(-1, 1)
    return ((1 - label) * d.pow(2) + label * torch.clamp(margin - d, min=0).pow(2)).mean()


def co_embed(model, we, pos, cap_lens, motions, m_lens):
    """Training-mode forward of the three encoders, rows in input order: (text (B, D), motion (B, D))."""
    import torch

    unit = model.config.unit_length
    tp = torch.as_tensor(np.argsort(-cap_lens.cpu().numpy(), kind="stable"))
    text = model.text_encoder(we[tp], pos[tp], cap_lens[tp].cpu())
    text_out = torch.empty_like(text)
    text_out[tp] = text
    mp = torch.as_tensor(np.argsort(-m_lens.cpu().numpy(), kind="stable"))
    mov = model._movements(motions[mp])
    mot = model.motion_encoder(mov, (m_lens[mp] // unit).cpu())
    mot_out = torch.empty_like(mot)
    mot_out[mp] = mot
    return text_out, mot_out


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_config(EvaluatorTrainConfig, argv, prog="python -m src.train.evaluator", doc=__doc__)
    ctx = command_context(args.dataset_name, args.device, args.where, args.run, args.wandb)
    wandb = ctx.wandb
    import torch

    from src.common.io import atomic_save_npy, atomic_write_text, refuse_overwrite
    from src.common.seed import fix_seed
    from src.config.opt_txt import format_opt_text
    from src.data.humanml3d import HumanML3DFolder
    from src.common.datasets import get_spec
    from src.data.word_vectorizer import load_word_vectorizer
    from src.metrics import t2m as M
    from src.metrics.t2m import check_validation_size
    from src.models.evaluator import Evaluator, EvaluatorConfig
    from src.common import dist
    from src.train.engine import train_select_best
    from src.train.options import init_distributed

    spec = get_spec(args.dataset_name)
    paths = ctx.paths
    run_dir = paths.checkpoints_dir / spec.name / args.name
    finest = run_dir / "model" / "finest.tar"
    refuse_overwrite(finest, ctx.force, what="evaluator checkpoint")
    device = init_distributed(ctx.device)
    root = paths.data_root(spec.name)
    folder = HumanML3DFolder(root)
    mean, std = folder.mean_std()
    words = load_word_vectorizer(paths.glove(spec.name))
    config = EvaluatorConfig.for_dataset(
        spec.name, dim_pose=int(mean.shape[0]), dim_word=words.dim_word, dim_text_hidden=args.dim_text_hidden,
        dim_coemb_hidden=args.dim_coemb_hidden, dim_motion_hidden=args.dim_motion_hidden,
        dim_movement_enc_hidden=args.dim_movement_enc_hidden, dim_movement_latent=args.dim_movement_latent)
    unit = config.unit_length

    def load(split: str):
        data = []
        for mid in folder.ids(split):
            m = folder.motion(mid)
            caps = [c.tokens for c in folder.captions(mid)]
            if len(m) >= max(unit, spec.min_motion_length) and caps:
                data.append((((m - mean) / std).astype(np.float32), caps))
        if not data:
            raise HmuError(f"split {split} of {root} has no motion of at least {spec.min_motion_length} frames")
        return data

    train_data, val_data = load("train"), load("val")
    check_validation_size(len(val_data), f"split val of {root}")
    log.info("evaluator training on %d motions, validating on %d", len(train_data), len(val_data))

    def make_batch(rows):
        we, pos, cl = words.batch([t for _, t in rows], max_text_len=config.max_text_len)
        lens = [len(m) for m, _ in rows]
        x = np.zeros((len(rows), max(lens), config.dim_pose), np.float32)
        for i, (m, _) in enumerate(rows):
            x[i, :len(m)] = m
        f = lambda a: torch.as_tensor(a, device=device)
        return f(we), f(pos), torch.as_tensor(cl), f(x), torch.as_tensor(lens)

    def _batches(epoch: int):
        rng = np.random.default_rng([args.seed, epoch])
        perm = rng.permutation(len(train_data))
        for s in range(0, len(perm) - 1, args.batch_size):
            rows = []
            for i in perm[s:s + args.batch_size]:
                m, caps = train_data[i]
                n = spec.crop_length(len(m))
                start = int(rng.integers(0, len(m) - n + 1))
                rows.append((m[start:start + n], caps[int(rng.integers(len(caps)))]))
            if dist.world_size() > 1:  # every rank drew the whole batch (same rng); each trains on its share
                if len(rows) % dist.world_size():
                    continue
                rows = dist.shard(rows)
            if len(rows) >= 2:
                yield make_batch(rows)

    def batches(epoch: int):  # with a length, so the progress bar has a total
        from src.common.progress import Sized

        L = len(train_data)
        n = sum(1 for s in range(0, L - 1, args.batch_size) if min(args.batch_size, L - s) >= 2)
        return Sized(_batches(epoch), n)

    fix_seed(args.seed)
    model = Evaluator(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    if ctx.force:
        dist.on_main(lambda: (run_dir / "model" / "latest.tar").unlink(missing_ok=True))
    shift_rng = np.random.default_rng([args.seed, 99])

    def step(batch, it):
        text, mot = co_embed(model, *batch)
        B = text.shape[0]
        shift = int(shift_rng.integers(1, B))
        neg = torch.as_tensor((np.arange(B) + shift) % B, device=mot.device)
        loss_pos = contrastive_loss(text, mot, torch.zeros(B, device=mot.device), args.margin)
        loss_neg = contrastive_loss(text, mot[neg], torch.ones(B, device=mot.device), args.margin)
        return {"loss": loss_pos + loss_neg, "loss_pos": loss_pos, "loss_neg": loss_neg}

    val_rows = [(m[:spec.crop_length(len(m))], caps[0]) for m, caps in val_data]

    def validate():
        hits, n, dist = np.zeros(3), 0, []
        for s in range(0, len(val_rows), 32):
            rows = val_rows[s:s + 32]
            if len(rows) < 2:
                continue
            t, m = co_embed(model, *make_batch(rows))
            t, m = t.cpu().numpy(), m.cpu().numpy()
            hits += M.r_precision_counts(t, m, 3)
            n += len(rows)
            dist.extend(M.matching_distances(t, m))
        model.train()
        return {"R_precision_top1": hits[0] / max(n, 1), "R_precision_top3": hits[2] / max(n, 1),
                "MM_Dist": float(np.mean(dist)) if dist else float("nan")}

    summary, best = train_select_best(model, model_key="evaluator", optimizer=opt, run_dir=run_dir, batches=batches,
                                      step=step, validate=validate, score_key="R_precision_top3",
                                      max_epoch=args.max_epoch, seed=args.seed, progress=ctx.progress,
                                      wandb=wandb, amp=args.speed.amp, num_workers=args.speed.num_workers)
    if not dist.is_main():
        return 0
    model.save(finest, epoch=int(best.get("ep", args.max_epoch)), it=summary["total_it"], force=True)
    atomic_save_npy(run_dir / "meta" / "mean.npy", mean)
    atomic_save_npy(run_dir / "meta" / "std.npy", std)
    opt_items = {k: str(v) for k, v in config.to_dict().items()}
    opt_items.update(dataset_name=spec.name, name=args.name, max_epoch=str(args.max_epoch), lr=str(args.lr),
                     margin=str(args.margin), batch_size=str(args.batch_size), seed=str(args.seed),
                     glove_dir=str(paths.glove(spec.name)))
    atomic_write_text(run_dir / "opt.txt", format_opt_text(opt_items))
    with torch.no_grad():
        val = validate()
    print(f"evaluator saved to {finest} ({summary['wall_time_s']:.1f} s); val R@1 {val['R_precision_top1']:.3f} "
          f"R@3 {val['R_precision_top3']:.3f} MM_Dist {val['MM_Dist']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
