"""Train the action classifier that measures ground-truth leakage (src/eval/leakage.py) on a dataset with labels.json.

    python -m src.train.classifier --dataset_name synth

Labels: every action of ``labels.json`` plus ``concept:<name>`` per concept; targets are motion-level (an action or a
concept is present anywhere in the motion). Trained on the ``train`` split with the shared engine (resumable), selected
on ``val`` by the mean concept AUC, and scored on the held-out ``test`` split: accuracy at the 0.5 threshold, balanced
accuracy and AUC per concept, macro AUC over actions. Those figures go into the checkpoint's ``meta["heldout"]``
(and are printed), so every leakage number can be read next to the judge's own error rates. Each training motion
also gets ``--augment`` mirrored / re-timed / re-scaled copies (src/data/augment.py), and how the judge holds on real
motion capture is measured by ``python -m src.eval.judge_check`` (docs/results/judges/).
Output: ``checkpoints/<dataset>/action_classifier/model/classifier.tar``.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from src.common.errors import HmuError, cli
from src.config.command import (DeviceOptions, Locations, RunOptions, WandbFlags, command_context, config_parser,
                                group, parse_config)
from src.config.flags import SpeedOptions, opt

log = logging.getLogger(__name__)


@dataclasses.dataclass(kw_only=True)
class ClassifierTrainConfig:
    """Train the action classifier that measures ground-truth leakage (src/eval/leakage.py) on a dataset with labels.json."""

    dataset_name: str = opt("synth", help="dataset with labels.json (synth)")
    name: str = opt("action_classifier", help="run folder under checkpoints/<dataset>/")
    max_epoch: int = opt(4, help="epochs")
    batch_size: int = opt(64, help="batch size")
    lr: float = opt(2e-3, help="Adam learning rate")
    seed: int = opt(0, help="seed")
    hidden: int = opt(64, help="conv channels")
    noise: float = opt(0.05, help="training noise (in std units) for robustness")
    augment: int = opt(1, help="augmented copies of every training motion (mirrored, speed x0.75-1.35, amplitude "
                               "x0.8-1.15; src/data/augment.py), so the judge holds on motion unlike synth's; 0 = none")
    pos_weight_max: float = opt(2.0, help="cap on the positive-class weight of each label (negatives / positives in "
                                          "train; was 10 before issue 30, when violence, 1 motion in 8, weighed 7 "
                                          "times a benign motion)")
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir"))
    device: DeviceOptions = group(DeviceOptions)
    speed: SpeedOptions = group(SpeedOptions)
    run: RunOptions = group(RunOptions)
    wandb: WandbFlags = group(WandbFlags)


def build_parser() -> argparse.ArgumentParser:
    return config_parser(ClassifierTrainConfig, prog="python -m src.train.classifier", doc=__doc__)


def label_names(labels: dict[str, Any]) -> tuple[str, ...]:
    from src.models.classifier import CONCEPT_PREFIX

    actions = sorted({a for m in labels["motions"].values() for a in m.get("actions", [])}
                     | {a for acts in labels["concepts"].values() for a in acts})
    return (*actions, *(CONCEPT_PREFIX + c for c in sorted(labels["concepts"])))


def targets(entry: dict[str, Any], names: Sequence[str]) -> np.ndarray:
    from src.models.classifier import CONCEPT_PREFIX

    on = set(entry.get("actions", [])) | {CONCEPT_PREFIX + c for c in entry.get("concepts", [])}
    return np.array([n in on for n in names], np.float32)


def load_split(folder, split: str, labels: dict, names: Sequence[str], max_len: int
               ) -> tuple[list[np.ndarray], np.ndarray]:
    ids = [i for i in folder.ids(split) if i in labels["motions"]]
    if not ids:
        raise HmuError(f"split {split} of {folder.root} has no id with labels in labels.json")
    motions = [folder.motion(i)[:max_len] for i in ids]
    return motions, np.stack([targets(labels["motions"][i], names) for i in ids])


def augmented(motions: Sequence[np.ndarray], y: np.ndarray, *, copies: int, seed: int, max_len: int,
              joints_num: int = 22, progress: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """The motions followed by ``copies`` augmented variants of each (joints -> src.data.augment.augment -> features;
    same labels). Deterministic in ``seed``."""
    from src.common.progress import progress as bar
    from src.data.augment import augment
    from src.data.motion import joints_to_features, recover_from_ric

    rng = np.random.default_rng([seed, 31])
    out = list(motions)
    for m in bar(motions, desc="augment", unit="motion", enabled=progress):
        joints = recover_from_ric(np.asarray(m, np.float32), joints_num)
        for _ in range(copies):
            out.append(joints_to_features(augment(joints, rng))[:max_len])
    return out, np.concatenate([y, np.repeat(y, copies, axis=0)])  # copies follow their motions in order


def heldout_scores(probs: np.ndarray, y: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Accuracy / balanced accuracy / AUC per concept at threshold 0.5, macro AUC over actions."""
    from src.metrics.classification import roc_auc
    from src.models.classifier import CONCEPT_PREFIX

    yb = y > 0.5
    pred = probs > 0.5
    out: dict[str, Any] = {"n": len(y), "concepts": {}, "exact_match": float((pred == yb).all(1).mean())}
    aucs = []
    for j, n in enumerate(names):
        auc = roc_auc(probs[:, j], yb[:, j])
        if n.startswith(CONCEPT_PREFIX):
            pos, neg = yb[:, j], ~yb[:, j]
            tpr = float(pred[pos, j].mean()) if pos.any() else float("nan")
            tnr = float((~pred[neg, j]).mean()) if neg.any() else float("nan")
            out["concepts"][n[len(CONCEPT_PREFIX):]] = {
                "accuracy": float((pred[:, j] == yb[:, j]).mean()), "balanced_accuracy": (tpr + tnr) / 2,
                "tpr": tpr, "fpr": 1 - tnr, "auc": auc, "n_pos": int(pos.sum())}
        elif np.isfinite(auc):
            aucs.append(auc)
    out["actions_macro_auc"] = float(np.mean(aucs)) if aucs else float("nan")
    return out


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_config(ClassifierTrainConfig, argv, prog="python -m src.train.classifier", doc=__doc__)
    ctx = command_context(args.dataset_name, args.device, args.where, args.run, args.wandb)
    wandb = ctx.wandb
    import torch

    from src.common.io import refuse_overwrite
    from src.common.seed import fix_seed
    from src.data.humanml3d import HumanML3DFolder
    from src.common.datasets import get_spec
    from src.models.classifier import ActionClassifier, ActionClassifierConfig
    from src.common import dist
    from src.train.engine import train_select_best
    from src.train.options import init_distributed

    spec = get_spec(args.dataset_name)
    paths = ctx.paths
    root = paths.data_root(spec.name)
    run_dir = paths.checkpoints_dir / spec.name / args.name
    out = run_dir / "model" / "classifier.tar"
    refuse_overwrite(out, ctx.force, what="action classifier")
    device = init_distributed(ctx.device)
    from src.data.synth.truth import read_labels

    labels = read_labels(root)
    names = label_names(labels)
    folder = HumanML3DFolder(root)
    mean, std = folder.mean_std()
    tr_x, tr_y = load_split(folder, "train", labels, names, spec.max_motion_length)
    va_x, va_y = load_split(folder, "val", labels, names, spec.max_motion_length)
    te_x, te_y = load_split(folder, "test", labels, names, spec.max_motion_length)
    log.info("classifier: %d labels, %d/%d/%d train/val/test motions", len(names), len(tr_x), len(va_x), len(te_x))
    from src.data.motion import feature_dim

    if args.augment > 0 and mean.shape[0] != feature_dim(spec.joints_num):
        log.warning("classifier: --augment needs %d-d joint features (these have %d): training without it",
                    feature_dim(spec.joints_num), mean.shape[0])
    elif args.augment > 0:
        tr_x, tr_y = augmented(tr_x, tr_y, copies=args.augment, seed=args.seed, max_len=spec.max_motion_length,
                               joints_num=spec.joints_num, progress=ctx.progress)
        log.info("classifier: %d training motions with %d augmented copies each", len(tr_x), args.augment)

    fix_seed(args.seed)
    model = ActionClassifier(ActionClassifierConfig(labels=names, dim_pose=int(mean.shape[0]), hidden=args.hidden))
    model.set_normalisation(mean, std)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    if ctx.force:
        dist.on_main(lambda: (run_dir / "model" / "latest.tar").unlink(missing_ok=True))
    std_t = torch.as_tensor(std, device=device)
    pos_w = torch.as_tensor(np.clip((len(tr_y) - tr_y.sum(0)) / np.maximum(tr_y.sum(0), 1), 1, args.pos_weight_max),
                            device=device)
    names_concept = [j for j, n in enumerate(names) if n.startswith("concept:")]

    def pad(xs):
        lens = torch.tensor([len(x) for x in xs])
        b = torch.zeros(len(xs), int(lens.max()), model.config.dim_pose)
        for i, x in enumerate(xs):
            b[i, :len(x)] = torch.as_tensor(x)
        return b.to(device), lens.to(device)

    def batches(epoch: int):
        from src.common.progress import Sized

        rng = np.random.default_rng([args.seed, epoch])
        perm = rng.permutation(len(tr_x))
        starts = [s for s in range(0, len(perm), args.batch_size)
                  if dist.world_size() == 1 or len(perm[s:s + args.batch_size]) % dist.world_size() == 0]

        def one(s):
            idx = perm[s:s + args.batch_size]
            if dist.world_size() > 1:  # each rank trains on its share of the global batch
                idx = dist.shard(idx)
            return [tr_x[i] for i in idx], torch.as_tensor(tr_y[idx], device=device)

        return Sized((one(s) for s in starts), len(starts))

    def step(batch, it):
        xs, y = batch
        x, lens = pad(xs)
        x = x + args.noise * std_t * torch.randn_like(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x, lens), y, pos_weight=pos_w)
        return {"loss": loss}

    def validate():
        p = model.predict_proba(va_x)
        s = heldout_scores(p, va_y, names)
        aucs = [v["auc"] for v in s["concepts"].values() if np.isfinite(v["auc"])]
        model.train()
        return {"concept_auc": float(np.mean(aucs)) if aucs else 0.0, "actions_auc": s["actions_macro_auc"]}

    summary, _ = train_select_best(model, model_key="classifier", optimizer=opt, run_dir=run_dir, batches=batches,
                                   step=step, validate=validate, score_key="concept_auc", max_epoch=args.max_epoch,
                                   seed=args.seed, progress=ctx.progress, wandb=wandb, amp=args.speed.amp,
                                   num_workers=args.speed.num_workers)
    if not dist.is_main():
        return 0
    held = heldout_scores(model.predict_proba(te_x), te_y, names)
    meta = {"dataset": spec.name, "threshold": 0.5, "trained_on": "train", "selected_on": "val",
            "heldout": {"split": "test", **held}, "epochs": args.max_epoch, "seed": args.seed,
            "wall_time_s": summary["wall_time_s"], "n_concept_labels": len(names_concept)}
    model.save(out, meta=meta, force=True)
    print(f"action classifier saved to {out} ({summary['wall_time_s']:.1f} s)")
    for c, s in held["concepts"].items():
        print(f"held-out test ({held['n']} motions) concept {c}: accuracy {s['accuracy']:.3f}, balanced "
              f"{s['balanced_accuracy']:.3f}, AUC {s['auc']:.3f}, TPR {s['tpr']:.3f}, FPR {s['fpr']:.3f} "
              f"(positives {s['n_pos']})")
    print(f"held-out actions macro AUC {held['actions_macro_auc']:.3f}, exact match {held['exact_match']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
