"""Label-preserving augmentations of a joint sequence (HumanML3D's 22-joint layout), for training judges that must
hold on motion unlike the training set (real capture, other performers): mirroring, speed, amplitude.

Root orientation is not augmented: ``joints_to_features`` turns every motion to face Z+ at its first frame, so a
rotated copy gives the same features.
"""
from __future__ import annotations

import numpy as np

# left/right joint pairs of HumanML3D's 22-joint skeleton (hip, knee, ankle, foot, collar, shoulder, elbow, wrist)
MIRROR_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21))


def mirror(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> the left-right mirror image: x negated and every left joint swapped with its right partner."""
    out = np.array(joints, dtype=np.float64, copy=True)
    out[..., 0] *= -1.0
    for a, b in MIRROR_PAIRS:
        out[:, [a, b]] = out[:, [b, a]]
    return out


def change_speed(joints: np.ndarray, factor: float) -> np.ndarray:
    """(T, J, 3) -> (round((T - 1) / factor) + 1, J, 3): played ``factor`` times faster (linear interpolation)."""
    j = np.asarray(joints, dtype=np.float64)
    n = max(2, int(round((len(j) - 1) / factor)) + 1)
    src = np.linspace(0.0, len(j) - 1, n)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, len(j) - 1)
    w = (src - i0)[:, None, None]
    return (1 - w) * j[i0] + w * j[i1]


def scale_amplitude(joints: np.ndarray, factor: float) -> np.ndarray:
    """Scale every joint's excursion from its mean position relative to the root (the motion's amplitude), keeping
    the root path; bone lengths are restored by the features' target skeleton."""
    j = np.asarray(joints, dtype=np.float64)
    rel = j - j[:, :1]
    mean = rel.mean(axis=0, keepdims=True)
    return j[:, :1] + mean + factor * (rel - mean)


def augment(joints: np.ndarray, rng: np.random.Generator, *, speed: tuple[float, float] = (0.75, 1.35),
            amplitude: tuple[float, float] = (0.8, 1.15), p_mirror: float = 0.5) -> np.ndarray:
    """One random label-preserving variant: mirrored with probability ``p_mirror``, speed and amplitude factors drawn
    uniformly from their ranges."""
    j = mirror(joints) if rng.random() < p_mirror else np.asarray(joints, dtype=np.float64)
    j = scale_amplitude(j, float(rng.uniform(*amplitude)))
    return change_speed(j, float(rng.uniform(*speed)))
