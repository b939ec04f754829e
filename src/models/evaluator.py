"""Guo et al.'s T2M evaluator (text / motion co-embedding) with upstream's exact state-dict keys.

Modules follow ``models/t2m_eval_modules.py`` of momask-codes: a bidirectional-GRU text encoder over GloVe vectors + POS
one-hots, a 2-layer strided conv "movement" encoder (T -> T/4) and a bidirectional-GRU motion encoder over movements.
:class:`Evaluator` loads the released ``text_mot_match/model/finest.tar`` strictly.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from src.common.errors import HmuError
from src.models.strict import state_dict_mismatch

log = logging.getLogger(__name__)

# Keys read by upstream's loader / written by Guo's TextMotionMatchTrainer.save.
MODULE_KEYS = ("text_encoder", "motion_encoder", "movement_encoder")
FOOT_CONTACT_DIMS = 4  # the movement encoder drops the last 4 features (foot contacts) of each frame


def _init_weight(m: nn.Module) -> None:
    # Upstream init (xavier-normal weights, zero bias); only matters for training from scratch.
    if isinstance(m, (nn.Conv1d, nn.Linear, nn.ConvTranspose1d)):
        nn.init.xavier_normal_(m.weight)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)


def _head(hidden_size: int, output_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(hidden_size * 2, hidden_size),
        nn.LayerNorm(hidden_size),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Linear(hidden_size, output_size),
    )


def _bigru_last(gru: nn.GRU, hidden: torch.Tensor, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Run a packed bidirectional GRU; lengths must be sorted descending. Returns cat(h_fwd, h_bwd) (B, 2H)."""
    h0 = hidden.repeat(1, x.shape[0], 1)
    packed = pack_padded_sequence(x, lens.detach().to("cpu", torch.int64), batch_first=True, enforce_sorted=True)
    _, h_last = gru(packed, h0)
    return torch.cat([h_last[0], h_last[1]], dim=-1)


