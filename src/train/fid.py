"""FID on validation data during training (upstream's ``evaluation_vqvae`` / ``evaluation_mask_transformer`` /
``evaluation_res_transformer``): the hooks the trainers hand to the engine (``src.train.engine.Checkpointing``), so
``net_best_fid.tar`` is chosen by FID when a T2M evaluator exists for the dataset.

Each hook embeds the ground truth once, then at each call: the VQ reconstructs the validation motions; the masked
transformer (or BAMM) generates code layer 0 from the captions, decoded without residual layers (as upstream); the
residual transformer completes the ground truth's layer-0 codes. One caption per motion (its first), lengths of the
ground truth, a fixed seed, so epochs compare.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FidHook = Callable[[int], dict[str, float]]


def load_evaluator_if_available(paths, dataset_name: str, device) -> Any | None:
    """The dataset's T2M evaluator (``checkpoints/<ds>/text_mot_match``), or None when its checkpoint is missing."""
    from src.models.evaluator import evaluator_checkpoint_path
    from src.models.t2m_evaluator import T2MEvaluator

    if not evaluator_checkpoint_path(paths.checkpoints_dir, dataset_name).is_file():
        return None
    return T2MEvaluator.load(checkpoints_dir=paths.checkpoints_dir, dataset_name=dataset_name,
                             glove_dir=paths.glove(dataset_name), device=device)


def _crop(motions: Sequence[np.ndarray], unit: int, limit: int | None) -> list[np.ndarray]:
    out = [np.asarray(m[: (len(m) // unit) * unit], np.float32) for m in motions if len(m) >= unit]
    return out[:limit] if limit else out


def _fid(evaluator, gt_emb: np.ndarray, motions: Sequence[np.ndarray]) -> float:
    from src.metrics.t2m import fid

    return fid(gt_emb, evaluator.encode_motions(motions))


def vq_fid_hook(evaluator, vq, motions: Sequence[np.ndarray], *, mean, std, limit: int | None = 1024) -> FidHook:
    """FID of the VQ's reconstructions of raw ``motions`` (T_i, D) against the motions themselves."""
    import torch

    gt = _crop(motions, vq.downsample, limit)
    gt_emb = evaluator.encode_motions(gt)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def hook(epoch: int) -> dict[str, float]:
        device = next(vq.parameters()).device
        rec: list[np.ndarray] = []
        with torch.no_grad():
            for m in gt:  # one at a time: lengths differ, and no padding reaches the decoder
                x = torch.from_numpy((m - mean) / std)[None].to(device)
                ids, _ = vq.encode(x)
                rec.append(vq.forward_decoder(ids)[0].float().cpu().numpy() * std + mean)
        return {"fid": _fid(evaluator, gt_emb, rec), "fid_n": float(len(gt))}

    return hook


def _caption_set(val_ds, unit: int, limit: int | None) -> tuple[list[np.ndarray], list[str]]:
    motions, captions = [], []
    for motion, texts in val_ds.entries:
        if len(motion) >= unit and texts:
            motions.append(np.asarray(motion[: (len(motion) // unit) * unit], np.float32))
            captions.append(texts[0][0])
        if limit and len(motions) >= limit:
            break
    return motions, captions


def transformer_fid_hook(evaluator, *, model, vq, text, val_ds, mean, std, layers: str, seed: int,
                         time_steps: int = 10, cond_scale: float = 4.0, batch_size: int = 64,
                         limit: int | None = 1024) -> FidHook:
    """FID of the transformer's generations for the validation captions (``layers``: "first" for the masked
    transformer and BAMM, "all" for the residual one) against the validation motions."""
    import torch

    import inspect

    unit = vq.downsample
    bamm = "predict_length" in inspect.signature(model.generate).parameters
    gt, captions = _caption_set(val_ds, unit, limit)
    gt_emb = evaluator.encode_motions(gt)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def hook(epoch: int) -> dict[str, float]:
        device = next(model.parameters()).device
        g = torch.Generator(device=device).manual_seed(seed)
        out: list[np.ndarray] = []
        with torch.no_grad():
            for s in range(0, len(gt), batch_size):
                motions, caps = gt[s:s + batch_size], captions[s:s + batch_size]
                cond = text(caps).float().to(device)
                m_lens = torch.tensor([len(m) // unit for m in motions], device=device)
                if layers == "first" and bamm:
                    ids, _ = model.generate(cond, m_lens, cond_scale=cond_scale, predict_length=False, generator=g)
                    ids = ids.unsqueeze(-1)
                elif layers == "first":
                    ids = model.generate(cond, m_lens, timesteps=time_steps, cond_scale=cond_scale, generator=g)
                    ids = ids.unsqueeze(-1)
                else:
                    t = max(len(m) for m in motions)
                    x = np.zeros((len(motions), t, gt[0].shape[1]), np.float32)
                    for i, m in enumerate(motions):
                        x[i, :len(m)] = (m - mean) / std
                    codes, _ = vq.encode(torch.from_numpy(x).to(device))
                    ids = model.generate(codes[..., 0], cond, m_lens, cond_scale=cond_scale, generator=g)
                feats = vq.forward_decoder(ids).float().cpu().numpy() * std + mean
                out.extend(feats[i, :len(m)] for i, m in enumerate(motions))
        return {"fid": _fid(evaluator, gt_emb, out), "fid_n": float(len(gt))}

    return hook


def transformer_hook_factory(run):
    """For ``src.train.transformer.train_new_transformer(fid_hook=...)``: (prepared run, model, layers) -> the FID
    hook, or None (logged) when the dataset has no T2M evaluator. ``run``: the trainer's options.RunOptions."""

    def factory(t, model, layers: str):
        evaluator = load_evaluator_if_available(run.paths, t.cfg.dataset_name, run.device)
        if evaluator is None:
            log.info("no T2M evaluator for %s: net_best_fid.tar is chosen by the validation score", t.cfg.dataset_name)
            return None
        from src.models.checkpoint import find_run_dir, load_mean_std

        mean, std = load_mean_std(find_run_dir(run.paths, t.cfg.dataset_name, t.cfg.vq_name))
        return transformer_fid_hook(evaluator, model=model, vq=t.vq, text=t.text, val_ds=t.val_ds, mean=mean,
                                    std=std, layers=layers, seed=t.cfg.seed)

    return factory
