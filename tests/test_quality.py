"""Motion-quality metrics (src/eval/quality.py) against hand-computed motions, the synth ground truth and real mocap.

Every expected value is a closed form worked out here from the motion's construction, never a number the module
printed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src.eval.quality import (QualityConfig, frames_from_tokens, motion_samples, quality_metrics,
                              replaced_token_mask)

FPS = 20.0
J = 22
REAL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real_motion" / "bandai1"


def _still(T: int, height: float = 1.0) -> np.ndarray:
    """Every joint at its own fixed point, all at ``height`` (no contact, no motion)."""
    rng = np.random.default_rng(0)
    pose = rng.uniform(-0.3, 0.3, size=(J, 3))
    pose[:, 1] = height
    return np.repeat(pose[None], T, axis=0)


# ------------------------------------------------------------------------------------------------ jerk
@pytest.mark.parametrize("a,b", [(1.0, 0.0), (0.5, -2.0)])
def test_jerk_of_a_cubic_is_six_a(a, b):
    """x(t) = a t^3, z(t) = b t^3 (t in seconds) has third derivative (6a, 0, 6b) at every instant; the third
    finite difference is exact on a cubic, so every sample is 6 sqrt(a^2 + b^2) m/s^3."""
    T = 30
    t = np.arange(T) / FPS
    j = _still(T)
    j[:, :, 0] += a * t[:, None] ** 3
    j[:, :, 2] += b * t[:, None] ** 3
    r = quality_metrics([j])
    expect = 6 * np.hypot(a, b)
    assert r["jerk_mean"] == pytest.approx(expect, rel=1e-6)
    assert r["jerk_p95"] == pytest.approx(expect, rel=1e-6)


def test_jerk_zero_for_constant_velocity_and_p95_is_a_percentile():
    """A linear motion has no jerk. One joint on y = 2 t^3 among 22 still ones: 21 of every 22 samples are 0 and
    one is 12, so the mean is 12/22 and the 95th percentile falls among the zeros (95.5 % of the samples)."""
    T = 25
    t = np.arange(T) / FPS
    j = _still(T)
    j[:, :, 0] += 1.3 * t[:, None]
    assert quality_metrics([j])["jerk_mean"] == pytest.approx(0.0, abs=1e-6)
    j = _still(T)
    j[:, 5, 1] += 2.0 * t ** 3
    r = quality_metrics([j])
    assert r["jerk_mean"] == pytest.approx(12.0 / J, rel=1e-6)
    assert r["jerk_p95"] == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------------------ skating
def _sliding(T: int, speed: float, height: float) -> np.ndarray:
    """Left toe (10) slides along x at ``speed`` m/s at ``height``; right toe (11) planted on the floor."""
    j = _still(T)
    j[:, 10] = 0.0
    j[:, 10, 0] = speed * np.arange(T) / FPS
    j[:, 10, 1] = height
    j[:, 11] = (0.3, 0.0, 0.0)
    return j


def test_skating_speed_and_ratio_of_a_sliding_foot():
    """Both feet in contact on every step; speeds v and 0, so skate_speed = v/2; v = 1 m/s > 0.5 on every step,
    and even the zero-padded window at the ends averages 3/5 v = 0.6 > 0.5: skate_ratio = 1."""
    T = 40
    r = quality_metrics([_sliding(T, 1.0, 0.0)])
    assert r["skate_speed"] == pytest.approx(0.5, rel=1e-9)
    assert r["skate_ratio"] == pytest.approx(1.0)


def test_skating_window_at_the_ends():
    """v = 0.7 m/s: the 5-step window zero-padded at each end averages 3/5 v = 0.42 on the first and last step
    (not skating) and 4/5 v = 0.56 on the second and last-but-one (skating): (T-1-2)/(T-1) of the steps skate."""
    T = 41
    r = quality_metrics([_sliding(T, 0.7, 0.0)])
    assert r["skate_ratio"] == pytest.approx((T - 1 - 2) / (T - 1))


def test_skating_speed_threshold():
    """0.45 m/s is below GMD's 0.5 m/s: no step skates, but the contact speed is still reported (0.45/2)."""
    r = quality_metrics([_sliding(40, 0.45, 0.0)])
    assert r["skate_ratio"] == 0.0
    assert r["skate_speed"] == pytest.approx(0.225, rel=1e-9)


