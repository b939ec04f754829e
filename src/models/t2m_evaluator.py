"""The T2M evaluator wrapper (:class:`T2MEvaluator`: the text/motion encoders with their normalisation and word vectors)
and its loading from ``checkpoints/<dataset>/text_mot_match``."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from src.common.errors import HmuError

PAD_FRAMES = 4      # zero frames after a motion that the movement convolutions (2x k4 s2 p1) can read: 3, rounded up
GROUP_ROWS = 512    # motions of one length per movement-encoder call (bounds the (rows, T, dim_pose) buffer)


@dataclass
class T2MEvaluator:
    """The evaluator with what it needs around it: normalisation stats and word vectors. Counts encoder calls."""

    model: Any                 # src.models.evaluator.Evaluator
    mean: np.ndarray
    std: np.ndarray
    words: Any                 # src.data.word_vectorizer.WordVectorizer
    batch_size: int = 256
    calls: dict[str, int] = field(default_factory=lambda: {"motion": 0, "text": 0})
    _key: str | None = None

    @property
    def dim_pose(self) -> int:
        return int(self.model.config.dim_pose)

    @property
    def unit_length(self) -> int:
        return int(self.model.config.unit_length)

    @property
    def key(self) -> str:
        """sha256 of the weights, mean/std, word vectors and config (the evaluator half of the cache key)."""
        if self._key is None:
            import hashlib

            from src.common.hashing import hash_arrays

            h = hashlib.sha256(repr(sorted(self.model.config.to_dict().items())).encode())
            for k, v in sorted(self.model.state_dict().items()):
                h.update(k.encode())
                hash_arrays(h, v.detach().cpu().numpy())
            hash_arrays(h, np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32),
                        np.asarray(self.words.vectors))
            h.update(repr(sorted(self.words.word2idx.items())).encode())
            self._key = h.hexdigest()
        return self._key

    def normalise(self, motion: np.ndarray) -> np.ndarray:
        return (np.asarray(motion, np.float32) - self.mean) / self.std

    def encode_motions(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        """Raw (T_i, dim_pose) motions -> (N, D) float32 in input order.

        Each motion is encoded as upstream's evaluation does: normalised, then zero-padded up to
        ``max_motion_length``, so its embedding does not depend on the other motions of the call. For the Guo
        evaluator (movement + motion encoders) this is computed without the padding: the movement convolutions run
        once per distinct length on just ``T + PAD_FRAMES`` frames (the conv stack reads 3 frames past the end, so
        the result equals padding to ``max_motion_length``), then one packed GRU pass over every motion at once.
        """
        lens = np.array([len(m) for m in motions], dtype=np.int64)
        out = np.zeros((len(motions), self.model.config.dim_coemb_hidden), np.float32)
        if not len(motions):
            return out
        if hasattr(self.model, "movement_encoder") and hasattr(self.model, "motion_encoder"):
            out[:] = self._encode_motions_grouped(motions, lens)
            self.calls["motion"] += 1
            return out
        max_len = int(self.model.config.max_motion_length)
        order = np.argsort(-lens, kind="stable")
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            batch = np.zeros((len(idx), max(max_len, int(lens[idx].max())), self.dim_pose), np.float32)
            for j, i in enumerate(idx):
                batch[j, :lens[i]] = self.normalise(motions[i])
            out[idx] = self.model.encode_motion(batch, lens[idx]).cpu().numpy()
            self.calls["motion"] += 1
        return out

    def _encode_motions_grouped(self, motions: Sequence[np.ndarray], lens: np.ndarray) -> np.ndarray:
        import torch

        from src.models.evaluator import FOOT_CONTACT_DIMS

        cfg = self.model.config
        unit, max_len = int(cfg.unit_length), int(cfg.max_motion_length)
        if int(lens.min()) < unit:
            raise ValueError(f"motion lengths must be >= unit_length {unit}, got {int(lens.min())}")
        dim_in = self.dim_pose - FOOT_CONTACT_DIMS
        mean = np.asarray(self.mean, np.float32)[:dim_in]
        std = np.asarray(self.std, np.float32)[:dim_in]
        param = next(self.model.parameters())
        order = np.argsort(-lens, kind="stable")          # the packed GRU wants lengths sorted descending
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        m_lens = lens // unit
        with torch.inference_mode():
            movements = torch.zeros((len(lens), int(m_lens.max()), int(cfg.dim_movement_latent)),
                                    dtype=param.dtype, device=param.device)
            for T in np.unique(lens):
                idx = np.flatnonzero(lens == T)
                # upstream pads with zeros to max_motion_length; the convolutions only read PAD_FRAMES of it
                frames = int(T) + PAD_FRAMES if T + PAD_FRAMES <= max_len else max(int(T), max_len)
                for s in range(0, len(idx), GROUP_ROWS):
                    sub = idx[s:s + GROUP_ROWS]
                    x = np.zeros((len(sub), frames, dim_in), np.float32)
                    x[:, :T] = (np.stack([np.asarray(motions[i], np.float32)[:, :dim_in] for i in sub]) - mean) / std
                    mv = self.model.movement_encoder(torch.from_numpy(x).to(device=param.device, dtype=param.dtype))
                    movements[torch.as_tensor(rank[sub], device=param.device), :T // unit] = mv[:, :T // unit]
            enc = self.model.motion_encoder
            fused = getattr(enc, "forward_fused", None)  # input_emb folded into the GRU (same result, fewer flops)
            emb = (fused or enc)(movements, torch.as_tensor(m_lens[order]))
        out = np.empty((len(lens), emb.shape[1]), np.float32)
        out[order] = emb.float().cpu().numpy()
        return out

    def encode_texts(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Captions as ``word/POS`` tokens -> (N, D) float32 in input order (eval wrapping: sos/eos/unk padding)."""
        out = np.zeros((len(token_lists), self.model.config.dim_coemb_hidden), np.float32)
        for s in range(0, len(token_lists), self.batch_size):
            chunk = token_lists[s:s + self.batch_size]
            we, pos, lens = self.words.batch(chunk, max_text_len=self.model.config.max_text_len)
            out[s:s + len(chunk)] = self.model.encode_text(we, pos, lens).cpu().numpy()
            self.calls["text"] += 1
        return out

    @classmethod
    def load(cls, *, checkpoints_dir: str | os.PathLike, dataset_name: str, glove_dir: str | os.PathLike,
             device: Any = "cpu") -> T2MEvaluator:
        """``checkpoints/<ds>/text_mot_match/{model/finest.tar, meta/{mean,std}.npy, opt.txt}`` + the vocabulary.

        Sizes come from ``text_mot_match/opt.txt`` when present (our trained evaluators write it), else the released
        ones. mean/std fall back to ``Comp_v6_KLD005/meta`` (where upstream keeps the released evaluator's).
        """
        from src.config.opt_txt import read_opt_file
        from src.data.word_vectorizer import load_word_vectorizer
        from src.models.evaluator import Evaluator, EvaluatorConfig, evaluator_checkpoint_path

        ckpt = evaluator_checkpoint_path(checkpoints_dir, dataset_name)
        if not ckpt.is_file():
            raise HmuError(f"evaluator checkpoint not found: {ckpt} (train one: python -m src.train.evaluator "
                           f"--dataset_name {dataset_name})")
        run = ckpt.parent.parent
        opt = run / "opt.txt"
        config = EvaluatorConfig.for_dataset(dataset_name)
        if opt.is_file():
            config = EvaluatorConfig.from_dict({**config.to_dict(), **read_opt_file(opt)})
        meta = next((d for d in (run / "meta", run.parent / "Comp_v6_KLD005" / "meta") if (d / "mean.npy").is_file()),
                    run / "meta")
        mean_p, std_p = meta / "mean.npy", meta / "std.npy"
        for p in (mean_p, std_p):
            if not p.is_file():
                raise HmuError(f"evaluator normalisation file not found: {p}")
        try:
            mean = np.load(mean_p, allow_pickle=False).astype(np.float32)
            std = np.load(std_p, allow_pickle=False).astype(np.float32)
        except (ValueError, OSError) as exc:
            raise HmuError(f"cannot read evaluator normalisation in {meta}: {exc}") from None
        from src.common.validate import check_mean_std

        check_mean_std(mean, std, mean_path=mean_p, std_path=std_p)
        if mean.shape != (config.dim_pose,) or std.shape != (config.dim_pose,):
            raise HmuError(f"evaluator mean/std in {meta} have shape {mean.shape}/{std.shape}, "
                           f"expected ({config.dim_pose},)")
        words = load_word_vectorizer(glove_dir)
        if words.dim_word != config.dim_word:
            raise HmuError(f"word vectors in {glove_dir} have dim {words.dim_word}, the evaluator wants "
                           f"{config.dim_word}")
        model = Evaluator.from_checkpoint(ckpt, config).to(device)
        return cls(model=model, mean=mean, std=std, words=words)
