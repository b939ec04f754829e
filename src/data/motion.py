"""HumanML3D motion features <-> joint positions.

Feature layout per frame, J = joints_num (263 dims for J = 22), see ``feature_slices``:
``[0]`` root rotation velocity about y (half the per-frame yaw change, radians), ``[1:3]`` root linear velocity
on xz (in the root's facing frame), ``[3]`` root height, ``ric`` (J-1)*3 root-relative joint positions in the
facing frame, ``rot6d`` (J-1)*6 continuous-6D local joint rotations from inverse kinematics, ``local_vel`` J*3
joint velocities in the facing frame, ``foot_contact`` 4 (left ankle, left toe, right ankle, right toe).

``recover_from_ric`` (features -> joints) follows MoMask's ``utils/motion_process.py``; ``joints_to_features``
re-implements HumanML3D's ``process_file`` (motion_representation.ipynb). Upstream code was read for facts only.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from src.common.errors import HmuError
from src.data.quaternion import qbetween, qinv, qmul, qrot, quat_to_cont6d
from src.common.datasets import T2M_KINEMATIC_CHAIN, DatasetSpec, get_spec

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------------------
# Feature layout
# --------------------------------------------------------------------------------------------------------------------

def feature_dim(joints_num: int) -> int:
    """Feature size per frame: 4 root + (J-1)*3 ric + (J-1)*6 rot6d + J*3 velocities + 4 contacts."""
    return 8 + (joints_num - 1) * 9 + joints_num * 3


def feature_slices(joints_num: int) -> dict[str, slice]:
    """Name -> slice of each feature group, in order; these are also the groups that share one Std value."""
    j = joints_num
    ric0 = 4
    rot0 = ric0 + (j - 1) * 3
    vel0 = rot0 + (j - 1) * 6
    foot0 = vel0 + j * 3
    return {"root_rot_vel": slice(0, 1), "root_lin_vel": slice(1, 3), "root_y": slice(3, 4),
            "ric": slice(ric0, rot0), "rot6d": slice(rot0, vel0), "local_vel": slice(vel0, foot0),
            "foot_contact": slice(foot0, foot0 + 4)}


# --------------------------------------------------------------------------------------------------------------------
# features -> joints (numpy or torch, any leading batch dims)
# --------------------------------------------------------------------------------------------------------------------

class _Ops:
    """The handful of array ops recover_* needs, for numpy arrays or torch tensors (follows the input's device)."""

    def __init__(self, x: Any):
        self.np = isinstance(x, np.ndarray)
        if not self.np:
            import torch

            self.t = torch

    def cumsum(self, x, axis):
        return np.cumsum(x, axis=axis) if self.np else self.t.cumsum(x, dim=axis)

    def stack(self, xs, axis):
        return np.stack(xs, axis=axis) if self.np else self.t.stack(xs, dim=axis)

    def cat(self, xs, axis):
        return np.concatenate(xs, axis=axis) if self.np else self.t.cat(xs, dim=axis)

    def cos(self, x):
        return np.cos(x) if self.np else self.t.cos(x)

    def sin(self, x):
        return np.sin(x) if self.np else self.t.sin(x)

    def zeros_like(self, x):
        return np.zeros_like(x) if self.np else self.t.zeros_like(x)


def _yaw_angles(features, ops: _Ops):
    """Cumulative root half-angle a_t = f[0,0] + ... + f[t-1,0], a_0 = 0; (..., T, D) -> (..., T)."""
    vel = features[..., 0]
    shifted = ops.cat([ops.zeros_like(vel[..., :1]), vel[..., :-1]], axis=-1)
    return ops.cumsum(shifted, axis=-1)


def _rot_y_inv(ang, x, z, ops: _Ops):
    """Apply R_y(-2a) (the inverse of the root quaternion (cos a, 0, sin a, 0)) to the xz components."""
    c = ops.cos(2 * ang)
    s = ops.sin(2 * ang)
    return c * x - s * z, s * x + c * z


def recover_root_rot_pos(features):
    """Root rotation and position from features; (..., T, D) -> quaternions (..., T, 4), positions (..., T, 3).

    The root quaternion is (cos a_t, 0, sin a_t, 0) with a_t the cumulative half-angle; the root xz is the
    cumulative sum of frame t-1's velocity taken to the world with frame t's inverse root rotation (zero at frame 0);
    the root y is ``features[..., 3]``. Works on numpy arrays and torch tensors alike.
    """
    ops = _Ops(features)
    ang = _yaw_angles(features, ops)
    zero = ops.zeros_like(ang)
    quat = ops.stack([ops.cos(ang), zero, ops.sin(ang), zero], axis=-1)
    vx = ops.cat([zero[..., :1], features[..., :-1, 1]], axis=-1)
    vz = ops.cat([zero[..., :1], features[..., :-1, 2]], axis=-1)
    wx, wz = _rot_y_inv(ang, vx, vz, ops)
    pos = ops.stack([ops.cumsum(wx, axis=-1), features[..., 3], ops.cumsum(wz, axis=-1)], axis=-1)
    return quat, pos


def recover_from_ric(features, joints_num: int):
    """Joint positions from the ric channels; features (..., T, D) -> joints (..., T, joints_num, 3).

    Only the root channels [0:4] and the ric positions are used (rotations, velocities and contacts are ignored).
    Input must be un-normalised (``x * Std + Mean``). numpy in -> numpy out, torch in -> torch out.
    """
    ops = _Ops(features)
    ang = _yaw_angles(features, ops)
    _, root = recover_root_rot_pos(features)
    ric = features[..., 4:4 + (joints_num - 1) * 3]
    ric = ric.reshape(tuple(ric.shape[:-1]) + (joints_num - 1, 3))
    a = ang[..., None]
    x, z = _rot_y_inv(a, ric[..., 0], ric[..., 2], ops)
    body = ops.stack([x + root[..., None, 0], ric[..., 1], z + root[..., None, 2]], axis=-1)
    return ops.cat([root[..., None, :], body], axis=-2)


# --------------------------------------------------------------------------------------------------------------------
# Skeleton facts for joints -> features
# --------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SkeletonDef:
    """What HumanML3D's processing needs to know about a skeleton besides its kinematic chain."""

    kinematic_chain: tuple[tuple[int, ...], ...]
    raw_offsets: tuple[tuple[int, int, int], ...]   # unit rest-pose direction of each joint from its parent
    face_joints: tuple[int, int, int, int]          # right hip, left hip, right shoulder, left shoulder
    feet_left: tuple[int, int]                      # ankle, toe
    feet_right: tuple[int, int]
    leg_joints: tuple[int, int]                     # bones whose lengths define the leg-length scale ratio
    target_lengths: tuple[float, ...]               # bone length of each joint to its parent (root: 0)

    @property
    def joints_num(self) -> int:
        return len(self.raw_offsets)

    @property
    def parents(self) -> tuple[int, ...]:
        par = [-1] * self.joints_num
        for chain in self.kinematic_chain:
            for a, b in pairwise(chain):
                par[b] = a
        return tuple(par)


# SMPL 22-joint skeleton, as in HumanML3D's paramUtil.py (t2m_raw_offsets) and motion_representation.ipynb
# (face_joint_indx [2, 1, 17, 16], fid_l [7, 10], fid_r [8, 11], l_idx1/l_idx2 5/8).
# target_lengths: upstream retargets every clip to the bone lengths of clip 000021's first frame. Those joints are
# not public, but every released new_joints file is on that skeleton, so the lengths are read off the first frame
# of the released new_joints/012314.npy (constant over its 170 frames to 1.3e-6; tests/test_motion.py checks this).
T2M_SKELETON = SkeletonDef(
    kinematic_chain=T2M_KINEMATIC_CHAIN,
    raw_offsets=((0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, -1, 0), (0, 1, 0), (0, -1, 0),
                 (0, -1, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1), (0, 1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1),
                 (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0)),
    face_joints=(2, 1, 17, 16),
    feet_left=(7, 10),
    feet_right=(8, 11),
    leg_joints=(5, 8),
    target_lengths=(0.0, 0.1030739, 0.1098834, 0.1315682, 0.3936232, 0.3901881, 0.1431903, 0.4324330, 0.4256433,
                    0.0573647, 0.1433817, 0.1494187, 0.2193600, 0.1374868, 0.1433828, 0.1030393, 0.1316140,
                    0.1229843, 0.2568399, 0.2630919, 0.2660119, 0.2698763),
)


def skeleton_for(spec: DatasetSpec) -> SkeletonDef:
    """The skeleton definition for a dataset; HmuError if joints -> features is not supported for it."""
    if tuple(map(tuple, spec.kinematic_chain)) == T2M_SKELETON.kinematic_chain and spec.joints_num == 22:
        return T2M_SKELETON
    raise HmuError(f"joints -> features needs the 22-joint SMPL skeleton; dataset '{spec.name}' has "
                   f"{spec.joints_num} joints")


# --------------------------------------------------------------------------------------------------------------------
# joints -> features
# --------------------------------------------------------------------------------------------------------------------

_Y = np.array([0.0, 1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])


def _check_joints(joints: np.ndarray, skel: SkeletonDef) -> np.ndarray:
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim != 3 or j.shape[1:] != (skel.joints_num, 3) or j.shape[0] < 2:
        raise HmuError(f"joints must have shape (T>=2, {skel.joints_num}, 3), got {tuple(np.shape(joints))}")
    if not np.isfinite(j).all():
        raise HmuError("joints contain NaN or inf")
    return j


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _heading(across: np.ndarray) -> np.ndarray:
    """Horizontal forward direction from a left-to-right 'across' vector: y x across."""
    return np.cross(_Y, _unit(across))


def canonicalize(joints: np.ndarray, *, spec: DatasetSpec | None = None) -> np.ndarray:
    """HumanML3D's pre-processing: (T, J, 3) -> (T, J, 3) float64 on the target skeleton, on the floor, root xz at the
    origin at frame 0, facing Z+ at frame 0.

    recover_from_ric(joints_to_features(joints)) equals canonicalize(joints)[:-1] (up to float error).
    """
    skel = skeleton_for(spec or get_spec("HumanML3D"))
    j = _check_joints(joints, skel)
    par = np.array(skel.parents)
    raw = np.array(skel.raw_offsets, dtype=np.float64)
    tgt = np.array(skel.target_lengths)[:, None] * raw

    # Uniform skeleton. Upstream does IK then FK with the target offsets; as IK stores each bone's global rotation as
    # the shortest arc from its rest direction to its current direction, this is exactly: keep every bone's
    # direction, give it the target length, and scale the root trajectory by the ratio of leg lengths (frame 0).
    bones = j[:, 1:] - j[:, par[1:]]
    src = np.linalg.norm(bones[0], axis=-1)[:, None] * raw[1:]
    legs = list(skel.leg_joints)
    scale = (np.abs(tgt[legs]).max(-1).sum()) / (np.abs(src[[k - 1 for k in legs]]).max(-1).sum())
    dirs = _unit(bones) * np.array(skel.target_lengths)[None, 1:, None]
    out = np.empty_like(j)
    out[:, 0] = j[:, 0] * scale
    for k in range(1, skel.joints_num):  # parents always precede children in SMPL order
        out[:, k] = out[:, par[k]] + dirs[:, k - 1]

    out[..., 1] -= out[..., 1].min()                       # put on floor
    out[..., [0, 2]] -= out[0, 0, [0, 2]]                  # root xz at origin at frame 0
    r_hip, l_hip, r_sdr, l_sdr = skel.face_joints
    f0 = out[0]
    fwd = _heading((f0[r_hip] - f0[l_hip]) + (f0[r_sdr] - f0[l_sdr]))
    q0 = qbetween(fwd, _Z)
    return qrot(np.broadcast_to(q0, out.shape[:-1] + (4,)), out)


def _foot_contacts(pos: np.ndarray, ids: Sequence[int], thre: float) -> np.ndarray:
    """1.0 where the squared per-frame displacement of each foot joint is below ``thre``; (T, J, 3) -> (T-1, 2)."""
    d = pos[1:, list(ids)] - pos[:-1, list(ids)]
    return ((d ** 2).sum(-1) < thre).astype(np.float64)


def _root_quats(pos: np.ndarray, skel: SkeletonDef) -> np.ndarray:
    """Per-frame root rotation taking the smoothed facing direction to Z+; frame 0 is the identity (upstream)."""
    from scipy.ndimage import gaussian_filter1d

    r_hip, l_hip, r_sdr, l_sdr = skel.face_joints
    # Upstream's inverse_kinematics_np unpacks face_joint_indx as (l_hip, r_hip, ...), so its hip term is
    # left-minus-right while its shoulder term is right-minus-left. Kept as is: the released features use it.
    across = (pos[:, l_hip] - pos[:, r_hip]) + (pos[:, r_sdr] - pos[:, l_sdr])
    fwd = gaussian_filter1d(_heading(across), 20, axis=0, mode="nearest")
    q = qbetween(_unit(fwd), _Z)
    q[0] = (1.0, 0.0, 0.0, 0.0)
    return q


def _local_quats(pos: np.ndarray, root_q: np.ndarray, skel: SkeletonDef) -> np.ndarray:
    """Inverse kinematics: (T, J, 3) -> (T, J, 4) local rotations, joint 0 = root rotation (upstream convention).

    A bone's global rotation is the shortest arc from its rest direction to its current direction; a joint's local
    rotation is that relative to its chain predecessor's, where the first bone of every chain is relative to the
    root rotation (also for the arm chains that start at joint 9, as upstream does).
    """
    par = np.array(skel.parents)
    raw = np.array(skel.raw_offsets, dtype=np.float64)
    glob = np.empty(pos.shape[:-1] + (4,))
    glob[:, 0] = root_q
    glob[:, 1:] = qbetween(raw[None, 1:], pos[:, 1:] - pos[:, par[1:]])
    chain_start = {chain[1] for chain in skel.kinematic_chain}
    ref = np.array([0 if (k in chain_start or k == 0) else par[k] for k in range(skel.joints_num)])
    local = qmul(qinv(glob[:, ref]), glob)
    local[:, 0] = root_q
    return local


def joints_to_features(joints: np.ndarray, *, spec: DatasetSpec | None = None, feet_thre: float = 0.002) -> np.ndarray:
    """HumanML3D features of a joint sequence; (T, J, 3) -> (T-1, feature_dim(J)) float32.

    Pipeline (HumanML3D ``process_file``): ``canonicalize`` (target skeleton, floor, origin, face Z+), foot contacts
    (squared displacement < ``feet_thre``), inverse kinematics with a Gaussian-smoothed (sigma 20 frames) facing
    direction, then root/ric/rot6d/velocity channels. The last frame has no velocity, so one frame is lost:
    ``recover_from_ric(joints_to_features(J), J) == canonicalize(J)[:-1]``.

    One deliberate deviation: upstream takes ``arcsin`` of the relative root quaternion's y part without making its
    w positive, so at a frame where the facing direction crosses 180 degrees the angular velocity gets the wrong sign
    and recovered joints turn the wrong way from then on. Here the relative quaternion is first flipped to w >= 0, so
    joints -> features -> joints round-trips for every motion; elsewhere the value is identical.

    Parity with the released ``new_joint_vecs/012314.npy`` (from ``new_joints/012314.npy``, which lacks the raw last
    frame): all channels match to float32 precision except near the end of the clip, where the facing direction's
    Gaussian smoothing (radius 80 frames) saw one more raw frame upstream. That frame feeds the root rotation, so the
    rotation-dependent channels (root angular/linear velocity, ric, rot6d, local velocities) differ slightly in the
    last frames; root height and foot contacts do not depend on it. tests/test_motion.py asserts the exact ranges.
    """
    skel = skeleton_for(spec or get_spec("HumanML3D"))
    pos = canonicalize(joints, spec=spec)
    nj = skel.joints_num

    feet_l = _foot_contacts(pos, skel.feet_left, feet_thre)
    feet_r = _foot_contacts(pos, skel.feet_right, feet_thre)

    root_q = _root_quats(pos, skel)
    cont6d = quat_to_cont6d(_local_quats(pos, root_q, skel))

    vel = qrot(root_q[1:], pos[1:, 0] - pos[:-1, 0])
    r_vel = qmul(root_q[1:], qinv(root_q[:-1]))
    r_vel *= np.where(r_vel[:, :1] < 0, -1.0, 1.0)  # see docstring: w >= 0 before arcsin
    r_ang = np.arcsin(np.clip(r_vel[:, 2:3], -1.0, 1.0))

    local = pos.copy()
    local[..., [0, 2]] -= pos[:, :1, [0, 2]]
    local = qrot(np.broadcast_to(root_q[:, None], local.shape[:-1] + (4,)), local)
    local_vel = qrot(np.broadcast_to(root_q[:-1, None], (len(pos) - 1, nj, 4)), pos[1:] - pos[:-1])

    t = len(pos) - 1
    feats = np.concatenate([r_ang, vel[:, [0, 2]], local[:-1, 0, 1:2], local[:-1, 1:].reshape(t, -1),
                            cont6d[:-1, 1:].reshape(t, -1), local_vel.reshape(t, -1), feet_l, feet_r], axis=-1)
    return feats.astype(np.float32)


# --------------------------------------------------------------------------------------------------------------------
# Normalisation statistics
# --------------------------------------------------------------------------------------------------------------------

def mean_std(features_list: Sequence[np.ndarray], joints_num: int) -> tuple[np.ndarray, np.ndarray]:
    """HumanML3D's Mean/Std over all frames of all motions; each feature group (``feature_slices``) shares the mean of
    its per-dimension stds (cal_mean_variance.ipynb). Motions containing NaN are skipped, as upstream does.
    Returns float32 (D,), (D,).
    """
    kept = [np.asarray(f) for f in features_list if not np.isnan(f).any()]
    if len(kept) < len(features_list):
        log.warning("mean_std: skipped %d motions containing NaN", len(features_list) - len(kept))
    if not kept:
        raise HmuError("mean_std: no motions to compute statistics from")
    data = np.concatenate(kept, axis=0).astype(np.float64)
    if data.shape[-1] != feature_dim(joints_num):
        raise HmuError(f"mean_std: features have {data.shape[-1]} dims, expected {feature_dim(joints_num)} "
                       f"for {joints_num} joints")
    mean = data.mean(axis=0)
    std = data.std(axis=0)
    for sl in feature_slices(joints_num).values():
        std[sl] = std[sl].mean()
    return mean.astype(np.float32), std.astype(np.float32)