@pytest.mark.parametrize("height,in_contact", [(0.049, True), (0.051, False)])
def test_skating_contact_height_threshold(height, in_contact):
    """The contact height is 5 cm: a foot sliding at 4.9 cm skates, one at 5.1 cm does not (and its steps are not
    contact steps, so the mean contact speed is the planted foot's 0)."""
    r = quality_metrics([_sliding(40, 1.0, height)])
    assert r["skate_ratio"] == (1.0 if in_contact else 0.0)
    assert r["skate_speed"] == pytest.approx(0.5 if in_contact else 0.0, abs=1e-12)


def test_contact_needs_both_frames_of_a_step():
    """GMD's contact holds over a step only when the foot is low in both of its frames: a sliding foot alternating
    between 3 cm and 7 cm is never in contact, so nothing skates and the contact speed is the planted foot's 0."""
    T = 40
    j = _sliding(T, 1.0, 0.0)
    j[:, 10, 1] = np.where(np.arange(T) % 2 == 0, 0.03, 0.07)
    r = quality_metrics([j])
    assert r["skate_ratio"] == 0.0 and r["skate_speed"] == pytest.approx(0.0, abs=1e-12)


def test_skating_uses_horizontal_speed_only():
    """A foot moving only vertically (within the contact band) does not skate."""
    T = 40
    j = _sliding(T, 0.0, 0.0)
    j[:, 10, 1] = 0.02 + 0.02 * np.sin(np.arange(T))
    r = quality_metrics([j])
    assert r["skate_ratio"] == 0.0 and r["skate_speed"] == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------------------------ floor
