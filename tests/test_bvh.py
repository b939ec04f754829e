"""BVH export: inverse kinematics on the 22-joint chain; FK of the written file gives the joints back."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from src.common.datasets import get_spec
from src.viz import bvh
from src.viz.skeleton import t_pose

CHAIN = get_spec("HumanML3D").kinematic_chain
FIXTURES = Path(os.environ.get("HMU_FIXTURES", "/work/shared/fixtures/upstream"))


def fk_of_file(path: Path) -> np.ndarray:
    """Positions (T, 22, 3) by FK of a BVH, in HumanML3D joint order."""
    m = bvh.read(path)
    return m.positions()[:, [m.names.index(n) for n in bvh.T2M_JOINT_NAMES]]


def rigid_motion(T: int = 30, seed: int = 0, rest: np.ndarray | None = None) -> np.ndarray:
    """Joint positions from random local rotations of a fixed skeleton (bone lengths constant)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    rest = t_pose() if rest is None else rest
    parents = bvh.parents_from_chain(CHAIN, 22)
    offs = np.array([rest[j] - rest[p] if p >= 0 else np.zeros(3) for j, p in enumerate(parents)])
    rot = Rotation.from_rotvec(rng.normal(0, 0.6, (T * 22, 3))).as_matrix().reshape(T, 22, 3, 3)
    m = bvh.BVHMotion(list(bvh.T2M_JOINT_NAMES), parents, offs, rng.normal(0, 1, (T, 3)), rot, 0.05)
    return m.positions()


@pytest.mark.parametrize("seed", [0, 1])
def test_fk_of_written_file_reproduces_rigid_motion(tmp_path, seed):
    # a skeleton whose hip/spine layout differs from the T-pose template: the first frame sets the rest layout
    rest = t_pose()
    rest[1] += (0.02, -0.03, 0.01)
    rest[14] += (0.0, 0.02, -0.02)
    X = rigid_motion(seed=seed, rest=rest)
    path = bvh.write(tmp_path / "m.bvh", X, CHAIN, fps=20)
    text = path.read_text()
    assert text.startswith("HIERARCHY\nROOT Pelvis") and "Frames: 30" in text and "Frame Time: 0.050000" in text
    assert np.abs(fk_of_file(path) - X).max() < 1e-4   # 6 decimals in the file


def test_real_humanml3d_motion(tmp_path):
    f = FIXTURES / "humanml3d" / "new_joints" / "012314.npy"
    if not f.is_file():
        pytest.skip(f"fixture {f} missing")
    X = np.load(f)
    err = np.linalg.norm(fk_of_file(bvh.write(tmp_path / "r.bvh", X, CHAIN)) - X, axis=-1)
    assert err.max() < 1e-3   # metres: mocap bones keep their length, so the fit is exact up to rounding


def test_bone_directions_kept_when_lengths_vary(tmp_path):
    """Generated motions stretch bones; the fit keeps every single-child bone's direction, and the root's position."""
    X = rigid_motion(seed=3)
    X = X * (1 + 0.05 * np.random.default_rng(0).normal(size=X.shape[:2] + (1,)))   # jitter lengths
    P = fk_of_file(bvh.write(tmp_path / "s.bvh", X, CHAIN))
    assert np.abs(P[:, 0] - X[:, 0]).max() < 1e-5
    parents = bvh.parents_from_chain(CHAIN, 22)
    kids = {p: [c for c in range(22) if parents[c] == p] for p in range(22)}
    for j in range(1, 22):
        p = parents[j]
        if len(kids[p]) != 1:
            continue
        a, b = X[:, j] - X[:, p], P[:, j] - P[:, p]
        cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        assert cos.min() > 0.9999, (j, cos.min())


def test_rotation_helpers():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    R = bvh.rotation_between(a, b)
    assert np.allclose(np.einsum("nij,nj->ni", R, a / np.linalg.norm(a, axis=1, keepdims=True)),
                       b / np.linalg.norm(b, axis=1, keepdims=True), atol=1e-9)
    assert np.allclose(R @ np.swapaxes(R, 1, 2), np.eye(3), atol=1e-9)
    # opposite vectors
    R = bvh.rotation_between(np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, -1.0, 0.0]]))
    assert np.allclose(R[0] @ [0, 1, 0], [0, -1, 0])


def test_bad_input_is_one_line():
    from src.common.errors import HmuError

    with pytest.raises(HmuError, match="expected joint positions"):
        bvh.fit(np.zeros((5, 22)), CHAIN)
