"""BVH export: inverse kinematics on the 22-joint chain; FK of the written file gives the joints back.

The file is read back with :func:`spec_fk`, a reader written here from the BVH specification (hierarchy, OFFSET,
CHANNELS in the header's order, intrinsic Euler angles in that order, position channels replacing the offset), with
HumanML3D's joint names spelled out here too: a mistake the module's writer and reader share (left and right hips
swapped, XYZ angles under a Z-Y-X header) fails these tests.
"""
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
# SMPL's first 22 joints in HumanML3D's order, as hmu's export names them (independent of src.viz.bvh's tuple)
HML_NAMES = ["Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
             "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow",
             "R_Elbow", "L_Wrist", "R_Wrist"]


def _axis_rotation(axis: str, deg: np.ndarray) -> np.ndarray:
    """(T, 3, 3) right-handed rotations about one axis, written out."""
    a = np.deg2rad(deg)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    rows = {"X": [[o, z, z], [z, c, -s], [z, s, c]],
            "Y": [[c, z, s], [z, o, z], [-s, z, c]],
            "Z": [[c, -s, z], [s, c, z], [z, z, o]]}[axis]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def spec_fk(path: Path) -> dict[str, np.ndarray]:
    """Joint name -> world positions (T, 3) of a BVH file, by the specification (see the module docstring)."""
    toks = path.read_text().split()
    assert toks[0] == "HIERARCHY"
    joints, stack, i, pending = [], [], 1, None   # joints: [name, parent, offset, channels]
    while toks[i] != "MOTION":
        t = toks[i]
        if t in ("ROOT", "JOINT"):
            joints.append([toks[i + 1], stack[-1] if stack else None, None, []])
            pending, i = len(joints) - 1, i + 2
        elif t == "End":
            pending, i = "end", i + 2
        elif t == "{":
            stack.append(pending)
            i += 1
        elif t == "}":
            stack.pop()
            i += 1
        elif t == "OFFSET":
            if stack[-1] != "end":
                joints[stack[-1]][2] = np.array([float(v) for v in toks[i + 1:i + 4]])
            i += 4
        elif t == "CHANNELS":
            n = int(toks[i + 1])
            joints[stack[-1]][3] = toks[i + 2:i + 2 + n]
            i += 2 + n
        else:
            raise AssertionError(f"unexpected token {t}")
    assert toks[i + 1] == "Frames:" and toks[i + 3:i + 5] == ["Frame", "Time:"]
    n_frames = int(toks[i + 2])
    values = np.array([float(v) for v in toks[i + 6:]]).reshape(n_frames, -1)
    col, world = 0, {}
    for name, parent, offset, channels in joints:
        local_t = np.tile(offset, (n_frames, 1))
        local_r = np.tile(np.eye(3), (n_frames, 1, 1))
        for ch in channels:
            v = values[:, col]
            col += 1
            if ch.endswith("position"):
                local_t[:, "XYZ".index(ch[0])] = v
            else:
                local_r = local_r @ _axis_rotation(ch[0], v)
        if parent is None:
            world[name] = (local_r, local_t)
        else:
            pr, pt = world[joints[parent][0]]
            world[name] = (pr @ local_r, pt + np.einsum("tij,tj->ti", pr, local_t))
    assert col == values.shape[1]
    return {name: t for name, (_, t) in world.items()}


def fk_of_file(path: Path) -> np.ndarray:
    """Positions (T, 22, 3) by the specification's FK of a BVH, in HumanML3D joint order (names spelled here)."""
    pos = spec_fk(path)
    return np.stack([pos[n] for n in HML_NAMES], axis=1)