def test_penetration_and_floating():
    """Lowest joint at -3 cm in half the frames and +10 cm in the other half: penetration mean 1.5 cm, max 3 cm;
    float mean 5 cm; float_ratio 1/2 (10 cm >= the 5 cm contact height)."""
    T = 20
    j = _still(T, height=1.0)
    j[:, 3, 1] = np.where(np.arange(T) < T // 2, -0.03, 0.10)
    r = quality_metrics([j])
    assert r["penetration_mean"] == pytest.approx(0.015)
    assert r["penetration_max"] == pytest.approx(0.03)
    assert r["float_mean"] == pytest.approx(0.05)
    assert r["float_ratio"] == pytest.approx(0.5)


def test_floor_height_is_a_parameter():
    j = _still(10, height=0.0)
    assert quality_metrics([j], cfg=QualityConfig(floor=0.02))["penetration_mean"] == pytest.approx(0.02)


# ------------------------------------------------------------------------------------------------ bones
def test_bone_drift_of_a_breathing_skeleton():
    """The pose scaled about the root by 1+e and 1-e on alternating frames: every bone's mean length is its rest
    length L, the drift is e L on every frame, the relative drift e."""
    e, T = 0.1, 20
    pose = _still(1)[0]
    pose[0] = 0.0
    s = np.where(np.arange(T) % 2 == 0, 1 + e, 1 - e)
    j = pose[None] * s[:, None, None]
    r = quality_metrics([j])
    from src.common.datasets import T2M_KINEMATIC_CHAIN

    bones = [(a, b) for c in T2M_KINEMATIC_CHAIN for a, b in zip(c[:-1], c[1:])]
    assert len(bones) == 21
    lengths = np.array([np.linalg.norm(pose[b] - pose[a]) for a, b in bones])
    assert r["bone_drift_rel"] == pytest.approx(e, rel=1e-9)
    assert r["bone_drift_mean"] == pytest.approx(e * lengths.mean(), rel=1e-9)


def test_rigid_motion_has_no_bone_drift():
    T = 30
    t = np.arange(T) / FPS
    j = _still(T)
    c, s = np.cos(t), np.sin(t)
    rot = np.stack([np.stack([c, 0 * c, s], -1), np.stack([0 * c, 1 + 0 * c, 0 * c], -1),
                    np.stack([-s, 0 * c, c], -1)], -2)            # (T, 3, 3) yaw
    j = np.einsum("tij,tkj->tki", rot, j) + t[:, None, None]
    assert quality_metrics([j])["bone_drift_mean"] == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------------------------ masks
def _step(T: int = 40, at: int = 20, d: float = 0.01) -> np.ndarray:
    """Joint 5 jumps by d along x between frames at-1 and at; everything else still."""
    j = _still(T)
    j[at:, 5, 0] += d
    return j


def test_masked_jerk_sees_the_jump_only_near_it():
    """A step of d at frame 20: the third differences starting at t = 17, 18, 19 are d, -2d, d (x fps^3), all
    others 0. Masking frames 20..23 keeps stencils t = 17..23 (7 of them x 22 joints): mean 4d fps^3 / (7 * 22).
    Masking frames 0..9 keeps only zeros."""
    T, d = 40, 0.01
    j = _step(T, 20, d)
    near = np.zeros(T, dtype=bool)
    near[20:24] = True
    far = np.zeros(T, dtype=bool)
    far[0:10] = True
    r = quality_metrics([j, j], masks=[near, far])
    whole = 4 * d * FPS ** 3 / ((T - 3) * J)
    assert r["jerk_mean"] == pytest.approx(whole, rel=1e-9)
    # pooled: the near motion's 7*22 samples (sum 4d fps^3) + the far motion's stencils t = 0..9 (10*22 zeros)
    assert r["masked_jerk_mean"] == pytest.approx(4 * d * FPS ** 3 / ((7 + 10) * J), rel=1e-9)
    assert quality_metrics([j], masks=[near])["masked_jerk_mean"] == pytest.approx(4 * d * FPS ** 3 / (7 * J),
                                                                                   rel=1e-9)
    assert quality_metrics([j], masks=[far])["masked_jerk_mean"] == pytest.approx(0.0, abs=1e-9)
    assert r["masked_frames"] == 14


def test_mask_selects_per_frame_and_per_step_samples():
    """Penetration only in frames 0..4; a mask on frames 10..19 sees none of it, one on 0..1 sees all of it there.
    Skating steps: a mask on frame 10 alone keeps steps 9->10 and 10->11 (2 steps)."""
    T = 30
    j = _sliding(T, 1.0, 0.0)
    j[:5, 3, 1] = -0.04
    m = np.zeros(T, dtype=bool)
    m[10:20] = True
    assert quality_metrics([j], masks=[m])["masked_penetration_mean"] == 0.0
    m = np.zeros(T, dtype=bool)
    m[0:2] = True
    assert quality_metrics([j], masks=[m])["masked_penetration_mean"] == pytest.approx(0.04)
    m = np.zeros(T, dtype=bool)
    m[10] = True
    s = motion_samples(j, m)
    assert s["skate"].shape == (2,) and s["contact_speed"].shape == (4,)   # 2 steps x 2 feet in contact
    assert s["height_min"].shape == (1,) and s["bone_drift"].shape == (1, 21)


def test_masks_none_entries_and_length_checks():
    j = _still(10)
    r = quality_metrics([j], masks=[None])
    assert r["masked_frames"] == 0 and np.isnan(r["masked_jerk_mean"])
    with pytest.raises(ValueError):
        quality_metrics([j], masks=[np.ones(9, dtype=bool)])
    with pytest.raises(ValueError):
        quality_metrics([j], masks=[])
    with pytest.raises(ValueError):
        quality_metrics([np.zeros((10, 21, 3))])
    with pytest.raises(ValueError):
        quality_metrics([])


def test_frames_from_tokens_by_hand():
    # token 1 of 4 -> frames 4..7; pad 2 -> 2..9
    m = frames_from_tokens([0, 1, 0, 0], unit=4, pad=2)
    assert m.tolist() == [i in range(2, 10) for i in range(16)]
    # ends clipped; explicit length shorter than T' * unit
    m = frames_from_tokens([1, 0, 0, 1], unit=4, pad=1, n_frames=14)
    assert m.tolist() == [i in range(0, 5) or i in range(11, 14) for i in range(14)]
    assert not frames_from_tokens([0, 0], unit=4, pad=3).any()


def test_replaced_token_mask_by_layer():
    idx = np.array([[3, 7], [5, 1], [3, 2], [9, 7]])       # (T'=4, Q=2)
    assert replaced_token_mask(idx, [3]).tolist() == [True, False, True, False]
    assert replaced_token_mask(idx, {1: [7]}).tolist() == [True, False, False, True]
    assert replaced_token_mask(idx, {0: [5], 1: [2]}).tolist() == [False, True, True, False]
    assert replaced_token_mask(idx[:, 0], [9]).tolist() == [False, False, False, True]
    with pytest.raises(ValueError):
        replaced_token_mask(idx, {2: [1]})


def test_vq_frames_per_token_is_the_decoders_factor():
    """frames_from_tokens's unit is RVQVAE.downsample; check on a tiny VQ that the decoder really gives that many
    frames per token (the decoder upsamples by 2 per level, so this is what ties the two)."""
    torch = pytest.importorskip("torch")
    from src.models.momask.vq import RVQVAE

    vq = RVQVAE(input_width=12, nb_code=8, code_dim=8, down_t=2, stride_t=2, width=8, depth=1,
                dilation_growth_rate=2, num_quantizers=2)
    out = vq.forward_decoder(torch.zeros(1, 5, 2, dtype=torch.long))
    assert vq.downsample == 4 and out.shape[1] == 5 * vq.downsample


# ------------------------------------------------------------------------------------------------ data
def test_synth_ground_truth_is_clean():
    """The synth motions are forward kinematics of a fixed skeleton, re-targeted by HumanML3D's processing: bones
    keep their length, the clip's lowest joint is on the floor (no penetration)."""
    from src.data.synth.generate import make_motion

    joints = [make_motion(0, i, violent=i % 2 == 0, mode="explicit")["joints"] for i in range(4)]
    r = quality_metrics(joints)
    assert r["bone_drift_rel"] < 1e-4
    assert r["penetration_max"] < 1e-4


@pytest.mark.skipif(not (REAL / "joints.npz").is_file(), reason="real mocap fixture not present")
def test_real_mocap_reference_properties():
    """The README of the real mocap states the clip's lowest point is at y = 0: no penetration, and the lowest
    frame touches the floor. It is forward kinematics of a rigid skeleton resampled 30 -> 20 fps by linear
    interpolation (which shortens a rotating bone only slightly): bone drift well under 1 %."""
    with np.load(REAL / "joints.npz") as z:
        walk = z["dataset-1_walk_normal_001"]
        kick = z["dataset-1_kick_normal_001"]
    for clip in (walk, kick):
        s = motion_samples(clip)
        assert s["height_min"].min() == pytest.approx(0.0, abs=1e-6)
        assert quality_metrics([clip])["penetration_max"] == pytest.approx(0.0, abs=1e-6)
    r = quality_metrics([walk, kick])
    assert r["bone_drift_rel"] < 0.005
    json.dumps(r)  # plain numbers


@pytest.mark.slow
def test_bench_quality_reference_writes_its_json(tmp_path):
    """bench/quality_reference.py end to end on 20 synth motions and a two-clip stand-in for the real mocap."""
    from bench.quality_reference import main

    real = tmp_path / "real"
    real.mkdir()
    walk = _sliding(30, 1.0, 0.0)
    kick = _still(25, height=0.0)
    np.savez(real / "joints.npz", walk_a=walk.astype(np.float32), kick_a=kick.astype(np.float32))
    (real / "labels.json").write_text(json.dumps({"walk_a": {"content": "walk", "violent": False},
                                                  "kick_a": {"content": "kick", "violent": True}}))
    out = tmp_path / "out"
    argv = ["--synth_n", "20", "--real_dir", str(real), "--out", str(out)]
    assert main(argv) == 0
    assert main(argv) == 2                           # exists without --force
    r = json.loads((out / "reference.json").read_text())
    assert r["thresholds"]["contact_height_m"] == 0.05 and r["thresholds"]["skate_speed_m_per_s"] == 0.5
    assert r["sets"]["synth"]["n_motions"] == 20
    assert r["sets"]["real/violent"]["n_motions"] == 1 and r["sets"]["real/locomotion"]["n_motions"] == 1
    # the stand-in walk is the hand-built sliding foot: GMD ratio 1 on it (see test_skating_speed_and_ratio...)
    assert r["sets"]["real/locomotion"]["skate_ratio"] == pytest.approx(1.0)
    assert "masked_jerk_mean" in r["sets"]["synth/action_transitions"]
