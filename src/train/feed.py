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
    """Shuffled index batches for one epoch, from ``(seed, epoch)`` only; ``limit`` caps the items drawn.

    Under torchrun each rank gets its contiguous share of every global batch of ``batch_size`` (which must split
    evenly), like DistributedSampler with per-epoch reseeding: the ranks' shares together are the single-process
    batch, so the gradient DDP averages is the single-process one."""
    import numpy as np

    from src.common import dist

    order = np.random.default_rng((int(seed), int(epoch))).permutation(n)
    if limit:
        order = order[:limit]
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    if stop <= 0:
        raise HmuError(f"--batch_size {batch_size} is larger than the {len(order)} training items")
    if dist.world_size() > 1:
        dist.check_divisible(batch_size)
        if stop % batch_size:
            raise HmuError(f"{len(order)} items leave a last batch that does not split over {dist.world_size()} "
                           "processes (drop it)")
    return [dist.shard(order[i:i + batch_size]) for i in range(0, stop, batch_size)]


def action_frame_weights(segments: Sequence[Sequence[tuple[str, int, int]]], lengths: Sequence[int], *,
                         power: float) -> list:
    """Per motion, a (T_i,) weight per frame: ``share(action) ** -power`` of the action labelled there, where
    ``share`` is the action's fraction of all labelled frames. ``power`` 0 weighs every frame 1; 1 gives every action
    the same total weight; 0.5 is between. Unlabelled frames get the median action's weight."""
    import numpy as np

    frames: dict[str, int] = {}
    for segs in segments:
        for a, s, e in segs:
            frames[a] = frames.get(a, 0) + max(0, e - s)
    total = sum(frames.values())
    w_of = {a: (n / total) ** -power for a, n in frames.items() if n > 0}
    fill = float(np.median(list(w_of.values()))) if w_of else 1.0
    out = []
    for segs, t in zip(segments, lengths):
        w = np.full(int(t), fill, dtype=np.float64)
        for a, s, e in segs:
            if a in w_of:
                w[max(0, s):max(0, min(int(t), e))] = w_of[a]
        out.append(w)
    return out


def window_weights(frame_weights: Sequence, window: int) -> "Any":
    """(sum_i (T_i - window + 1),) mean frame weight of every ``window``-frame slice, in MotionWindowDataset's order
    (motion by motion, start 0, 1, ...); motions shorter than ``window`` are skipped, as there."""
    import numpy as np

    parts = []
    for w in frame_weights:
        if len(w) < window:
            continue
        cs = np.concatenate([[0.0], np.cumsum(w)])
        parts.append((cs[window:] - cs[:-window]) / window)
    return np.concatenate(parts) if parts else np.zeros(0)


def weighted_order(weights, *, batch_size: int, seed: int, epoch: int, limit: int) -> list:
    """``limit`` items drawn with replacement in proportion to ``weights``, from ``(seed, epoch)`` only, as index
    batches of ``batch_size`` (the last partial batch dropped); under torchrun each rank gets its share of every
    global batch, as :func:`epoch_order`."""
    import numpy as np

    from src.common import dist

    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0 or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise HmuError("sampling weights must be finite, non-negative and not all zero")
    order = np.random.default_rng((int(seed), int(epoch), 1)).choice(len(w), size=int(limit), p=w / w.sum())
    stop = len(order) - len(order) % batch_size
    if stop <= 0:
        raise HmuError(f"--batch_size {batch_size} is larger than the {len(order)} items drawn per epoch")
    if dist.world_size() > 1:  # every rank draws the same global order and takes its share, as epoch_order
        dist.check_divisible(batch_size)
    return [dist.shard(order[i:i + batch_size]) for i in range(0, stop, batch_size)]


def t2m_dataset(folder, split: str, *, mean, std, cfg, seed: int):
    """Text2MotionDataset over ``split`` with the config's lengths."""
    from src.data.datasets import Text2MotionDataset
    from src.common.datasets import get_spec

    spec = get_spec(cfg.dataset_name)
    return Text2MotionDataset(folder, split, mean=mean, std=std, max_motion_length=cfg.max_motion_length,
                              unit_length=cfg.unit_length, min_motion_length=spec.min_motion_length, fps=spec.fps,
                              seed=seed)


def entry_weights(folder, dataset, *, power: float):
    """(len(dataset),) sampling weight of each Text2MotionDataset entry: the mean of
    :func:`action_frame_weights` over its motion's frames (labels.json of ``folder``); None (a plain shuffle) when
    ``power`` is 0 or the dataset has no labels (a warning)."""
    import numpy as np

    from src.data.action_figures import action_segments
    from src.data.synth.truth import read_labels

    if not power:
        return None
    labels = read_labels(folder.root, required=False)
    if not labels:
        import logging

        logging.getLogger(__name__).warning("balance_actions %s: no action labels (%s), motions drawn uniformly",
                                            power, folder.root / "labels.json")
        return None
    mids = [n if n in labels["motions"] else n.split("_", 1)[-1] for n in dataset.names]  # A_<id>: a sub-clip
    segs = [action_segments(labels["motions"].get(m, {})) for m in mids]
    lengths = [len(m) for m, _ in dataset.entries]
    return np.array([w.mean() for w in action_frame_weights(segs, lengths, power=power)])


def t2m_batches(dataset, *, batch_size: int, seed: int, weights=None) -> Callable[[int], Any]:
    """batches(epoch) for the engine: the dataset's crops/captions re-drawn per epoch, collated longest first.
    ``weights``: draw ``len(dataset)`` entries per epoch with replacement in proportion to them (rare actions more
    often) instead of a shuffle."""
    from src.data.datasets import collate

    from src.common.progress import Sized

    def batches(epoch: int):
        dataset.set_epoch(epoch)
        if weights is not None:
            order = weighted_order(weights, batch_size=batch_size, seed=seed, epoch=epoch, limit=len(dataset))
        else:
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
    """The text encoder the config names (clip, minilm or embedded), sized ``cfg.clip_dim`` / ``input_size``."""
    from src.models.text_encoders import build_text_encoder

    dim = getattr(cfg, "clip_dim", None) or cfg.input_size
    glove = glove_dir or paths.glove(cfg.dataset_name)
    return build_text_encoder(cfg.text_encoder, clip_path=clip_path, glove_dir=glove, dim=dim, device=device,
                              data_root=paths.data_root(cfg.dataset_name))


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
