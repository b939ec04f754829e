"""What the MoMask trainers are fed: the dataset folder, per-epoch shuffled batches, validation batches, and
each caption's text feature computed once."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from src.common.errors import HmuError


def open_folder(paths, dataset_name: str):
    """The dataset folder reader (HumanML3D layout) for ``dataset_name``."""
    from src.data.humanml3d import HumanML3DFolder
    from src.common.datasets import get_spec

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
    from src.common.datasets import get_spec

    spec = get_spec(cfg.dataset_name)
    return Text2MotionDataset(folder, split, mean=mean, std=std, max_motion_length=cfg.max_motion_length,
                              unit_length=cfg.unit_length, min_motion_length=spec.min_motion_length, fps=spec.fps,
                              seed=seed)


def t2m_batches(dataset, *, batch_size: int, seed: int) -> Callable[[int], Any]:
    """batches(epoch) for the engine: the dataset's crops/captions re-drawn per epoch, collated longest first."""
    from src.data.datasets import collate

    from src.common.progress import Sized

    def batches(epoch: int):
        dataset.set_epoch(epoch)
        order = epoch_order(len(dataset), batch_size=batch_size, seed=seed, epoch=epoch)
        return Sized((collate([dataset[int(i)] for i in idx]) for idx in order), len(order))

    return batches


def fixed_batches(dataset, *, batch_size: int, seed: int) -> list:
    """Validation batches: one fixed draw (epoch 0), in order, the last partial batch kept."""
    from src.data.datasets import collate

    dataset.set_epoch(0)
    items = [dataset[i] for i in range(len(dataset))]
    return [collate(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


def build_encoder(paths, cfg, device, *, glove_dir: str | None = None, clip_path: str | None = None):
    """The text encoder the config names (clip or embedded), sized ``cfg.clip_dim`` / ``input_size``."""
    from src.models.text_encoders import build_text_encoder

    dim = getattr(cfg, "clip_dim", None) or cfg.input_size
    glove = glove_dir or paths.glove(cfg.dataset_name)
    return build_text_encoder(cfg.text_encoder, clip_path=clip_path, glove_dir=glove, dim=dim, device=device)


class TextFeatures:
    """Each distinct caption encoded once: ``features(captions) -> (B, dim)`` float32 on the encoder's device."""

    def __init__(self, encoder, captions: Sequence[str], *, chunk: int = 256, progress: bool = True):
        import torch

        from src.common.progress import progress as progress_bar

        uniq = sorted(set(captions))
        self.index = {c: i for i, c in enumerate(uniq)}
        parts = []
        for i in progress_bar(range(0, len(uniq), chunk), desc="text features", unit="chunk", enabled=progress):
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
