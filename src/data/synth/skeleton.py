"""The 22-joint SMPL/HumanML3D skeleton for procedural motion: rest offsets and forward kinematics from joint angles.

Frame: x = the body's left, y = up, z = forward (HumanML3D faces Z+ at frame 0), metres. Bone lengths are those of
HumanML3D's target skeleton (first frame of the released ``new_joints/012314.npy``, as in ``src.data.motion``); the
rest directions are our own neutral stance (arms hanging, slightly bent), so zero angles give a person standing.
"""
from __future__ import annotations

import numpy as np

from src.data.motion import T2M_SKELETON

J = 22
(PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3, L_FOOT, R_FOOT, NECK, L_COLLAR,
 R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST) = range(J)
PARENTS = np.array(T2M_SKELETON.parents)
BONE_LENGTHS = np.array(T2M_SKELETON.target_lengths)

# Left/right pairs (angles of a "side" limb are written for the left side and mirrored for the right).
LIMB = {
    "hip": (L_HIP, R_HIP), "knee": (L_KNEE, R_KNEE), "ankle": (L_ANKLE, R_ANKLE), "foot": (L_FOOT, R_FOOT),
    "collar": (L_COLLAR, R_COLLAR), "shoulder": (L_SHOULDER, R_SHOULDER), "elbow": (L_ELBOW, R_ELBOW),
    "wrist": (L_WRIST, R_WRIST),
}

# Rest direction of each joint from its parent (left side; the right side mirrors x).
_REST_DIRS = {
    L_HIP: (0.75, -0.6, 0.0), SPINE1: (0.0, 1.0, -0.25), L_KNEE: (0.03, -1.0, 0.02), SPINE2: (0.0, 1.0, 0.15),
    L_ANKLE: (0.0, -1.0, -0.08), SPINE3: (0.0, 1.0, 0.2), L_FOOT: (0.12, -0.45, 1.0), NECK: (0.0, 0.95, 0.3),
    L_COLLAR: (0.3, 0.95, 0.05), HEAD: (0.0, 0.85, 0.5), L_SHOULDER: (1.0, -0.05, 0.0), L_ELBOW: (0.12, -1.0, 0.0),
    L_WRIST: (0.05, -1.0, 0.12),
}
_MIRROR = {R_HIP: L_HIP, R_KNEE: L_KNEE, R_ANKLE: L_ANKLE, R_FOOT: L_FOOT, R_COLLAR: L_COLLAR,
           R_SHOULDER: L_SHOULDER, R_ELBOW: L_ELBOW, R_WRIST: L_WRIST}


def rest_offsets() -> np.ndarray:
    """(22, 3) offset of every joint from its parent in the rest pose (root: zeros)."""
    off = np.zeros((J, 3))
    for j in range(1, J):
        if j in _MIRROR:
            d = np.array(_REST_DIRS[_MIRROR[j]], dtype=np.float64) * (-1.0, 1.0, 1.0)
        else:
            d = np.array(_REST_DIRS[j], dtype=np.float64)
        off[j] = d / np.linalg.norm(d) * BONE_LENGTHS[j]
    return off


OFFSETS = rest_offsets()


def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """(..., 3) angles (x, y, z) in radians -> (..., 3, 3) rotation ``Ry(y) @ Rz(z) @ Rx(x)``.

    With a bone hanging down, x < 0 swings it forward (flexion of hip/shoulder), z > 0 swings it to the left
    (abduction of a left limb), and y turns it about the vertical axis (horizontal swing once flexed).
    """
    a = np.asarray(angles, dtype=np.float64)
    cx, sx = np.cos(a[..., 0]), np.sin(a[..., 0])
    cy, sy = np.cos(a[..., 1]), np.sin(a[..., 1])
    cz, sz = np.cos(a[..., 2]), np.sin(a[..., 2])
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(a.shape[:-1] + (3, 3))
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(a.shape[:-1] + (3, 3))
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(a.shape[:-1] + (3, 3))
    return ry @ rz @ rx


def yaw_matrix(yaw: np.ndarray) -> np.ndarray:
    """(T,) heading angles -> (T, 3, 3) rotations about +y."""
    z = np.zeros((len(yaw), 3))
    z[:, 1] = yaw
    return euler_to_matrix(z)


def forward_kinematics(angles: np.ndarray, root_pos: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Joint positions; angles (T, 22, 3) local euler angles, root_pos (T, 3), yaw (T,) heading -> (T, 22, 3).

    Joint 0's angles tilt the pelvis inside the heading frame; joint j's rotation moves its children.
    """
    local = euler_to_matrix(angles)
    glob = np.empty_like(local)
    glob[:, 0] = yaw_matrix(yaw) @ local[:, 0]
    pos = np.empty(angles.shape[:2] + (3,))
    pos[:, 0] = root_pos
    for j in range(1, J):
        p = PARENTS[j]
        pos[:, j] = pos[:, p] + glob[:, p] @ OFFSETS[j]
        glob[:, j] = glob[:, p] @ local[:, j]
    return pos


# Per-joint floor clearance (metres): the lowest body part rests this far above the ground.
CLEARANCE = np.full(J, 0.08)
CLEARANCE[[L_ANKLE, R_ANKLE]] = 0.07
CLEARANCE[[L_FOOT, R_FOOT]] = 0.02
CLEARANCE[[L_KNEE, R_KNEE]] = 0.05
CLEARANCE[[L_WRIST, R_WRIST]] = 0.04
CLEARANCE[PELVIS] = 0.09