class TextEncoderBiGRUCo(nn.Module):
    """(B, L, dim_word) word vectors + (B, L, dim_pos_ohot) POS one-hots + (B,) lengths (sorted desc) -> (B, output)."""

    def __init__(self, *, word_size: int, pos_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.pos_emb = nn.Linear(pos_size, word_size)
        self.input_emb = nn.Linear(word_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = _head(hidden_size, output_size)
        self.input_emb.apply(_init_weight)
        self.pos_emb.apply(_init_weight)
        self.output_net.apply(_init_weight)
        self.hidden_size = hidden_size
        # Learned initial hidden state, repeated over the batch.
        self.hidden = nn.Parameter(torch.randn((2, 1, hidden_size)))

    def forward(self, word_embs: torch.Tensor, pos_onehot: torch.Tensor, cap_lens: torch.Tensor) -> torch.Tensor:
        x = self.input_emb(word_embs + self.pos_emb(pos_onehot))
        return self.output_net(_bigru_last(self.gru, self.hidden, x, cap_lens))


class MotionEncoderBiGRUCo(nn.Module):
    """(B, T', dim_movement_latent) movements + (B,) lengths in movement frames (sorted desc) -> (B, output)."""

    def __init__(self, *, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = _head(hidden_size, output_size)
        self.input_emb.apply(_init_weight)
        self.output_net.apply(_init_weight)
        self.hidden_size = hidden_size
        self.hidden = nn.Parameter(torch.randn((2, 1, hidden_size)))

    def forward(self, inputs: torch.Tensor, m_lens: torch.Tensor) -> torch.Tensor:
        return self.output_net(_bigru_last(self.gru, self.hidden, self.input_emb(inputs), m_lens))


class MovementConvEncoder(nn.Module):
    """(B, T, input_size) -> (B, T // 4, output_size): two Conv1d(k4, s2, p1) + dropout + LeakyReLU, then a Linear."""

    def __init__(self, *, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        # inplace=False: identical outputs; inplace dropout/activation on conv outputs saves nothing worth the aliasing.
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output_size, output_size)
        self.main.apply(_init_weight)
        self.out_net.apply(_init_weight)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.out_net(self.main(inputs.permute(0, 2, 1)).permute(0, 2, 1))


@dataclass(frozen=True)
class EvaluatorConfig:
    """Sizes of the evaluator. Defaults are the released HumanML3D evaluator's."""

    dim_pose: int = 263
    dim_word: int = 300
    dim_pos_ohot: int = 15
    dim_text_hidden: int = 512
    dim_coemb_hidden: int = 512
    dim_motion_hidden: int = 1024
    dim_movement_enc_hidden: int = 512
    dim_movement_latent: int = 512
    unit_length: int = 4
    max_motion_length: int = 196
    max_text_len: int = 20

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluatorConfig:
        """Build from a dict; unknown keys are ignored (upstream opt files hold many more)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in names})

    @classmethod
    def for_dataset(cls, dataset_name: str, **overrides: int) -> EvaluatorConfig:
        """Released sizes with the dataset's pose size, unit length and max lengths (from src.common.datasets)."""
        from src.common.datasets import get_spec

        s = get_spec(dataset_name)
        base = {"dim_pose": s.dim_pose, "unit_length": s.unit_length, "max_motion_length": s.max_motion_length,
                "max_text_len": s.max_text_len}
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def evaluator_checkpoint_path(checkpoints_dir: str | os.PathLike, dataset_name: str) -> Path:
    """``<checkpoints_dir>/<dataset>/text_mot_match/model/finest.tar``: first existing of the dataset's folder names."""
    from src.common.datasets import get_spec

    spec = get_spec(dataset_name)
    cands = [Path(checkpoints_dir) / f / "text_mot_match" / "model" / "finest.tar" for f in spec.ckpt_folders]
    for c in cands:
        if c.is_file():
            return c
    return cands[0]


class Evaluator(nn.Module):
    """The three encoders together, in eval mode, with upstream's embedding API and an input-order API."""

    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        c = config
        self.config = c
        # Construction order = upstream build_models (movement, text, motion): same seed, same initial weights.
        self.movement_encoder = MovementConvEncoder(input_size=c.dim_pose - FOOT_CONTACT_DIMS,
                                                    hidden_size=c.dim_movement_enc_hidden,
                                                    output_size=c.dim_movement_latent)
        self.text_encoder = TextEncoderBiGRUCo(word_size=c.dim_word, pos_size=c.dim_pos_ohot,
                                               hidden_size=c.dim_text_hidden, output_size=c.dim_coemb_hidden)
        self.motion_encoder = MotionEncoderBiGRUCo(input_size=c.dim_movement_latent, hidden_size=c.dim_motion_hidden,
                                                   output_size=c.dim_coemb_hidden)
        self.epoch: int | None = None
        self.eval()

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, config: EvaluatorConfig) -> Evaluator:
        """Load upstream's ``finest.tar`` strictly (CPU); one-line HmuError naming the file on any mismatch."""
        from src.common.io import torch_load

        ckpt = torch_load(path, what="evaluator checkpoint")
        if not isinstance(ckpt, dict):
            raise HmuError(f"evaluator checkpoint {path} is not a dict (got {type(ckpt).__name__})")
        absent = [k for k in MODULE_KEYS if k not in ckpt]
        if absent:
            raise HmuError(f"evaluator checkpoint {path} lacks {', '.join(absent)} (has: {', '.join(map(str, ckpt))})")
        model = cls(config)
        for name in MODULE_KEYS:
            _load_strict(getattr(model, name), ckpt[name], f"evaluator checkpoint {path} [{name}]")
        epoch = ckpt.get("epoch")
        model.epoch = int(epoch) if isinstance(epoch, (int, np.integer)) else None
        log.info("loaded evaluator from %s (epoch %s)", path, model.epoch)
        return model.eval()

    def checkpoint_dict(self, *, epoch: int = 0, it: int = 0, opt_text_encoder: dict | None = None,
                        opt_motion_encoder: dict | None = None) -> dict[str, Any]:
        """The released file's dict: the three state_dicts, both Adam states, ``epoch`` and ``iter``."""
        return {
            "text_encoder": self.text_encoder.state_dict(),
            "motion_encoder": self.motion_encoder.state_dict(),
            "movement_encoder": self.movement_encoder.state_dict(),
            "opt_text_encoder": opt_text_encoder if opt_text_encoder is not None else {},
            "opt_motion_encoder": opt_motion_encoder if opt_motion_encoder is not None else {},
            "epoch": int(epoch),
            "iter": int(it),
        }

    def save(self, path: str | os.PathLike, *, epoch: int = 0, it: int = 0, opt_text_encoder: dict | None = None,
             opt_motion_encoder: dict | None = None, force: bool = False) -> None:
        """Write the released ``finest.tar`` format atomically; refuses to overwrite unless ``force``."""
        from src.common.io import atomic_torch_save, refuse_overwrite

        refuse_overwrite(path, force, what="evaluator checkpoint")
        atomic_torch_save(self.checkpoint_dict(epoch=epoch, it=it, opt_text_encoder=opt_text_encoder,
                                               opt_motion_encoder=opt_motion_encoder), path)

    # ------------------------------------------------------------------ embeddings
    def _movements(self, motions: torch.Tensor) -> torch.Tensor:
        return self.movement_encoder(motions[..., : self.config.dim_pose - FOOT_CONTACT_DIMS])

    def _as(self, x: Any, dtype: torch.dtype) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.as_tensor(x).detach().to(device=device, dtype=dtype)

    @staticmethod
    def upstream_order(m_lens: Any) -> np.ndarray:
        """Upstream's row order: ``np.argsort(m_lens.tolist())[::-1]`` (numpy default sort; ties are not stable)."""
        return np.argsort(np.asarray(torch.as_tensor(m_lens).cpu()).tolist())[::-1].copy()

    @torch.no_grad()
    def get_co_embeddings(self, word_embs: Any, pos_ohot: Any, cap_lens: Any, motions: Any, m_lens: Any,
                          *, order: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Upstream's call: (text_emb, motion_emb, order), rows sorted by motion length descending.

        Row i of both outputs belongs to input sample ``order[i]``. Captions must be sorted by ``cap_lens``
        descending as upstream's collate does. ``order`` overrides the argsort (e.g. a stored one for ties).
        """
        order = self.upstream_order(m_lens) if order is None else np.asarray(order)
        idx = torch.as_tensor(order, dtype=torch.long)
        motions = self._as(motions, torch.float32)[idx.to(self._device)]
        m_lens = torch.as_tensor(m_lens).to("cpu", torch.int64)[idx]
        motion_emb = self.motion_encoder(self._movements(motions), m_lens // self.config.unit_length)
        text_emb = self.text_encoder(self._as(word_embs, torch.float32), self._as(pos_ohot, torch.float32),
                                     torch.as_tensor(cap_lens).to("cpu", torch.int64))
        return text_emb[idx.to(text_emb.device)], motion_emb, order

    @property
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def encode_text(self, word_embs: Any, pos_ohot: Any, cap_lens: Any) -> torch.Tensor:
        """(B, L, dim_word), (B, L, dim_pos_ohot), (B,) in any order -> (B, dim_coemb) in INPUT order."""
        lens = torch.as_tensor(cap_lens).to("cpu", torch.int64)
        perm = torch.as_tensor(np.argsort(-lens.numpy(), kind="stable"), dtype=torch.long)
        dev_perm = perm.to(self._device)
        out = self.text_encoder(self._as(word_embs, torch.float32)[dev_perm],
                                self._as(pos_ohot, torch.float32)[dev_perm], lens[perm])
        return _unpermute(out, dev_perm)

    @torch.no_grad()
    def encode_motion(self, motions: Any, m_lens: Any) -> torch.Tensor:
        """(B, T, dim_pose) features + (B,) frame lengths in any order -> (B, dim_coemb) in INPUT order.

        Lengths are divided by unit_length with floor division (what upstream's packing effectively does).
        """
        lens = torch.as_tensor(m_lens).to("cpu", torch.int64)
        if len(lens) and int(lens.min()) < self.config.unit_length:
            raise ValueError(f"motion lengths must be >= unit_length {self.config.unit_length}, got {int(lens.min())}")
        perm = torch.as_tensor(np.argsort(-lens.numpy(), kind="stable"), dtype=torch.long)
        dev_perm = perm.to(self._device)
        movements = self._movements(self._as(motions, torch.float32)[dev_perm])
        out = self.motion_encoder(movements, lens[perm] // self.config.unit_length)
        return _unpermute(out, dev_perm)


def _unpermute(out: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    res = torch.empty_like(out)
    res[perm] = out
    return res


def _load_strict(module: nn.Module, state: Any, where: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line HmuError listing the first bad keys / shapes."""
    if not isinstance(state, dict):
        raise HmuError(f"{where} is not a state_dict (got {type(state).__name__})")
    problem = state_dict_mismatch(module.state_dict(), state)
    if problem:
        raise HmuError(f"{where}: {problem} - check the config dims")
    module.load_state_dict(state, strict=True)
