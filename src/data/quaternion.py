"""Small float64 numpy quaternion helpers, (w, x, y, z) order, broadcasting over leading dims.

Only what the HumanML3D feature pipeline needs (src/data/motion.py). Conventions follow HumanML3D's
common/quaternion.py so that features agree with the released files: ``qrot(q, v)`` rotates ``v`` by ``q``,
``qmul(q, r)`` is the Hamilton product (apply ``r`` first, then ``q``).
"""
from __future__ import annotations

import numpy as np


def qmul(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Hamilton product ``q * r``; (..., 4) x (..., 4) -> (..., 4)."""
    w1, x1, y1, z1 = np.moveaxis(q, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(r, -1, 0)
    return np.stack((w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                     w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                     w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2), axis=-1)


def qinv(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse of a unit quaternion); (..., 4)."""
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (..., 3) by unit quaternions ``q`` (..., 4)."""
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def qbetween(v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Shortest-arc unit quaternion taking direction ``v0`` to direction ``v1``; (..., 3) x (..., 3) -> (..., 4).

    For exactly opposite vectors (where the shortest arc is undefined and upstream returns NaN) this returns a
    half turn about an axis perpendicular to ``v0``.
    """
    v0, v1 = np.broadcast_arrays(np.asarray(v0, dtype=np.float64), np.asarray(v1, dtype=np.float64))
    axis = np.cross(v0, v1)
    w = np.sqrt((v0 ** 2).sum(-1) * (v1 ** 2).sum(-1)) + (v0 * v1).sum(-1)
    q = np.concatenate([w[..., None], axis], axis=-1)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    bad = norm[..., 0] < 1e-12
    if np.any(bad):
        # Half turn about any axis perpendicular to v0: cross with the basis vector least aligned with it.
        a = v0[bad]
        e = np.eye(3)[np.argmin(np.abs(a), axis=-1)]
        perp = np.cross(a, e)
        perp /= np.linalg.norm(perp, axis=-1, keepdims=True)
        q[bad] = np.concatenate([np.zeros(perp.shape[:-1] + (1,)), perp], axis=-1)
        norm[bad] = 1.0
    return q / norm


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit (or not: it is normalised) quaternions (..., 4) -> rotation matrices (..., 3, 3)."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    s = 2.0 / (q * q).sum(-1)
    m = np.stack((1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
                  s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
                  s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)), axis=-1)
    return m.reshape(q.shape[:-1] + (3, 3))


def quat_to_cont6d(q: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) -> continuous 6D rotation (..., 6): the first two matrix columns, concatenated."""
    m = quat_to_matrix(q)
    return np.concatenate([m[..., 0], m[..., 1]], axis=-1)
