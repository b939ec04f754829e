"""python -m src.data.import_bvh: BVH motion capture -> a HumanML3D-format dataset.

Expected values come from outside the importer: the real_motion fixture's joints.npz (made from the same BVH files by
the fixture's own conversion, see its README), hand-computed rotations, closed-form trajectories, and properties of
a person (left is +x when facing +z, toes ahead of the ankles, a walk moves forward). Test files are written by a
small writer here, not by the module.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from src.common.errors import HmuError
from src.data import bvh as reader
from src.data import import_bvh as ib

REAL = Path(os.environ.get("HMU_REAL_MOTION", "/work/shared/fixtures/real_motion")) / "bandai1"
STEMS = ("dataset-1_kick_normal_001", "dataset-1_walk_normal_001")
CMU_UNIT = 0.0254 / 0.45   # the CMU ASF length unit in metres


def need_real():
    if not (REAL / "joints.npz").is_file() or not all((REAL / "bvh" / f"{s}.bvh").is_file() for s in STEMS):
        pytest.skip(f"real_motion fixture missing under {REAL}")


def run(argv, capsys=None):
    rc = ib.main([*map(str, argv), "--no_progress", "--tagger", "lexicon"])
    err = capsys.readouterr().err if capsys is not None else ""
    return rc, err


# ---------------------------------------------------------------------------------------------------- a test writer

def write_bvh(path: Path, joints: list[tuple[str, int, tuple, tuple]], frames: np.ndarray, frame_time: float) -> Path:
    """joints: (name, parent index or -1, offset, channels) in depth-first order; frames (T, sum channels)."""
    kids = {j: [k for k, (_, p, _, _) in enumerate(joints) if p == j] for j in range(len(joints))}
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        name, parent, off, ch = joints[j]
        ind = "\t" * depth
        lines.append(f"{ind}{'ROOT' if parent < 0 else 'JOINT'} {name}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}\tOFFSET {off[0]:g} {off[1]:g} {off[2]:g}")
        lines.append(f"{ind}\tCHANNELS {len(ch)} {' '.join(ch)}")
        for k in kids[j]:
            emit(k, depth + 1)
        if not kids[j]:
            lines.extend([f"{ind}\tEnd Site", f"{ind}\t{{", f"{ind}\t\tOFFSET 0 0 0", f"{ind}\t}}"])
        lines.append(f"{ind}}}")

    emit(0, 0)
    lines += ["MOTION", f"Frames:\t{len(frames)}", f"Frame Time:\t{frame_time:.7f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in np.atleast_2d(frames)]
    path.write_text("\n".join(lines) + "\n")
    return path


ROOT6_ZXY = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")


def two_joint_file(tmp_path: Path, rot_channels: tuple, values: list[float], child_offset=(0, 1, 0)) -> Path:
    joints = [("A", -1, (0, 0, 0), ("Xposition", "Yposition", "Zposition", *rot_channels)),
              ("B", 0, child_offset, ("Zrotation", "Yrotation", "Xrotation"))]
    return write_bvh(tmp_path / "two.bvh", joints, np.array([[1, 2, 3, *values, 0, 0, 0]], float), 1 / 30)


# ---------------------------------------------------------------------------------------------------- the reader

@pytest.mark.parametrize("axis, offset, expect", [
    ("Zrotation", (1, 0, 0), (0, 1, 0)),   # right-handed: +90 about z takes x to y
    ("Xrotation", (0, 1, 0), (0, 0, 1)),   # y to z
    ("Yrotation", (0, 0, 1), (1, 0, 0)),   # z to x
])
def test_each_axis_turns_the_right_way(tmp_path, axis, offset, expect):
    others = [c for c in ("Zrotation", "Xrotation", "Yrotation") if c != axis]
    p = two_joint_file(tmp_path, (axis, *others), [90, 0, 0], child_offset=offset)
    b = reader.read(p)
    np.testing.assert_allclose(b.positions()[0, 1], np.add((1, 2, 3), expect), atol=1e-12)


def test_rotation_order_is_the_headers(tmp_path):
    """The same two angles (z 90, x 90) under two headers: R = Rz Rx takes (0,1,0) to (0,0,1); R = Rx Rz takes it to
    (-1,0,0) (worked by hand). A reader with a fixed order gets one of them wrong."""
    zx = reader.read(two_joint_file(tmp_path, ("Zrotation", "Xrotation", "Yrotation"), [90, 90, 0]))
    np.testing.assert_allclose(zx.positions()[0, 1], (1, 2, 4), atol=1e-12)
    xz = reader.read(two_joint_file(tmp_path, ("Xrotation", "Zrotation", "Yrotation"), [90, 90, 0]))
    np.testing.assert_allclose(xz.positions()[0, 1], (0, 2, 3), atol=1e-12)


def test_position_channels_replace_the_offset_on_any_joint_in_their_order(tmp_path):
    joints = [("A", -1, (0, 0, 0), ROOT6_ZXY),
              ("B", 0, (5, 5, 5), ("Zposition", "Xposition", "Yposition", "Zrotation", "Xrotation", "Yrotation")),
              ("C", 1, (0, 1, 0), ())]
    frame = np.array([[10, 20, 30, 0, 0, 0, 3, 1, 2, 90, 0, 0]], float)
    b = reader.read(write_bvh(tmp_path / "p.bvh", joints, frame, 0.05))
    P = b.positions()[0]
    np.testing.assert_allclose(P[0], (10, 20, 30))
    np.testing.assert_allclose(P[1], (11, 22, 33))            # offset (5,5,5) replaced by (x 1, y 2, z 3)
    np.testing.assert_allclose(P[2], (10, 22, 33), atol=1e-12)  # B turned 90 about z: its child (0,1,0) -> (-1,0,0)
    assert b.channels[2] == () and b.fps == pytest.approx(20)


def test_header_spellings(tmp_path):
    p = two_joint_file(tmp_path, ("Zrotation", "Xrotation", "Yrotation"), [0, 0, 0])
    text = p.read_text().replace("Frames:\t1", "Frames:1").replace("Frame Time:\t", "Frame Time: ")
    p.write_text(text.replace("\n", "\r\n"))
    b = reader.read(p)
    assert b.n_frames == 1 and b.frame_time == pytest.approx(1 / 30, rel=1e-6)


# ---------------------------------------------------------------------------------------------------- resampling

@pytest.mark.parametrize("src_fps, n", [(30, 358), (60, 100), (120, 241), (24, 50), (20, 41), (12, 30)])
def test_resample_is_linear_in_time(src_fps, n):
    """A trajectory linear in time comes out as a + b t at t = k / 20, for every k with t within the recording."""
    t = np.arange(n) / src_fps
    x = np.stack([1.0 + 2.0 * t, -0.5 * t, 3.0 + 0 * t], -1)[:, None]     # (T, 1, 3)
    y = ib.resample(x, 1 / src_fps)
    k_max = int(np.floor((n - 1) / src_fps * 20 + 1e-9))
    assert y.shape == (k_max + 1, 1, 3)
    tk = np.arange(k_max + 1) / 20
    np.testing.assert_allclose(y[:, 0], np.stack([1.0 + 2.0 * tk, -0.5 * tk, 3.0 + 0 * tk], -1), atol=1e-12)


def test_resample_of_a_curve_matches_numpy_interp():
    t = np.arange(90) / 30
    x = np.sin(3 * t)[:, None]
    tk = np.arange(60) / 20
    np.testing.assert_allclose(ib.resample(x, 1 / 30)[:, 0], np.interp(tk, t, x[:, 0]), atol=1e-12)


# ---------------------------------------------------------------------------------------------------- parity

def test_reproduces_the_real_motion_fixture(tmp_path):
    """The fixture's joints.npz came from these BVH files by its own conversion (README: FK in the header's channel
    order, position channels replacing offsets, its joint map, cm -> m, 30 -> 20 fps linear, floor): same joints to
    1e-4 m, same 263-d features to 1e-3."""
    need_real()
    from src.data.motion import joints_to_features

    out = tmp_path / "ds"
    rc, _ = run(["--in", REAL / "bvh", "--out", out, "--labels", REAL / "labels.json"])
    assert rc == 0
    ref = np.load(REAL / "joints.npz")
    labels = json.loads((REAL / "labels.json").read_text())
    for s in STEMS:
        J = np.load(out / "new_joints" / f"{s}.npy")
        assert J.shape == ref[s].shape and len(J) == labels[s]["frames_20fps"]
        err = float(np.abs(J - ref[s]).max())
        assert err < 1e-4, (s, err)
        F = np.load(out / "new_joint_vecs" / f"{s}.npy")
        assert np.abs(F - joints_to_features(ref[s])).max() < 1e-3
    info = json.loads((out / "import.json").read_text())
    assert {c["skeleton"] for c in info["clips"].values()} == {"bandai"}


def test_real_clips_face_and_move_the_right_way(tmp_path):
    """Properties of the real clips, independent of the fixture's numbers: the walk moves forward in HumanML3D's
    facing frame (README: +0.063 m per frame), the toes are ahead of the ankles, and the kick raises the right ankle
    to about 1 m. A left/right swap in the map turns the facing around and fails all three."""
    need_real()
    walk = ib.import_file(REAL / "bvh" / f"{STEMS[1]}.bvh")
    kick = ib.import_file(REAL / "bvh" / f"{STEMS[0]}.bvh")
    from src.data.motion import joints_to_features

    F = joints_to_features(walk.joints)
    assert F[:, 2].mean() == pytest.approx(0.063, abs=0.01)
    ric = F[:, 4:4 + 21 * 3].reshape(len(F), 21, 3)                # root-relative, facing Z+
    assert (ric[:, 9, 2] - ric[:, 6, 2]).mean() > 0.05 and (ric[:, 10, 2] - ric[:, 7, 2]).mean() > 0.05  # toes ahead
    assert kick.joints[:, 8, 1].max() == pytest.approx(1.0, abs=0.03)   # right ankle
    assert kick.joints[:, 7, 1].max() < 0.5                              # the left foot stays down


# ---------------------------------------------------------------------------------------------------- other skeletons

def _mirror(entries):
    """Left-side entries (name with {s}, parent name, offset) -> both sides, the right one at -x."""
    out = []
    for name, parent, off in entries:
        for s, sign in (("Left", 1), ("Right", -1)):
            out.append((name.format(s=s), parent.format(s=s), (sign * off[0], off[1], off[2])))
    return out


# CMU's BVH conversion (offsets of its standard skeleton, its units), facing +z, left at +x
CMU = [("Hips", "", (0, 0, 0)), ("LowerBack", "Hips", (0, 0, 0)), ("Spine", "LowerBack", (-0.0156, 2.2397, -0.0371)),
       ("Spine1", "Spine", (0.0549, 2.1922, -0.1909)), ("Neck", "Spine1", (0, 0, 0)),
       ("Neck1", "Neck", (-0.124, 1.4317, 0.2759)), ("Head", "Neck1", (0.1786, 1.4617, -0.3258))] + _mirror([
    ("{s}Shoulder", "Spine1", (0, 0, 0)), ("{s}Arm", "{s}Shoulder", (3.2765, 0.8563, 0.054)),
    ("{s}ForeArm", "{s}Arm", (4.9676, 0, 0)), ("{s}Hand", "{s}ForeArm", (3.3575, 0, 0)),
    ("{s}HipJoint", "Hips", (0, 0, 0)), ("{s}UpLeg", "{s}HipJoint", (1.8559, -1.7395, 0.8498)),
    ("{s}Leg", "{s}UpLeg", (2.3684, -6.507, 0)), ("{s}Foot", "{s}Leg", (2.5327, -6.9585, 0)),
    ("{s}ToeBase", "{s}Foot", (0.1594, -0.4378, 1.9451))])
CMU = [(n.replace("LeftHipJoint", "LHipJoint").replace("RightHipJoint", "RHipJoint"),
        p.replace("LeftHipJoint", "LHipJoint").replace("RightHipJoint", "RHipJoint"), o) for n, p, o in CMU]
# Mixamo, centimetres, names in the 'mixamorig:' namespace
MIXAMO = [("Hips", "", (0, 0, 0)), ("Spine", "Hips", (0, 10, 0)), ("Spine1", "Spine", (0, 12, 0)),
          ("Spine2", "Spine1", (0, 13, 0)), ("Neck", "Spine2", (0, 15, 0)), ("Head", "Neck", (0, 10, 0))] + _mirror([
    ("{s}Shoulder", "Spine2", (6, 10, 0)), ("{s}Arm", "{s}Shoulder", (12, 0, 0)), ("{s}ForeArm", "{s}Arm", (27, 0, 0)),
    ("{s}Hand", "{s}ForeArm", (26, 0, 0)), ("{s}UpLeg", "Hips", (9, -7, 0)), ("{s}Leg", "{s}UpLeg", (0, -42, 0)),
    ("{s}Foot", "{s}Leg", (0, -40, 0)), ("{s}ToeBase", "{s}Foot", (0, -7, 13))])
MIXAMO = [(f"mixamorig:{n}", f"mixamorig:{p}" if p else "", o) for n, p, o in MIXAMO]


def _depth_first(entries):
    names = [n for n, _, _ in entries]
    kids = {n: [m for m, p, _ in entries if p == n] for n in names}
    by = {n: (p, o) for n, p, o in entries}
    order, stack = [], [n for n, p, _ in entries if not p]
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(reversed(kids[n]))
    idx = {n: i for i, n in enumerate(order)}
    return [(n, idx[by[n][0]] if by[n][0] else -1, by[n][1]) for n in order]


def skeleton_file(path: Path, entries, *, root_ch, joint_ch, unit_m: float, yaw_deg: float = 0.0, speed=1.0,
                  fps: float = 30, seconds: float = 3.0) -> Path:
    """A rest-pose skeleton whose root walks forward at ``speed`` m/s while facing ``yaw_deg`` about y."""
    joints = _depth_first(entries)
    spec = [(n, p, o, root_ch if p < 0 else joint_ch) for n, p, o in joints]
    T = int(seconds * fps) + 1
    t = np.arange(T) / fps
    yaw = np.deg2rad(yaw_deg)
    fwd = np.array([np.sin(yaw), 0.0, np.cos(yaw)])          # +z turned by yaw about y
    rows = []
    for k in range(T):
        row = []
        for _, p, _, ch in spec:
            for c in ch:
                if c.endswith("position"):
                    base = {"X": 0.0, "Y": 1.0 / unit_m, "Z": 0.0}[c[0]]      # hips 1 m up
                    row.append(base + fwd["XYZ".index(c[0])] * speed * t[k] / unit_m)
                else:
                    row.append(yaw_deg if (c == "Yrotation" and p < 0) else 0.0)
        rows.append(row)
    return write_bvh(path, spec, np.array(rows), 1 / fps)


SIDES = [(1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21)]   # (left, right) HumanML3D pairs
CASES = {
    "cmu": dict(entries=CMU, root_ch=("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation"),
                joint_ch=("Zrotation", "Yrotation", "Xrotation"), unit_m=CMU_UNIT,
                leg=np.hypot(2.3684, 6.507) + np.hypot(2.5327, 6.9585)),
    "mixamo": dict(entries=MIXAMO, root_ch=ROOT6_ZXY, joint_ch=("Zrotation", "Xrotation", "Yrotation"), unit_m=0.01,
                   leg=42 + 40),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("yaw", [0.0, 90.0])
def test_other_skeletons_left_right_units_and_facing(tmp_path, name, yaw):
    """CMU and Mixamo files written here (their joint names and units): auto-detected; the legs measure what the
    offsets say in metres; at yaw 0 the left joints are at +x and the toes ahead (+z); walking forward gives a
    positive forward velocity in the features at any yaw (a left/right swap would make it negative)."""
    from src.data.motion import joints_to_features

    case = CASES[name]
    p = skeleton_file(tmp_path / f"{name}.bvh", case["entries"], root_ch=case["root_ch"], joint_ch=case["joint_ch"],
                      unit_m=case["unit_m"], yaw_deg=yaw)
    clip = ib.import_file(p)
    assert clip.skeleton == name and clip.unit_m == pytest.approx(case["unit_m"])
    # 91 frames of 0.0333333 s (as written, 7 decimals) span 2.99999 s: frames 0..59 at 20 fps, as the fixture counts
    assert len(clip.joints) == 60
    assert ib.leg_length(clip.joints) == pytest.approx(case["leg"] * case["unit_m"], rel=1e-6)
    J = clip.joints
    if yaw == 0.0:
        for left, right in SIDES:
            assert (J[:, left, 0] > J[:, right, 0]).all(), (left, right)
        assert (J[:, [10, 11], 2] > J[:, [7, 8], 2]).all()          # toes ahead of the ankles
    F = joints_to_features(J)
    assert F[:, 2].mean() > 0.02                                     # forward, about 1 m/s scaled to the target legs
    assert np.abs(F[:, 1]).max() < 1e-3                              # no sideways drift


def test_hmu_export_round_trip(tmp_path):
    """hmu's own export (src/viz/bvh.py) re-imports to its joints within 1e-4 m (rigid motion, 20 fps), and a 30 fps
    export comes back as the joints linearly interpolated at 20 fps."""
    from scipy.spatial.transform import Rotation

    from src.common.datasets import get_spec
    from src.viz import bvh as export
    from src.viz.skeleton import t_pose

    chain = get_spec("HumanML3D").kinematic_chain
    rng = np.random.default_rng(0)
    parents = export.parents_from_chain(chain, 22)
    rest = t_pose()
    offs = np.array([rest[j] - rest[p] if p >= 0 else np.zeros(3) for j, p in enumerate(parents)])
    T = 45
    rot = Rotation.from_rotvec(rng.normal(0, 0.4, (T * 22, 3))).as_matrix().reshape(T, 22, 3, 3)
    root = np.cumsum(rng.normal(0, 0.02, (T, 3)), 0) + (0, 1.0, 0)
    X = export.BVHMotion(list(export.T2M_JOINT_NAMES), parents, offs, root, rot, 0.05).positions()
    X[..., 1] -= X[..., 1].min()
    export.write(tmp_path / "in" / "a.bvh", X, chain, fps=20)
    clip = ib.import_file(tmp_path / "in" / "a.bvh")
    assert clip.skeleton == "hmu"
    assert np.abs(clip.joints - X).max() < 1e-4
    export.write(tmp_path / "in30" / "b.bvh", X, chain, fps=30)
    clip = ib.import_file(tmp_path / "in30" / "b.bvh")
    t_src, t_out = np.arange(T) / 30, np.arange(len(clip.joints)) / 20
    assert len(clip.joints) == 30                                   # 44/30 s -> frames 0..29 at 20 fps
    ref = np.stack([np.stack([np.interp(t_out, t_src, X[:, j, c]) for c in range(3)], -1) for j in range(22)], 1)
    ref[..., 1] -= ref[..., 1].min()
    assert np.abs(clip.joints - ref).max() < 1e-4


# ---------------------------------------------------------------------------------------------------- bad input

def _bandai_like(tmp_path: Path) -> Path:
    """A small valid file with the Bandai skeleton (so the bad variants differ in one thing only)."""
    need_real()
    text = (REAL / "bvh" / f"{STEMS[1]}.bvh").read_text()
    head, _, body = text.partition("MOTION")
    lines = body.strip().splitlines()
    p = tmp_path / "src" / "good.bvh"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(head + "MOTION\nFrames:\t60\n" + "\n".join(lines[1:62]) + "\n")
    return p


def _variants(good: str) -> dict[str, tuple[str | bytes | None, str]]:
    head, _, body = good.partition("MOTION")
    frames = body.strip().splitlines()
    vals = frames[2].split()
    bad_row = " ".join(["abc", *vals[1:]])
    return {
        "unknown_skeleton": (good.replace("Hips", "Pelvis_x").replace("UpperLeg", "Thigh"), "unknown skeleton"),
        "missing_joint": (good.replace("JOINT Toes_L", "JOINT Toe_L"), "unknown skeleton"),
        "non_numeric": (head + "MOTION\n" + "\n".join([*frames[:2], bad_row, *frames[3:]]) + "\n",
                        "frame 1, channel 1 holds 'abc'"),
        "nan_value": (head + "MOTION\n" + "\n".join([*frames[:2], " ".join(["nan", *vals[1:]]), *frames[3:]]),
                      "not a finite number"),
        "zero_frames": (head + "MOTION\nFrames: 0\nFrame Time: 0.0333333\n", "no frames"),
        "truncated": (good[:-400], "motion values, expected"),
        "unknown_channel": (good.replace("Zrotation", "Wrotation", 1), "unknown channel 'Wrotation'"),
        "binary": (b"\x00\x01BVH" * 50, "not a BVH text file"),
        "empty": ("", "not a BVH file"),
        "not_bvh": ("hello world\n", "not a BVH file"),
        "bad_frame_time": (good.replace("Frame Time:\t0.0333333", "Frame Time: x"), "Frame Time 'x' is not a number"),
        "folder": (None, "is a folder"),
    }


@pytest.mark.parametrize("case", ["unknown_skeleton", "missing_joint", "non_numeric", "nan_value", "zero_frames",
                                  "truncated", "unknown_channel", "binary", "empty", "not_bvh", "bad_frame_time",
                                  "folder"])
def test_bad_file_is_one_line_naming_it_and_writes_nothing(tmp_path, capsys, case):
    good = _bandai_like(tmp_path).read_text()
    content, message = _variants(good)[case]
    bad = tmp_path / "src" / f"zz_{case}.bvh"
    if content is None:
        bad.mkdir()
    elif isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    out = tmp_path / "ds"
    rc, err = run(["--in", tmp_path / "src", "--out", out], capsys)
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert str(bad) in err and message in err, err
    assert "bug in hmu" not in err
    assert not out.exists() and not list(tmp_path.glob(".ds.*"))
    # --skip_bad imports the good file and says what it skipped
    rc, _ = run(["--in", tmp_path / "src", "--out", out, "--skip_bad"], capsys)
    assert rc == 0 and (out / "new_joints" / "good.npy").is_file()
    info = json.loads((out / "import.json").read_text())
    assert len(info["skipped"]) == 1 and f"zz_{case}" in info["skipped"][0]


def test_missing_joints_are_named_with_a_given_skeleton(tmp_path, capsys):
    p = _bandai_like(tmp_path)
    p.write_text(p.read_text().replace("JOINT Toes_L", "JOINT Toe_L"))
    rc, err = run(["--in", p, "--out", tmp_path / "ds", "--skeleton", "bandai"], capsys)
    assert rc == 2 and err.count("\n") == 1 and str(p) in err, err
    assert "skeleton 'bandai' needs joint Toes_L, which the file lacks" in err, err
    rc, err = run(["--in", p, "--out", tmp_path / "ds", "--skeleton", "cmu"], capsys)
    assert rc == 2 and "skeleton 'cmu' needs joints LeftUpLeg" in err, err


def test_an_hour_long_clip_is_refused_before_resampling(tmp_path, capsys):
    p = two_joint_file(tmp_path, ("Zrotation", "Xrotation", "Yrotation"), [0, 0, 0])
    text = p.read_text().replace("Frames:\t1", "Frames:\t2").replace("Frame Time:\t0.0333333", "Frame Time: 1e9")
    p.write_text(text + "1 2 3 0 0 0 0 0 0\n")
    rc, err = run(["--in", p, "--out", tmp_path / "ds", "--skeleton", "hmu"], capsys)
    assert rc == 2 and str(p) in err and "Frame Time" in err, err


def test_wrong_unit_is_caught(tmp_path, capsys):
    p = _bandai_like(tmp_path)
    rc, err = run(["--in", p, "--out", tmp_path / "ds", "--unit_scale", "1"], capsys)
    assert rc == 2 and str(p) in err and "--unit_scale" in err, err


def test_unknown_skeleton_flag_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ib.main(["--in", str(tmp_path), "--out", str(tmp_path / "o"), "--skeleton", "kinect"])
    assert e.value.code == 2 and "invalid choice: 'kinect'" in capsys.readouterr().err
    p = two_joint_file(tmp_path, ("Zrotation", "Xrotation", "Yrotation"), [0, 0, 0])
    with pytest.raises(HmuError, match="unknown skeleton 'kinect'"):
        ib.import_file(p, skeleton="kinect")


# ---------------------------------------------------------------------------------------------------- the folder

def test_output_is_replaced_only_with_force_and_atomically(tmp_path, capsys):
    need_real()
    out = tmp_path / "ds"
    assert run(["--in", REAL / "bvh", "--out", out])[0] == 0
    mode = stat.S_IMODE(out.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask                              # not mkdtemp's 0700
    (out / "marker").write_text("old")
    rc, err = run(["--in", REAL / "bvh", "--out", out], capsys)
    assert rc == 2 and "already exists" in err and (out / "marker").is_file()
    # a failing --force import leaves the old folder as it was
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.bvh").write_text("HIERARCHY\n")
    rc, err = run(["--in", bad, "--out", out, "--force"], capsys)
    assert rc == 2 and (out / "marker").is_file()
    assert run(["--in", REAL / "bvh", "--out", out, "--force"])[0] == 0
    assert not (out / "marker").exists() and (out / "Mean.npy").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "ds"]     # no staging leftovers


def test_folder_is_humanml3d_format(tmp_path):
    """Every file the HumanML3D reader checks: shapes, captions that parse, split lists, Mean/Std."""
    need_real()
    from src.data.humanml3d import HumanML3DFolder

    out = tmp_path / "ds"
    labels = {STEMS[0]: ["a person kicks with the right leg", "someone kicks"], STEMS[1]: {"content": "walk"}}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    assert run(["--in", REAL / "bvh", "--out", out, "--labels", tmp_path / "labels.json",
                "--caption_template", "a person does a {content}"])[0] == 0
    f = HumanML3DFolder(out, "HumanML3D")
    ids = f.ids("all")
    assert ids == sorted(STEMS)
    for i in ids:
        assert f.motion(i).shape == (len(f.joints(i)) - 1, 263)
    assert [c.text for c in f.captions(STEMS[0])] == labels[STEMS[0]]
    assert [c.text for c in f.captions(STEMS[1])] == ["a person does a walk"]
    assert f.captions(STEMS[0])[0].tokens[:3] == ("a/DET", "person/NOUN", "kick/VERB") and f.captions(STEMS[0])[0].whole
    mean, std = f.mean_std()
    feats = np.concatenate([f.motion(i) for i in f.ids("train")])
    np.testing.assert_allclose(mean, feats.mean(0), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- captions, splits

def test_labels_json_tsv_and_template(tmp_path):
    (tmp_path / "l.tsv").write_text("# stem, tab, caption\na\tfirst caption\na\tsecond one\nb\ta person waves\n")
    lab = ib.read_labels(tmp_path / "l.tsv")
    assert lab == {"a": ["first caption", "second one"], "b": ["a person waves"]}
    assert ib.captions_for("a", lab["a"], "{content}", "x") == ["first caption", "second one"]
    assert ib.captions_for("c_walk_01", None, "a person performs {content}", "x") == ["a person performs c walk"]
    assert ib.captions_for("s", {"content": "bow", "style": "happy"}, "a {style} {content}", "x") == ["a happy bow"]
    assert ib.captions_for("s", {"caption": "x # y"}, "{content}", "x") == ["x y"]   # '#' would break the format
    with pytest.raises(HmuError, match="names field 'style'"):
        ib.captions_for("s", {"content": "bow"}, "a {style} {content}", "labels.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(HmuError, match="JSON object"):
        ib.read_labels(tmp_path / "bad.json")
    (tmp_path / "bad.tsv").write_text("no tab here\n")
    with pytest.raises(HmuError, match="line 1"):
        ib.read_labels(tmp_path / "bad.tsv")


def test_lexicon_tags_like_humanml3d():
    assert ib.lexicon_tag("A person kicks with his right leg") == [
        "a/DET", "person/NOUN", "kick/VERB", "with/ADP", "his/DET", "right/ADJ", "leg/NOUN"]
    assert ib.lexicon_tag("zorbs") == ["zorbs/X"]


@pytest.mark.parametrize("n", [1, 2, 3, 10, 57])
def test_split_ids(n):
    ids = [f"m{i:03d}" for i in range(n)]
    s = ib.split_ids(ids, [0.8, 0.1, 0.1], seed=0)
    assert s["all"] == ids and all(s[k] for k in ("train", "val", "test"))
    if n >= 3:
        tr, va, te = (set(s[k]) for k in ("train", "val", "test"))
        assert not (tr & va or tr & te or va & te) and tr | va | te == set(ids)
        assert len(va) == max(1, round(n * 0.1)) and s["train_val"] == sorted(tr | va)
    assert ib.split_ids(ids, [0.8, 0.1, 0.1], seed=0) == s


# ---------------------------------------------------------------------------------------------------- end to end

def _synth_clip(action: str, seed: int) -> np.ndarray:
    from src.data.synth.compose import build
    from src.data.synth.generate import _plan_for

    plan = _plan_for([action], np.random.default_rng(seed), fixed={action: {"side": "right"}} if action == "kick"
                     else None)
    joints, _ = build(plan)
    return joints


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The two real BVH files plus hmu exports of synth kicks and walks, imported as dataset/HumanML3D."""
    need_real()
    from src.common.datasets import get_spec
    from src.viz import bvh as export

    tmp_path = tmp_path_factory.mktemp("e2e")
    src = tmp_path / "bvh"
    src.mkdir()
    for s in STEMS:
        (src / f"{s}.bvh").write_bytes((REAL / "bvh" / f"{s}.bvh").read_bytes())
    labels = {s: json.loads((REAL / "labels.json").read_text())[s] for s in STEMS}
    chain = get_spec("HumanML3D").kinematic_chain
    for k in range(3):
        export.write(src / f"gen_kick_{k}.bvh", _synth_clip("kick", k), chain, fps=20)
        export.write(src / f"gen_walk_{k}.bvh", _synth_clip("walk", 10 + k), chain, fps=20)
        labels[f"gen_kick_{k}"] = ["a person kicks with his right leg", "someone kicks forward"]
        labels[f"gen_walk_{k}"] = ["a person walks forward"]
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    data = tmp_path / "dataset"
    rc, _ = run(["--in", src, "--out", data / "HumanML3D", "--labels", tmp_path / "labels.json",
                 "--caption_template", "a person performs a {content}", "--split_ratio", "0.5", "0.25", "0.25"])
    assert rc == 0
    return tmp_path, data


