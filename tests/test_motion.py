"""Motion features <-> joints: parity with upstream's released files and round-trip / invariance properties."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from src.common.errors import HmuError
from src.data.motion import (
    T2M_SKELETON,
    canonicalize,
    feature_dim,
    feature_slices,
    joints_to_features,
    mean_std,
    recover_from_ric,
    recover_root_rot_pos,
    skeleton_for,
)
from src.common.datasets import get_spec

SPEC = get_spec("HumanML3D")
# Gaussian smoothing of the facing direction (sigma 20, scipy's default truncate 4.0) reaches 80 frames.
SMOOTH_RADIUS = 80


@pytest.fixture(scope="module")
def hml(fixtures):
    root = fixtures / "humanml3d"
    io = np.load(fixtures / "momask" / "recover" / "io.npz")
    return {"feats": np.load(root / "new_joint_vecs" / "012314.npy"),
            "joints": np.load(root / "new_joints" / "012314.npy"), "std": np.load(root / "Std.npy"),
            "io": io, "joints_num": int(io["joints_num"])}


def _yaw(theta: np.ndarray) -> np.ndarray:
    """(T,) angles -> (T, 3, 3) rotations about +y."""
    c, s = np.cos(theta), np.sin(theta)
    r = np.zeros(theta.shape + (3, 3))
    r[..., 0, 0], r[..., 0, 2], r[..., 1, 1], r[..., 2, 0], r[..., 2, 2] = c, s, 1.0, -s, c
    return r


# ---------------------------------------------------------------- features -> joints

def test_feature_layout_matches_spec(hml):
    assert feature_dim(hml["joints_num"]) == SPEC.dim_pose == hml["feats"].shape[-1]
    sl = list(feature_slices(SPEC.joints_num).values())
    assert sl[0].start == 0 and sl[-1].stop == SPEC.dim_pose
    assert all(a.stop == b.start for a, b in itertools.pairwise(sl))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_recover_from_ric_matches_upstream(hml, backend):
    io, nj = hml["io"], hml["joints_num"]
    for feats, expected in [(io["real_features"], io["real_joints"]), (hml["feats"], hml["joints"]),
                            (io["rand_features"], io["rand_joints"])]:  # the last one is batched (2, 40, 263)
        x = torch.from_numpy(feats) if backend == "torch" else feats
        out = recover_from_ric(x, nj)
        assert type(out) is type(x) and tuple(out.shape) == expected.shape
        out = out.numpy() if backend == "torch" else out
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


def test_recover_root_rot_pos_agrees_with_joints(hml):
    quat, pos = recover_root_rot_pos(hml["feats"])
    np.testing.assert_allclose(np.linalg.norm(quat, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(pos, hml["joints"][:, 0], atol=1e-5)
    tq, tp = recover_root_rot_pos(torch.from_numpy(hml["feats"]))
    np.testing.assert_allclose(tq.numpy(), quat, atol=1e-6)
    np.testing.assert_allclose(tp.numpy(), pos, atol=1e-5)


def test_recover_from_ric_keeps_autograd():
    x = torch.randn(1, 5, SPEC.dim_pose, dtype=torch.float64, requires_grad=True)
    recover_from_ric(x, SPEC.joints_num).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ---------------------------------------------------------------- joints -> features

def test_target_skeleton_is_the_released_one(hml):
    """Every released new_joints file is on upstream's target skeleton: the constant equals 012314's bone lengths."""
    j = hml["joints"].astype(np.float64)
    par = np.array(T2M_SKELETON.parents)
    lengths = np.linalg.norm(j[:, 1:] - j[:, par[1:]], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(T2M_SKELETON.target_lengths[1:], lengths.shape), atol=1e-5)
    assert T2M_SKELETON.joints_num == SPEC.joints_num


def test_joints_to_features_round_trip_on_fixture(hml):
    """Features drop the last frame (no velocity for it): recover(j2f(J)) matches J[:-1]."""
    j = hml["joints"]
    feats = joints_to_features(j, spec=SPEC)
    assert feats.shape == (len(j) - 1, SPEC.dim_pose) and feats.dtype == np.float32
    np.testing.assert_allclose(recover_from_ric(feats.astype(np.float64), SPEC.joints_num), j[:-1], atol=1e-4)
    np.testing.assert_allclose(canonicalize(j, spec=SPEC), j, atol=1e-5)  # released joints are already canonical


def test_joints_to_features_channel_parity(hml):
    """Compare with new_joint_vecs/012314 channel by channel (see joints_to_features' docstring).

    new_joints/012314 lacks upstream's last raw frame, which the facing direction's smoothing saw; rows whose root
    rotations lie more than the smoothing radius from that frame must match everywhere. Root height and foot contacts
    do not depend on the smoothing and match on every row.
    """
    ref = hml["feats"]
    ours = joints_to_features(hml["joints"], spec=SPEC)
    ref = ref[:len(ours)]
    clean = len(hml["feats"]) - (SMOOTH_RADIUS + 1)   # rows 0..clean-1 use root rotations of frames <= clean
    assert clean > 50
    for name, sl in feature_slices(SPEC.joints_num).items():
        np.testing.assert_allclose(ours[:clean, sl], ref[:clean, sl], atol=2e-5, rtol=0, err_msg=name)
    for name in ("root_y", "foot_contact"):
        sl = feature_slices(SPEC.joints_num)[name]
        np.testing.assert_allclose(ours[:, sl], ref[:, sl], atol=1e-5, rtol=0, err_msg=name)
    # The tail stays close: the effect of one missing frame on the smoothed heading is small.
    np.testing.assert_allclose(ours, ref, atol=2e-2, rtol=0)


def test_features_invariant_to_placement_and_scale(hml):
    """Yaw, translation, floor offset and uniform scale are undone by the canonicalisation."""
    j = hml["joints"].astype(np.float64)
    moved = 1.3 * (j @ _yaw(np.array(0.7)).T) + np.array([2.0, 0.5, -1.0])
    np.testing.assert_allclose(joints_to_features(moved, spec=SPEC), joints_to_features(j, spec=SPEC), atol=1e-4)


def test_round_trip_through_heading_wrap(hml):
    """A figure spinning 2.5 turns: the root heading crosses 180 degrees several times and must still round-trip."""
    pose = hml["joints"][0].astype(np.float64)
    theta = np.linspace(0.0, 2.5 * np.pi, 120)
    spin = np.einsum("tij,kj->tki", _yaw(theta), pose - pose[0] * [1, 0, 1]) + np.linspace(0, 1, 120)[:, None, None]
    feats = joints_to_features(spin, spec=SPEC)
    assert abs(feats[:, 0].sum()) * 2 > 2 * np.pi  # more than a full turn was encoded
    np.testing.assert_allclose(recover_from_ric(feats.astype(np.float64), SPEC.joints_num),
                               canonicalize(spin, spec=SPEC)[:-1], atol=1e-4)


def test_foot_contacts_follow_threshold(hml):
    j = hml["joints"].astype(np.float64)
    still = np.repeat(j[:1], 10, axis=0)
    feats = joints_to_features(still, spec=SPEC)
    assert (feats[:, feature_slices(SPEC.joints_num)["foot_contact"]] == 1).all()
    # No root motion; row 0's angular velocity is the jump from upstream's identity frame-0 rotation to the heading.
    assert np.abs(feats[:, 1:3]).max() < 1e-6 and np.abs(feats[1:, 0]).max() < 1e-6
    # Swing the left leg forward about the left hip (bone lengths kept): 0.15 rad per frame moves the ankle ~6 cm.
    lifted = still.copy()
    hip, leg = 1, [4, *T2M_SKELETON.feet_left]
    c, s = np.cos(0.15 * np.arange(10)), np.sin(0.15 * np.arange(10))
    rot_x = np.zeros((10, 3, 3))
    rot_x[:, 0, 0], rot_x[:, 1, 1], rot_x[:, 1, 2], rot_x[:, 2, 1], rot_x[:, 2, 2] = 1.0, c, -s, s, c
    lifted[:, leg] = np.einsum("tij,tkj->tki", rot_x, still[:, leg] - still[:, hip:hip + 1]) + still[:, hip:hip + 1]
    fc = joints_to_features(lifted, spec=SPEC)[:, feature_slices(SPEC.joints_num)["foot_contact"]]
    assert (fc[:, :2] == 0).all() and (fc[:, 2:] == 1).all()


@pytest.mark.parametrize("bad", [np.zeros((1, 22, 3)), np.zeros((5, 21, 3)), np.zeros((5, 22))])
def test_joints_to_features_rejects_bad_shapes(bad):
    with pytest.raises(HmuError, match="joints must have shape"):
        joints_to_features(bad, spec=SPEC)


def test_joints_to_features_rejects_nan(hml):
    j = hml["joints"].copy()
    j[3, 4, 1] = np.nan
    with pytest.raises(HmuError, match="NaN"):
        joints_to_features(j, spec=SPEC)


def test_unsupported_skeleton():
    with pytest.raises(HmuError, match="KIT-ML"):
        skeleton_for(get_spec("KIT-ML"))


# ---------------------------------------------------------------- Mean / Std

def test_released_std_has_our_groups(hml):
    """The released Std.npy is constant inside each of our feature groups and changes between neighbouring groups."""
    std = hml["std"]
    groups = list(feature_slices(hml["joints_num"]).values())
    for sl in groups:
        assert np.ptp(std[sl]) == 0
    for a, b in itertools.pairwise(groups):
        assert std[a.stop - 1] != std[b.start]


def test_mean_std_group_averages(hml):
    rng = np.random.default_rng(0)
    feats = [hml["feats"], hml["feats"][::-1] * 1.5 + rng.normal(size=hml["feats"].shape).astype(np.float32)]
    with_nan = hml["feats"].copy()
    with_nan[0, 0] = np.nan
    mean, std = mean_std(feats + [with_nan], hml["joints_num"])  # NaN motions are skipped
    data = np.concatenate(feats).astype(np.float64)
    np.testing.assert_allclose(mean, data.mean(0), rtol=1e-5, atol=1e-6)
    per_dim = data.std(0)
    for sl in feature_slices(hml["joints_num"]).values():
        np.testing.assert_allclose(std[sl], np.full(sl.stop - sl.start, per_dim[sl].mean()), rtol=1e-5)
    assert mean.dtype == std.dtype == np.float32


def test_mean_std_rejects_wrong_dim():
    with pytest.raises(HmuError, match="dims"):
        mean_std([np.zeros((4, 10), np.float32)], SPEC.joints_num)
