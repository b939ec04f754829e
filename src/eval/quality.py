"""Motion-quality metrics on joint positions, pure numpy: jerk, foot skating, floating, ground penetration, bone drift.

Input: joints (T, 22, 3) in HumanML3D's layout (``recover_from_ric`` output), metres, y up, 20 fps, the floor at
y = 0 (HumanML3D's processing puts each clip's lowest joint there; a generator's recovered root height is in the
same frame). Output of :func:`quality_metrics`: one dict of numbers for a list of motions, every sample pooled over
the motions (a repeat of the evaluation gives one dict; the loop's CI helper makes intervals over repeats).

Definitions (``QualityConfig`` holds every threshold; nothing else is tuned):

- **jerk**: third finite difference of each joint's position, ``(x[t+3] - 3x[t+2] + 3x[t+1] - x[t]) * fps**3``
  (exact for a cubic: x = a t^3 gives 6a), its Euclidean norm per joint and frame; ``jerk_mean`` and ``jerk_p95``
  over all (frame, joint) samples, m/s^3.
- **foot skating**, as GMD (Karunratanakul et al., "Guided Motion Diffusion for Controllable Human Motion
  Synthesis", ICCV 2023, ``calculate_skating_ratio`` in korrawe/guided-motion-diffusion
  data_loaders/humanml/utils/metrics.py) and OmniControl (Xie et al., ICLR 2024, the same function verbatim in
  neu-vi/OmniControl) evaluate HumanML3D joints: the feet are joints 10 and 11 (l_foot, r_foot: the toes); a foot
  is in contact over the step t -> t+1 when its height is below **0.05 m** in both frames; it skates when, in
  contact, its horizontal (xz) speed exceeds **0.5 m/s** both on that step and averaged over a centred **5-step**
  window (zero-padded at the ends, as scipy's ``uniform_filter1d(mode="constant")``). ``skate_ratio``: the fraction
  of steps on which either foot skates (GMD's number). ``skate_speed``: the mean horizontal speed of a foot over
  its contact steps, m/s (the continuous quantity the issue asks for; 0 for a planted foot).
- **ground penetration and floating**, the two contact terms PhysDiff (Yuan et al., ICCV 2023) reports as
  Penetrate and Float, here on joints instead of SMPL mesh vertices, with the floor at ``floor`` (0): per frame
  the lowest joint's height h. ``penetration_mean``: mean of max(0, floor - h), m; ``penetration_max``: its
  largest value; ``float_mean``: mean of max(0, h - floor), m; ``float_ratio``: the fraction of frames with no joint
  within the contact height (h - floor >= 0.05 m, i.e. the whole body airborne or hovering).
- **bone-length drift**: for each of the 21 bones of HumanML3D's kinematic chain, |L(t) - mean_t L(t)| (the
  motion's own mean length, so no reference skeleton is assumed); ``bone_drift_mean`` in metres and
  ``bone_drift_rel`` as a fraction of the bone's mean length, averaged over (frame, bone).

**Masks** (transition artefacts at replaced codes): ``masks[i]`` is a boolean (T_i,) frame mask (build it with
:func:`frames_from_tokens` from a token mask, e.g. :func:`replaced_token_mask` for LCR's replaced codes). Every
measure is computed on the whole motion (so windows and bone means see the real neighbours) and then only the
samples that touch a masked frame are kept: a jerk sample if any of its 4 frames is masked, a skating step if
either of its 2 frames is, a per-frame measure if its frame is. These come back with the prefix ``masked_``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from src.common.datasets import T2M_KINEMATIC_CHAIN


def _parents(chains: Sequence[Sequence[int]], n_joints: int) -> tuple[int, ...]:
    """Parent of each joint (root: -1) from kinematic chains that start at an already-placed joint."""
    parent = [-1] * n_joints
    for chain in chains:
        for a, b in zip(chain[:-1], chain[1:]):
            parent[b] = a
    return tuple(parent)


T2M_PARENTS = _parents(T2M_KINEMATIC_CHAIN, 22)


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds and skeleton facts; the defaults are the literature's (see the module docstring)."""

    fps: float = 20.0
    floor: float = 0.0                       # floor height, m (y up)
    contact_height: float = 0.05             # GMD: foot height below 5 cm = in contact
    skate_speed: float = 0.5                 # GMD: horizontal foot speed above 0.5 m/s while in contact = skating
    skate_window: int = 5                    # GMD: the speed must also exceed it averaged over 5 steps
    foot_joints: tuple[int, ...] = (10, 11)  # l_foot, r_foot (toe joints) in HumanML3D's order
    parents: tuple[int, ...] = T2M_PARENTS