def test_end_to_end_import_split_load(imported):
    """Import -> the project's keyword split on the captions -> the trainers' dataset loaders."""
    from src.data.datasets import MotionWindowDataset, Text2MotionDataset
    from src.data.humanml3d import HumanML3DFolder
    from src.data.split import main as split_main

    _, data = imported
    info = json.loads((data / "HumanML3D" / "import.json").read_text())
    assert json.loads((data / "HumanML3D" / "dataset.json").read_text()) == {"schema": "hmu.dataset/1",
                                                                            "like": "HumanML3D"}
    assert {s: c["skeleton"] for s, c in info["clips"].items()} == {
        **{s: "bandai" for s in STEMS}, **{f"gen_{a}_{k}": "hmu" for a in ("kick", "walk") for k in range(3)}}
    assert split_main(["--dataset_name", "HumanML3D", "--dataset_dir", str(data), "--concept", "kick"]) == 0
    forget = (data / "HumanML3D" / "kw_splits" / "all-w-kick.txt").read_text().split()
    assert sorted(forget) == sorted([STEMS[0], *(f"gen_kick_{k}" for k in range(3))])
    retain = (data / "HumanML3D" / "kw_splits" / "all-wo-kick.txt").read_text().split()
    assert sorted(retain) == sorted([STEMS[1], *(f"gen_walk_{k}" for k in range(3))])

    folder = HumanML3DFolder(data / "HumanML3D", "HumanML3D")
    mean, std = folder.mean_std()
    train = folder.ids("train")
    assert len(train) == 4 and len(folder.ids("val")) == len(folder.ids("test")) == 2
    np.testing.assert_allclose(mean, np.concatenate([folder.motion(i) for i in train]).mean(0), rtol=1e-4, atol=1e-5)
    t2m = Text2MotionDataset(folder, "all", mean=mean, std=std, max_motion_length=196, unit_length=4)
    assert STEMS[1] in t2m.names and STEMS[0] not in t2m.names   # the 11.9 s kick is over HumanML3D's 10 s limit
    caption, tokens, motion, length = t2m[0]
    assert motion.shape == (196, 263) and np.isfinite(motion).all() and length % 4 == 0
    win = MotionWindowDataset(folder, "train", window=16, mean=mean, std=std)
    assert len(win) > 0 and win[0].shape == (16, 263)


@pytest.mark.slow
def test_end_to_end_tiny_vq_training(imported):
    """A one-epoch VQ-VAE run of the project's trainer on the imported dataset."""
    import src.train.vq as vq

    tmp_path, data = imported
    tiny = ["--nb_code", "16", "--code_dim", "16", "--width", "16", "--depth", "1", "--num_quantizers", "2",
            "--window_size", "16", "--batch_size", "8", "--epoch_size", "32", "--max_epoch", "1"]
    assert vq.main(["--name", "vq", "--dataset_name", "HumanML3D", *tiny, "--checkpoints_dir", str(tmp_path / "ck"),
                    "--dataset_dir", str(data), "--no_progress"]) == 0
    assert (tmp_path / "ck" / "HumanML3D" / "vq" / "model" / "latest.tar").is_file()
