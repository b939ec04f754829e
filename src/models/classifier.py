"""A small multi-label action classifier over motion features, the judge of ground-truth leakage on ``synth``.

Labels are synth's action names plus one ``concept:<name>`` label per concept (from ``labels.json``). The network:
normalise with its own mean/std buffers, three 1-D convolutions over time (the first two with stride 2), then masked mean-
and max-pooling over the valid frames and a linear head. Small enough to train in well under a minute on a CPU.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from src.common.errors import HmuError

CONCEPT_PREFIX = "concept:"


@dataclass(frozen=True)
class ActionClassifierConfig:
    labels: tuple[str, ...]
    dim_pose: int = 263
    hidden: int = 64
    kernel: int = 5
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionClassifierConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        return cls(**{**d, "labels": tuple(d["labels"])})


class ActionClassifier(nn.Module):
    """(B, T, dim_pose) RAW features + (B,) lengths -> (B, n_labels) logits."""

    def __init__(self, config: ActionClassifierConfig):
        super().__init__()
        c = config
        self.config = c
        p = c.kernel // 2
        self.register_buffer("mean", torch.zeros(c.dim_pose))
        self.register_buffer("std", torch.ones(c.dim_pose))
        self.convs = nn.Sequential(
            nn.Conv1d(c.dim_pose, c.hidden, c.kernel, stride=2, padding=p), nn.GELU(), nn.Dropout(c.dropout),
            nn.Conv1d(c.hidden, c.hidden, c.kernel, stride=2, padding=p), nn.GELU(), nn.Dropout(c.dropout),
            nn.Conv1d(c.hidden, c.hidden, c.kernel, padding=p), nn.GELU(),
        )
        self.head = nn.Linear(2 * c.hidden, len(c.labels))

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Activations beyond each motion's valid frames are zeroed after every conv, so a motion scores the same
        # alone or padded in a batch (what the conv's own zero padding sees at the end of the sequence).
        lengths = lengths.to(x.device)
        h = ((x - self.mean) / self.std).transpose(1, 2)                    # (B, D, T)
        n = lengths
        h = h * (torch.arange(h.shape[-1], device=h.device)[None, :] < n[:, None])[:, None, :]
        for layer in self.convs:
            h = layer(h)
            if isinstance(layer, nn.Conv1d) and layer.stride[0] == 2:
                n = (n + 1) // 2                                        # k5 p2 s2: ceil(T / 2) outputs
            if isinstance(layer, (nn.GELU, nn.Conv1d)):
                h = h * (torch.arange(h.shape[-1], device=h.device)[None, :] < n[:, None])[:, None, :]
        valid = (torch.arange(h.shape[-1], device=h.device)[None, :] < n[:, None])[:, None, :]
        mean = (h * valid).sum(-1) / valid.sum(-1).clamp_min(1)
        mx = h.masked_fill(~valid, float("-inf")).amax(-1)
        return self.head(torch.cat([mean, mx], dim=-1))

    def label_index(self, label: str) -> int:
        try:
            return self.config.labels.index(label)
        except ValueError:
            raise HmuError(f"the action classifier has no label '{label}' (has: {', '.join(self.config.labels)})") \
                from None

    @torch.no_grad()
    def predict_proba(self, motions: Sequence[np.ndarray], *, batch_size: int = 128) -> np.ndarray:
        """Raw (T_i, dim_pose) motions -> (N, n_labels) sigmoid probabilities (eval mode, follows the weights' device)."""
        was = self.training
        self.eval()
        dev = self.mean.device
        out = np.zeros((len(motions), len(self.config.labels)), np.float32)
        for s in range(0, len(motions), batch_size):
            chunk = motions[s:s + batch_size]
            lens = torch.tensor([len(m) for m in chunk])
            x = torch.zeros(len(chunk), int(lens.max()), self.config.dim_pose)
            for i, m in enumerate(chunk):
                x[i, :len(m)] = torch.as_tensor(np.asarray(m, np.float32))
            out[s:s + len(chunk)] = torch.sigmoid(self(x.to(dev), lens.to(dev))).cpu().numpy()
        self.train(was)
        return out

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike, *, meta: dict[str, Any] | None = None, force: bool = False) -> None:
        from src.common.io import atomic_torch_save, refuse_overwrite

        refuse_overwrite(path, force, what="action classifier")
        atomic_torch_save({"config": self.config.to_dict(), "state_dict": self.state_dict(), "meta": meta or {}}, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple[ActionClassifier, dict[str, Any]]:
        """Strict load on CPU -> (model in eval mode, meta)."""
        from src.common.io import torch_load
        from src.models.evaluator import _load_strict

        ckpt = torch_load(path, what="action classifier")
        if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
            raise HmuError(f"action classifier {path} lacks config/state_dict")
        model = cls(ActionClassifierConfig.from_dict(ckpt["config"]))
        _load_strict(model, ckpt["state_dict"], f"action classifier {path}")
        return model.eval(), dict(ckpt.get("meta") or {})