KEYS = ("jerk_mean", "jerk_p95", "skate_ratio", "skate_speed", "penetration_mean", "penetration_max", "float_mean",
        "float_ratio", "bone_drift_mean", "bone_drift_rel")


# ------------------------------------------------------------------------------------------------ frame masks
def replaced_token_mask(code_idx, replaced: Mapping[int, Sequence[int]] | Sequence[int]) -> np.ndarray:
    """Which token positions use a replaced code; code_idx (T',) or (T', Q) -> bool (T',).

    ``replaced`` is LCR's ``{layer: [codes]}`` (a plain sequence means layer 0). A position counts when the code of
    any listed layer at that position is one of that layer's replaced codes.
    """
    idx = np.asarray(code_idx)
    if idx.ndim == 1:
        idx = idx[:, None]
    if idx.ndim != 2:
        raise ValueError(f"code_idx must be (T',) or (T', Q), got shape {np.shape(code_idx)}")
    layers = dict(replaced) if isinstance(replaced, Mapping) else {0: list(replaced)}
    out = np.zeros(idx.shape[0], dtype=bool)
    for layer, codes in layers.items():
        if not 0 <= int(layer) < idx.shape[1]:
            raise ValueError(f"layer {layer} out of range for code_idx with {idx.shape[1]} layer(s)")
        out |= np.isin(idx[:, int(layer)], np.asarray(list(codes), dtype=idx.dtype))
    return out


def frames_from_tokens(token_mask, *, unit: int = 4, pad: int = 0, n_frames: int | None = None) -> np.ndarray:
    """Token mask (T',) -> frame mask (n_frames,): the ``unit`` frames each masked token decodes to, widened by
    ``pad`` frames on each side (the neighbours).

    ``unit`` is the VQ's temporal factor: ``RVQVAE.downsample`` (``stride_t ** down_t``; the decoder upsamples by 2
    per level, so the two agree for upstream's stride_t = 2, down_t = 2: 4 frames per token). ``n_frames`` defaults
    to ``T' * unit`` (generated motions are cropped to whole tokens).
    """
    tok = np.asarray(token_mask, dtype=bool).reshape(-1)
    if unit < 1 or pad < 0:
        raise ValueError(f"unit must be >= 1 and pad >= 0, got unit={unit}, pad={pad}")
    n = tok.size * unit if n_frames is None else int(n_frames)
    frames = np.zeros(max(n, tok.size * unit) + 2 * pad, dtype=bool)
    for k in np.flatnonzero(tok):
        frames[k * unit: (k + 1) * unit + 2 * pad] = True  # shifted by +pad: [k*unit - pad, (k+1)*unit + pad)
    return frames[pad: pad + n]


# ------------------------------------------------------------------------------------------------ one motion
def _check(joints, cfg: QualityConfig) -> np.ndarray:
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim != 3 or j.shape[-1] != 3 or j.shape[1] != len(cfg.parents):
        raise ValueError(f"joints must be (T, {len(cfg.parents)}, 3), got shape {np.shape(joints)}")
    if not np.isfinite(j).all():
        raise ValueError("joints contain NaN or inf")
    return j


def _window_mean(x: np.ndarray, size: int) -> np.ndarray:
    """Centred moving mean over the last axis with zeros beyond the ends (scipy uniform_filter1d, mode constant)."""
    if size <= 1 or x.shape[-1] == 0:
        return x
    kernel = np.ones(size) / size
    left = size // 2
    padded = np.concatenate([np.zeros(x.shape[:-1] + (left,)), x, np.zeros(x.shape[:-1] + (size - 1 - left,))],
                            axis=-1)
    return np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), -1, padded)