def rigid_motion(T: int = 30, seed: int = 0, rest: np.ndarray | None = None) -> np.ndarray:
    """Joint positions from random local rotations of a fixed skeleton (bone lengths constant)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    rest = t_pose() if rest is None else rest
    parents = bvh.parents_from_chain(CHAIN, 22)
    offs = np.array([rest[j] - rest[p] if p >= 0 else np.zeros(3) for j, p in enumerate(parents)])
    rot = Rotation.from_rotvec(rng.normal(0, 0.6, (T * 22, 3))).as_matrix().reshape(T, 22, 3, 3)
    m = bvh.BVHMotion(list(HML_NAMES), parents, offs, rng.normal(0, 1, (T, 3)), rot, 0.05)
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


def test_header_declares_the_order_the_angles_are_written_in(tmp_path):
    """A rotation about one axis at a time: the header's channel order must be the angles' order on the line."""
    X = rigid_motion(seed=5)
    text = bvh.write(tmp_path / "o.bvh", X, CHAIN).read_text()
    assert "CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation" in text
    assert np.abs(fk_of_file(tmp_path / "o.bvh") - X).max() < 1e-4


def test_left_is_left_in_the_written_file(tmp_path):
    """In a T-pose facing +z (HumanML3D), the character's left is +x: the file's L_ joints must be there."""
    X = np.repeat(t_pose()[None], 3, axis=0)
    P = spec_fk(bvh.write(tmp_path / "t.bvh", X, CHAIN))
    for side in ("Hip", "Knee", "Ankle", "Foot", "Collar", "Shoulder", "Elbow", "Wrist"):
        assert (P[f"L_{side}"][:, 0] > P[f"R_{side}"][:, 0]).all(), side


def test_module_reader_agrees_with_the_spec_reader(tmp_path):
    """src.viz.bvh.read (used by src.gen's tests and users) gives what the specification's FK gives."""
    path = bvh.write(tmp_path / "m.bvh", rigid_motion(seed=2), CHAIN)
    m = bvh.read(path)
    P = m.positions()
    ref = spec_fk(path)
    assert np.abs(np.stack([ref[n] for n in m.names], 1) - P).max() < 1e-9


# ------------------------------------------------------------------------------------------- --bvh_names maps

# MoMask's visualization/joints2bvh.py: template.bvh's joints in file order, and ``re_order`` (file index -> SMPL
# joint), copied from upstream as the independent reference for the ``momask`` map.
_MOMASK_TEMPLATE = ("Hips", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToe", "RightUpLeg", "RightLeg", "RightFoot",
                    "RightToe", "Spine", "Spine1", "Spine2", "Neck", "Head", "LeftShoulder", "LeftArm", "LeftForeArm",
                    "LeftHand", "RightShoulder", "RightArm", "RightForeArm", "RightHand")
_MOMASK_REORDER = [0, 1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12, 15, 13, 16, 18, 20, 14, 17, 19, 21]


def test_momask_names_follow_upstreams_template_order():
    want = [""] * 22
    for file_idx, smpl_idx in enumerate(_MOMASK_REORDER):
        want[smpl_idx] = _MOMASK_TEMPLATE[file_idx]
    assert bvh.joint_names("momask") == want


def test_mixamo_names_are_what_the_importer_reads_as_mixamo():
    """The importer's Mixamo map (src/data/import_bvh.py, HumanML3D order) reads every exported name back as the
    same joint, and the export carries Mixamo's namespace."""
    from src.data.import_bvh import SKELETONS, _key

    names = bvh.joint_names("mixamo")
    assert all(n.startswith("mixamorig:") for n in names)
    assert [(_key(n),) for n in names] == [tuple(_key(x) for x in g) for g in SKELETONS["mixamo"].joints]


@pytest.mark.parametrize("kind", ["smpl", "momask", "mixamo"])
def test_renamed_bvh_keeps_the_motion(tmp_path, kind):
    """Only the names change: forward kinematics of a renamed file equals the smpl-named one's, joint by joint."""
    from src.viz.export import motion_bvh

    X = rigid_motion(seed=3)
    ref = bvh.read(motion_bvh(tmp_path / "smpl.bvh", X, chain=CHAIN, fps=20, names="smpl"))
    m = bvh.read(motion_bvh(tmp_path / f"{kind}.bvh", X, chain=CHAIN, fps=20, names=kind))
    names = bvh.joint_names(kind)   # SMPL order; the file lists joints depth-first
    assert sorted(m.names) == sorted(names) and len(set(m.names)) == 22
    P, R = m.positions(), ref.positions()
    for j, n in enumerate(names):
        assert np.allclose(P[:, m.names.index(n)], R[:, ref.names.index(bvh.T2M_JOINT_NAMES[j])], atol=1e-6), n
        assert np.allclose(P[:, m.names.index(n)], X[:, j], atol=1e-4), n


def test_bad_name_map_is_one_line_error():
    from src.common.errors import HmuError

    with pytest.raises(HmuError, match="--bvh_names"):
        bvh.joint_names("blender")
    with pytest.raises(HmuError, match="21"):
        bvh.joint_names("mixamo", 21)
    assert bvh.joint_names("smpl", 21)[0] == "joint0"
