"""BVH export of joint positions (T, J, 3) by inverse kinematics on the kinematic chain, and a BVH reader + FK.

The motions are joint *positions*; a BVH holds a rest skeleton (offsets) and per-joint *rotations*. The fit:

- rest offsets: the directions of a T-pose (:func:`src.viz.skeleton.t_pose` for the 22-joint HumanML3D body, else the
  first frame), each scaled to the bone's mean length over the motion;
- a joint with several children (pelvis, upper spine) has its children's rest layout taken from the first frame
  (turned to best match the T-pose), and gets per frame the rotation that best maps those rest offsets onto the
  observed ones (Kabsch); a rigid group (SMPL's pelvis with hips and spine) is so reproduced exactly;
- a joint with one child gets the smallest rotation (no twist) that turns the bone from where its parent's rotation
  leaves it onto the observed direction; a leaf joint keeps its parent's rotation.

So forward kinematics of the file reproduces every bone's direction (exactly for single-child bones, in the
least-squares sense at the pelvis and upper spine) and the root's position; what it cannot reproduce is a bone
whose length changes over time (generated motions are not length-preserving), by that change. Rotations are written as
``Zrotation Yrotation Xrotation`` (R = Rz·Ry·Rx, degrees), the order Blender's importer and most tools read.
Units are those of the input (metres for HumanML3D), times ``scale``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.common.errors import HmuError
from src.data.bvh import T2M_JOINT_NAMES  # re-exported: the names live with the reader (src/data/bvh.py)

# The same 22 joints (HumanML3D/SMPL order) under the names other tools expect, so that a retargeting tool's preset
# finds them: ``momask`` is MoMask's BVH template (visualization/data/template.bvh, LAFAN-style names, which its
# Blender guide's mapping file pairs with a target rig), ``mixamo`` a Mixamo rig's bones (``mixamorig:`` namespace,
# as Mixamo's own files and Blender's Mixamo presets spell them). Only the names change: skeleton, offsets and
# rotations are the same as with ``smpl``.
_LAFAN = ("Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1", "LeftFoot", "RightFoot",
          "Spine2", "LeftToe", "RightToe", "Neck", "LeftShoulder", "RightShoulder", "Head", "LeftArm", "RightArm",
          "LeftForeArm", "RightForeArm", "LeftHand", "RightHand")
BVH_NAME_MAPS: dict[str, tuple[str, ...]] = {
    "smpl": tuple(T2M_JOINT_NAMES),
    "momask": _LAFAN,
    "mixamo": tuple("mixamorig:" + n.replace("Toe", "ToeBase") for n in _LAFAN),
}
BVH_NAME_CHOICES = tuple(BVH_NAME_MAPS)


def joint_names(kind: str, n_joints: int = 22) -> list[str]:
    """The BVH joint names of map ``kind`` (smpl, momask, mixamo) for a ``n_joints``-joint skeleton."""
    if kind not in BVH_NAME_MAPS:
        raise HmuError(f"--bvh_names must be one of {', '.join(BVH_NAME_CHOICES)}, got {kind!r}")
    names = BVH_NAME_MAPS[kind]
    if n_joints != len(names):
        if kind == "smpl":
            return [f"joint{j}" for j in range(n_joints)]
        raise HmuError(f"--bvh_names {kind} names {len(names)} joints; this skeleton has {n_joints}")
    return list(names)

def parents_from_chain(chain: Sequence[Sequence[int]], n_joints: int) -> list[int]:
    """Parent index per joint (-1 for the root) from kinematic chains that each start at an already-placed joint."""
    parents = [-2] * n_joints
    parents[chain[0][0]] = -1
    for c in chain:
        for a, b in zip(c[:-1], c[1:]):
            if parents[b] == -2:
                parents[b] = a
    missing = [j for j, p in enumerate(parents) if p == -2]
    if missing:
        raise HmuError(f"kinematic chain does not reach joints {missing}")
    return parents


def _unit(v: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, eps)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) smallest rotations taking unit directions ``a`` (..., 3) onto ``b`` (..., 3)."""
    a, b = _unit(a), _unit(b)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)
    K = np.zeros(a.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 0] = -v[..., 2], v[..., 1], v[..., 2]
    K[..., 1, 2], K[..., 2, 0], K[..., 2, 1] = -v[..., 0], -v[..., 1], v[..., 0]
    eye = np.broadcast_to(np.eye(3), K.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        R = eye + K + (K @ K) / (1.0 + c)[..., None, None]
    # opposite directions: a half turn about any axis perpendicular to a
    opp = c < -1.0 + 1e-8
    if np.any(opp):
        ao = a[opp]
        axis = np.cross(ao, np.array([1.0, 0.0, 0.0]))
        small = np.linalg.norm(axis, axis=-1) < 1e-6
        axis[small] = np.cross(ao[small], np.array([0.0, 1.0, 0.0]))
        axis = _unit(axis)
        R[opp] = 2.0 * axis[..., :, None] * axis[..., None, :] - np.eye(3)
    return R


def kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations R minimising sum |R src_k - dst_k|^2; src, dst (..., K, 3)."""
    H = np.swapaxes(src, -1, -2) @ dst                      # (..., 3, 3) = sum_k src_k dst_k^T
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.swapaxes(Vt, -1, -2) @ np.swapaxes(U, -1, -2)))
    D = np.zeros(H.shape)
    D[..., 0, 0] = D[..., 1, 1] = 1.0
    D[..., 2, 2] = np.where(d == 0, 1.0, d)
    return np.swapaxes(Vt, -1, -2) @ D @ np.swapaxes(U, -1, -2)


@dataclass
class BVHMotion:
    """A BVH as arrays: joint names, parents, rest offsets (J, 3), root positions (T, 3), local rotations
    (T, J, 3, 3)."""

    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    root_pos: np.ndarray
    rotations: np.ndarray
    frame_time: float

    def positions(self) -> np.ndarray:
        """Forward kinematics: joint positions (T, J, 3)."""
        T, J = self.rotations.shape[:2]
        G = np.zeros((T, J, 3, 3))
        P = np.zeros((T, J, 3))
        for j in range(J):           # parents come before children (checked on construction by fit/read)
            p = self.parents[j]
            if p < 0:
                G[:, j] = self.rotations[:, j]
                P[:, j] = self.root_pos + self.offsets[j]
            else:
                G[:, j] = G[:, p] @ self.rotations[:, j]
                P[:, j] = P[:, p] + np.einsum("tij,j->ti", G[:, p], self.offsets[j])
        return P


def fit(joints: np.ndarray, chain: Sequence[Sequence[int]], *, rest: np.ndarray | None = None, fps: float = 20.0,
        names: Sequence[str] | None = None) -> BVHMotion:
    """Inverse kinematics (see the module docstring): joint positions (T, J, 3) -> BVHMotion."""
    X = np.asarray(joints, dtype=np.float64)
    if X.ndim != 3 or X.shape[-1] != 3 or len(X) == 0:
        raise HmuError(f"bvh: expected joint positions (T, J, 3), got {tuple(X.shape)}")
    if not np.isfinite(X).all():
        raise HmuError("bvh: joint positions hold NaN or inf")
    T, J = X.shape[:2]
    parents = parents_from_chain(chain, J)
    if any(p >= j for j, p in enumerate(parents)):
        raise HmuError("bvh: joints must be numbered parents first (HumanML3D and KIT are)")
    children = [[c for c in range(J) if parents[c] == j] for j in range(J)]
    if rest is None:
        if J == 22:
            from .skeleton import t_pose

            rest = t_pose()
        else:
            rest = X[0]
    rest = np.asarray(rest, dtype=np.float64)
    offsets = np.zeros((J, 3))
    for j in range(J):
        p = parents[j]
        if p < 0:
            continue
        length = float(np.linalg.norm(X[:, j] - X[:, p], axis=-1).mean())
        offsets[j] = _unit(rest[j] - rest[p]) * length
    for j in range(J):
        ch = children[j]
        if len(ch) > 1:
            # the children's rest layout is the first frame's, turned to best match the T-pose (so the rest pose
            # stays upright): a rigid group (pelvis -> hips + spine) is then reproduced exactly by one rotation
            first = X[0, ch] - X[0, j]
            R0 = kabsch(offsets[ch], first)
            offsets[ch] = _unit(first @ R0) * np.linalg.norm(offsets[ch], axis=-1, keepdims=True)
    G = np.zeros((T, J, 3, 3))
    for j in range(J):
        p = parents[j]
        Gp = G[:, p] if p >= 0 else np.broadcast_to(np.eye(3), (T, 3, 3))
        ch = children[j]
        if not ch:
            G[:, j] = Gp
        elif len(ch) == 1:
            c = ch[0]
            cur = np.einsum("tij,j->ti", Gp, offsets[c])
            G[:, j] = rotation_between(cur, X[:, c] - X[:, j]) @ Gp
        else:
            src = np.broadcast_to(offsets[ch], (T, len(ch), 3))
            dst = X[:, ch] - X[:, j:j + 1]
            G[:, j] = kabsch(src, dst)
    local = np.zeros_like(G)
    for j in range(J):
        p = parents[j]
        local[:, j] = G[:, j] if p < 0 else np.swapaxes(G[:, p], -1, -2) @ G[:, j]
    if names is None:
        names = T2M_JOINT_NAMES if J == 22 else [f"joint{j}" for j in range(J)]
    names = list(names)
    return BVHMotion(names=names, parents=parents, offsets=offsets, root_pos=X[:, 0] - offsets[0],
                     rotations=local, frame_time=1.0 / float(fps))


def _topological(parents: Sequence[int]) -> list[int]:
    """Depth-first order from the root (children in index order)."""
    out, stack = [], [j for j, p in enumerate(parents) if p < 0][::-1]
    while stack:
        j = stack.pop()
        out.append(j)
        stack.extend(sorted((c for c, p in enumerate(parents) if p == j), reverse=True))
    return out


def _euler_zyx(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_euler("ZYX", degrees=True).reshape(R.shape[:-2] + (3,))


def to_text(m: BVHMotion, *, scale: float = 1.0) -> str:
    """The BVH file's text: hierarchy in depth-first order, then one line per frame."""
    J = len(m.parents)
    children = [[c for c in range(J) if m.parents[c] == j] for j in range(J)]
    order = _topological(m.parents)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        ind = "  " * depth
        o = m.offsets[j] * scale
        head = "ROOT" if m.parents[j] < 0 else "JOINT"
        lines.append(f"{ind}{head} {m.names[j]}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}  OFFSET {o[0]:.6f} {o[1]:.6f} {o[2]:.6f}")
        if m.parents[j] < 0:
            lines.append(f"{ind}  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
        else:
            lines.append(f"{ind}  CHANNELS 3 Zrotation Yrotation Xrotation")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            lines.extend([f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET 0.000000 0.000000 0.000000",
                          f"{ind}  }}"])
        lines.append(f"{ind}}}")

    for r in (j for j in range(J) if m.parents[j] < 0):
        emit(r, 0)
    eul = _euler_zyx(m.rotations)                           # (T, J, 3) as Z, Y, X
    T = len(m.root_pos)
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {m.frame_time:.8f}"]
    root = m.root_pos * scale
    for t in range(T):
        vals = list(root[t])
        for j in order:
            vals += list(eul[t, j])
        lines.append(" ".join(f"{v:.6f}" for v in vals))
    return "\n".join(lines) + "\n"


def write(path: str | os.PathLike, joints: np.ndarray, chain: Sequence[Sequence[int]], *, fps: float = 20.0,
          scale: float = 1.0, names: Sequence[str] | None = None) -> Path:
    """Fit ``joints`` (T, J, 3) and write a BVH atomically (joint ``names``: default smpl's, see
    :data:`BVH_NAME_MAPS`); returns the path."""
    from src.common.io import atomic_write_text

    atomic_write_text(path, to_text(fit(joints, chain, fps=fps, names=names), scale=scale))
    return Path(path)


def read(path: str | os.PathLike) -> BVHMotion:
    """Read a BVH into a BVHMotion (local rotation matrices, root path) with the reader of :mod:`src.data.bvh`, which
    follows each joint's channel order as its header gives it. Position channels are allowed on the root only (a
    BVHMotion has no per-joint translations); the root's position channels replace its offset, as the spec says."""
    from src.data import bvh as reader

    b = reader.read(path)
    if any(p >= j for j, p in enumerate(b.parents)):
        raise HmuError(f"{path}: joints must be declared parents first")
    moving = [b.names[j] for j, ch in enumerate(b.channels)
              if b.parents[j] >= 0 and any(c in reader.POSITION_CHANNELS for c in ch)]
    if moving:
        raise HmuError(f"{path}: joint {moving[0]} has position channels; read it with src.data.bvh.read")
    trans, rots = b.local_transforms()
    root = [j for j, p in enumerate(b.parents) if p < 0]
    if len(root) != 1:
        raise HmuError(f"{path}: {len(root)} roots; a BVHMotion has one")
    return BVHMotion(names=list(b.names), parents=list(b.parents), offsets=b.offsets.copy(),
                     root_pos=trans[:, root[0]] - b.offsets[root[0]], rotations=rots, frame_time=b.frame_time)