def motion_samples(joints, mask=None, cfg: QualityConfig = QualityConfig()) -> dict[str, np.ndarray]:
    """The raw samples of one motion (T, J, 3) that :func:`quality_metrics` pools; with ``mask`` (T,) only those
    touching a masked frame (see the module docstring). Keys: jerk (n,), skate (n_steps,) bool, contact_speed (n,),
    height_min (n_frames,), bone_drift (n, 21), bone_rel (n, 21)."""
    j = _check(joints, cfg)
    T = j.shape[0]
    m = np.ones(T, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
    if m.shape[0] != T:
        raise ValueError(f"mask has {m.shape[0]} frames, joints {T}")

    # jerk: sample t spans frames t..t+3
    if T >= 4:
        d3 = (j[3:] - 3 * j[2:-1] + 3 * j[1:-2] - j[:-3]) * cfg.fps ** 3
        jerk = np.linalg.norm(d3, axis=-1)                           # (T-3, J)
        keep = np.convolve(m.astype(np.int64), np.ones(4, dtype=np.int64), mode="valid") > 0   # (T-3,)
        jerk = jerk[keep].reshape(-1)
    else:
        jerk = np.zeros(0)

    # foot skating (GMD): step t spans frames t, t+1
    feet = j[:, list(cfg.foot_joints)]                               # (T, F, 3)
    speed = np.linalg.norm(feet[1:, :, [0, 2]] - feet[:-1, :, [0, 2]], axis=-1) * cfg.fps   # (T-1, F)
    height = feet[..., 1] - cfg.floor
    contact = (height[:-1] < cfg.contact_height) & (height[1:] < cfg.contact_height)      # (T-1, F)
    avg = _window_mean(speed.T, cfg.skate_window).T
    skating = contact & (speed > cfg.skate_speed) & (avg > cfg.skate_speed)
    step_keep = m[:-1] | m[1:]
    skate = skating.any(axis=1)[step_keep]
    contact_speed = speed[contact & step_keep[:, None]]

    # floor contact: the lowest joint per frame
    height_min = (j[..., 1].min(axis=1) - cfg.floor)[m]

    # bone lengths against the motion's own mean
    child = np.array([c for c, p in enumerate(cfg.parents) if p >= 0])
    par = np.array([cfg.parents[c] for c in child])
    lengths = np.linalg.norm(j[:, child] - j[:, par], axis=-1)       # (T, B)
    mean_len = lengths.mean(axis=0)
    drift = np.abs(lengths - mean_len)
    rel = drift / np.where(mean_len > 0, mean_len, np.inf)
    return {"jerk": jerk, "skate": skate, "contact_speed": contact_speed, "height_min": height_min,
            "bone_drift": drift[m], "bone_rel": rel[m]}


# ------------------------------------------------------------------------------------------------ many motions
def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else float("nan")


def _summary(s: dict[str, np.ndarray], cfg: QualityConfig) -> dict[str, float]:
    h = s["height_min"]
    return {
        "jerk_mean": _mean(s["jerk"]),
        "jerk_p95": float(np.percentile(s["jerk"], 95)) if s["jerk"].size else float("nan"),
        "skate_ratio": _mean(s["skate"].astype(np.float64)),
        "skate_speed": _mean(s["contact_speed"]),
        "penetration_mean": _mean(np.maximum(0.0, -h)),
        "penetration_max": float(np.maximum(0.0, -h).max()) if h.size else float("nan"),
        "float_mean": _mean(np.maximum(0.0, h)),
        "float_ratio": _mean((h >= cfg.contact_height).astype(np.float64)),
        "bone_drift_mean": _mean(s["bone_drift"]),
        "bone_drift_rel": _mean(s["bone_rel"]),
    }


def _pool(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k].reshape(-1) for p in parts]) for k in parts[0]}


def quality_metrics(joints_list: Sequence, masks: Sequence | None = None,
                    cfg: QualityConfig = QualityConfig()) -> dict[str, float]:
    """Motion-quality numbers for a list of motions, each (T_i, 22, 3); samples pooled over the motions.

    Returns the keys of ``KEYS`` (see the module docstring for units and thresholds) plus ``n_motions`` and
    ``n_frames``; with ``masks`` (one bool (T_i,) array or None per motion) also ``masked_<key>`` and
    ``masked_frames``, the same measures on the samples that touch a masked frame (NaN where none does).
    """
    joints_list = list(joints_list)
    if not joints_list:
        raise ValueError("quality_metrics needs at least one motion")
    full = [motion_samples(j, None, cfg) for j in joints_list]
    out: dict[str, float] = {"n_motions": len(joints_list), "n_frames": int(sum(len(j) for j in joints_list))}
    out.update(_summary(_pool(full), cfg))
    if masks is not None:
        masks = list(masks)
        if len(masks) != len(joints_list):
            raise ValueError(f"{len(masks)} masks for {len(joints_list)} motions")
        masks = [np.zeros(len(j), dtype=bool) if m is None else np.asarray(m, dtype=bool)
                 for j, m in zip(joints_list, masks)]
        part = [motion_samples(j, m, cfg) for j, m in zip(joints_list, masks)]
        out.update({f"masked_{k}": v for k, v in _summary(_pool(part), cfg).items()})
        out["masked_frames"] = int(sum(int(m.sum()) for m in masks))
    return out


__all__ = ["KEYS", "QualityConfig", "T2M_PARENTS", "frames_from_tokens", "motion_samples", "quality_metrics",
           "replaced_token_mask"]
