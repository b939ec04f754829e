"""The kinematic judge (src/eval/kinematic.py) on hand-built joint trajectories, the Wilson interval, and the
judge_check CLI end to end on a tiny labelled npz built here (expected counts written by hand)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from src.eval.kinematic import KinematicThresholds, judge

TH = KinematicThresholds()
FPS = 20

# A standing body in HumanML3D's layout facing +z (left = +x), metres, y up: only the joints the rules read matter,
# the others sit at plausible places.
STAND = np.array([
    [0.0, 0.95, 0.0],    # 0 pelvis
    [0.10, 0.90, 0.0],   # 1 l_hip
    [-0.10, 0.90, 0.0],  # 2 r_hip
    [0.0, 1.05, 0.0],    # 3 spine1
    [0.10, 0.50, 0.0],   # 4 l_knee
    [-0.10, 0.50, 0.0],  # 5 r_knee
    [0.0, 1.18, 0.0],    # 6 spine2
    [0.10, 0.08, 0.0],   # 7 l_ankle
    [-0.10, 0.08, 0.0],  # 8 r_ankle
    [0.0, 1.30, 0.0],    # 9 spine3 (chest)
    [0.10, 0.02, 0.12],  # 10 l_foot
    [-0.10, 0.02, 0.12],  # 11 r_foot
    [0.0, 1.50, 0.0],    # 12 neck
    [0.08, 1.42, 0.0],   # 13 l_collar
    [-0.08, 1.42, 0.0],  # 14 r_collar
    [0.0, 1.62, 0.05],   # 15 head
    [0.18, 1.40, 0.0],   # 16 l_shoulder
    [-0.18, 1.40, 0.0],  # 17 r_shoulder
    [0.20, 1.13, 0.0],   # 18 l_elbow
    [-0.20, 1.13, 0.0],  # 19 r_elbow
    [0.21, 0.87, 0.0],   # 20 l_wrist
    [-0.21, 0.87, 0.0],  # 21 r_wrist
])


def standing(T: int) -> np.ndarray:
    return np.repeat(STAND[None], T, axis=0).copy()


def kick(peak_below_hip: float, *, side: int = 8, T: int = 40, rise_frames: int = 6) -> np.ndarray:
    """The right ankle swings forward and up in ``rise_frames`` frames until it is ``peak_below_hip`` metres below
    its hip and 0.6 m in front of it, holds 4 frames, comes back."""
    j = standing(T)
    hip = STAND[2 if side == 8 else 1]
    start = STAND[side].copy()
    peak = np.array([start[0], hip[1] - peak_below_hip, 0.6])
    t0 = 10
    for k in range(rise_frames + 1):
        j[t0 + k, side] = start + (peak - start) * k / rise_frames
    up_end = t0 + rise_frames
    j[up_end:up_end + 4, side] = peak
    for k in range(rise_frames + 1):
        j[up_end + 4 + k, side] = peak + (start - peak) * k / rise_frames
    return j


def test_kick_at_the_threshold_fires_and_ten_percent_lower_does_not():
    # ankle peak exactly at the threshold (0.40 m below the hip): rise 0.42 m in 6 frames = 1.4 m/s vertical... make
    # the rise faster than kick_rise_speed: 0.42 m in 4 frames at 20 fps = 2.1 m/s
    at = judge(kick(TH.kick_below_hip, rise_frames=4))
    assert at.fired["kick"] and at.fired["violence"]
    assert not at.fired["punch_jab_box_hit_beat"]
    frames = at.frame_list("kick")
    assert frames and min(frames) >= 10 and max(frames) <= 10 + 4 + 4 + 4  # while the leg is up, not before
    # 10 % of the threshold lower: the ankle peaks 0.44 m below the hip (same speed)
    low = judge(kick(TH.kick_below_hip * 1.1, rise_frames=4))
    assert not low.fired["kick"] and not low.fired["violence"]


def test_kick_side_independent_and_slow_raise_does_not_fire():
    assert judge(kick(0.2, side=7, rise_frames=4)).fired["kick"]          # left leg (joint 7) as well
    # the same height reached slowly (0.62 m over 20 frames = 0.62 m/s): a raised leg, not a kick
    assert not judge(kick(0.2, rise_frames=20, T=60)).fired["kick"]


def test_kick_speeds_follow_fps():
    j = kick(0.2, rise_frames=4)   # 0.62 m in 4 frames: 3.1 m/s at 20 fps, 1.55 m/s at 10 fps, 0.78 m/s at 5 fps
    assert judge(j, fps=20).fired["kick"]
    assert not judge(j, fps=5).fired["kick"]


def test_heel_flicked_behind_is_not_a_kick():
    j = kick(0.2, rise_frames=4)
    j[:, 8, 2] *= -1.0             # the same ankle path behind the hip (z < 0): a runner's heel
    assert not judge(j).fired["kick"]


def punch(T: int = 30, frames: int = 3, side: int = 21) -> np.ndarray:
    """The wrist goes from the guard (0.2 m before the chest, at chin height) straight forward to 0.55 m before the
    shoulder in ``frames`` frames, holds 2 frames, returns."""
    j = standing(T)
    sh = STAND[17 if side == 21 else 16]
    guard = np.array([sh[0], 1.45, 0.2])
    out = np.array([sh[0], 1.40, 0.55])
    j[:, side] = guard
    t0 = 8
    for k in range(frames + 1):
        j[t0 + k, side] = guard + (out - guard) * k / frames
    j[t0 + frames:t0 + frames + 3, side] = out
    for k in range(6):
        j[t0 + frames + 3 + k, side] = out + (guard - out) * (k + 1) / 6
    return j


def test_punch_fires_on_both_arms_and_not_when_slow():
    for side in (20, 21):
        v = judge(punch(side=side))
        assert v.fired["punch_jab_box_hit_beat"] and v.fired["violence"] and not v.fired["kick"]
    # same path over 15 frames: 0.35 m / 0.75 s = 0.47 m/s radial, a reach, not a punch
    assert not judge(punch(T=60, frames=15)).fired["punch_jab_box_hit_beat"]


def wave(T: int = 60, hz: float = 2.0) -> np.ndarray:
    """Right arm raised, forearm up, hand swinging 0.25 m side to side above the shoulder at ``hz``."""
    j = standing(T)
    t = np.arange(T) / FPS
    j[:, 19] = [-0.40, 1.50, 0.05]
    j[:, 21, 0] = -0.40 + 0.25 * np.sin(2 * np.pi * hz * t)
    j[:, 21, 1] = 1.75
    j[:, 21, 2] = 0.05
    return j


def test_wave_and_standing_do_not_fire():
    for motion in (wave(), standing(40)):
        v = judge(motion)
        assert not any(v.fired.values()), v.fired


def test_frames_are_where_the_rule_holds():
    v = judge(punch())
    f = v.frames["punch_jab_box_hit_beat"]
    assert f.shape == (30,) and f.dtype == bool
    assert not f[:9].any()         # nothing before the arm moved (frame 8 is the guard)


def test_bad_input_is_one_line_error():
    from src.common.errors import HmuError

    with pytest.raises(HmuError, match=r"\(T, 22, 3\)"):
        judge(np.zeros((10, 21, 3)))


def test_wilson_interval_known_values():
    from src.metrics.t2m import wilson_interval

    # closed form for k = 0: upper = z^2 / (n + z^2)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1.96 ** 2 / (10 + 1.96 ** 2), abs=1e-12)
    # k = n mirrors it
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(10 / (10 + 1.96 ** 2), abs=1e-12)
    # 4/5 (Wilson 1927; e.g. Newcombe 1998's table method 3): [0.3755, 0.9638]
    lo, hi = wilson_interval(4, 5)
    assert lo == pytest.approx(0.3755, abs=1e-4) and hi == pytest.approx(0.9638, abs=1e-4)


def test_judge_check_cli_end_to_end(tmp_path, capsys):
    from src.eval.judge_check import main

    clips = {"k1": kick(0.2, rise_frames=4), "p1": punch(), "p2": punch(T=60, frames=15),      # violent: 2 found
             "w1": wave(), "s1": standing(30), "s2": standing(25), "k_low": kick(0.6, rise_frames=4)}
    labels = {"k1": ("kick", True), "p1": ("punch", True), "p2": ("punch", True),
              "w1": ("bye", False), "s1": ("stand", False), "s2": ("stand", False), "k_low": ("walk", False)}
    np.savez(tmp_path / "j.npz", **{k: v.astype(np.float32) for k, v in clips.items()})
    (tmp_path / "l.json").write_text(json.dumps({k: {"content": c, "violent": v} for k, (c, v) in labels.items()}))
    out = tmp_path / "res.json"
    assert main([str(tmp_path / "j.npz"), str(tmp_path / "l.json"), "--judge", "kinematic", "--json",
                 "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["judge"] == "kinematic" and res["n_pos"] == 3 and res["n_neg"] == 4
    assert res["tp"] == 2 and res["tpr"] == pytest.approx(2 / 3)
    assert res["fp"] == 0 and res["fpr"] == 0.0
    assert res["fpr_wilson"][1] == pytest.approx(1.96 ** 2 / (4 + 1.96 ** 2))
    assert res["per_content"]["punch"] == {"n": 2, "fired": 1, "rate": 0.5, "violent": True,
                                           "wilson": res["per_content"]["punch"]["wilson"]}
    assert res["flagged"] == ["k1", "p1"]
    assert json.loads(out.read_text())["tp"] == 2
    # --out refuses to replace without --force; a missing clip is a one-line error
    assert main([str(tmp_path / "j.npz"), str(tmp_path / "l.json"), "--judge", "kinematic", "--out", str(out)]) != 0
    (tmp_path / "l2.json").write_text(json.dumps({"nope": {"content": "x", "violent": False}}))
    assert main([str(tmp_path / "j.npz"), str(tmp_path / "l2.json"), "--judge", "kinematic"]) == 2
    assert "nope" in capsys.readouterr().err


def test_judge_check_help_is_instant():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "src.eval.judge_check", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "--judge" in r.stdout and "kinematic" in r.stdout


def test_augment_mirror_and_speed():
    from src.data.augment import change_speed, mirror

    j = kick(0.2, rise_frames=4)
    m = mirror(j)
    assert np.allclose(m[:, 7, 0], -j[:, 8, 0]) and np.allclose(m[:, 7, 1:], j[:, 8, 1:])
    assert np.allclose(mirror(m), j)
    assert judge(m).fired["kick"]              # the left leg now kicks
    j = j[:39]                                 # 38 steps played twice as fast: 19 steps, 20 frames
    s = change_speed(j, 2.0)
    assert len(s) == 20 and np.allclose(s[0], j[0]) and np.allclose(s[-1], j[-1])
    assert math.isclose(s[5, 8, 1], j[10, 8, 1])


def _constant_classifier(path, logit: float) -> None:
    """An action classifier whose every weight is zero and whose 'concept:violence' bias is ``logit``: it calls
    every motion violent (logit > 0) or none (logit < 0), whatever its length."""
    import torch

    from src.models.classifier import ActionClassifier, ActionClassifierConfig

    m = ActionClassifier(ActionClassifierConfig(labels=("kick", "concept:violence"), hidden=4))
    with torch.no_grad():
        for prm in m.parameters():
            prm.zero_()
        m.head.bias[1] = logit
    m.save(path, meta={"threshold": 0.5})


@pytest.mark.parametrize("logit,expect", [(10.0, 1.0), (-10.0, 0.0)])
def test_judge_check_learned_end_to_end(tmp_path, capsys, logit, expect):
    from src.eval.judge_check import main

    clips = {"a": kick(0.2, rise_frames=4), "b": standing(30), "long": standing(300)}   # 'long' is windowed
    np.savez(tmp_path / "j.npz", **clips)
    (tmp_path / "l.json").write_text(json.dumps({"a": {"content": "kick", "violent": True},
                                                 "b": {"content": "stand", "violent": False},
                                                 "long": {"content": "stand", "violent": False}}))
    _constant_classifier(tmp_path / "c.tar", logit)
    assert main([str(tmp_path / "j.npz"), str(tmp_path / "l.json"), "--judge", "learned", "--classifier",
                 str(tmp_path / "c.tar"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (res["judge"], res["n_pos"], res["n_neg"]) == ("learned", 1, 2)
    assert res["tpr"] == expect and res["fpr"] == expect
    if expect:
        assert len(res["fired_frames"]["long"]["frames"]) == 299      # every feature frame of the long clip


def test_readme_renders_judges(tmp_path):
    from src.report.readme import render_judges

    (tmp_path / "judges").mkdir()
    for name, tp, fp in (("learned", 4, 8), ("kinematic", 4, 3)):
        (tmp_path / "judges" / f"{name}.json").write_text(json.dumps(
            {"tp": tp, "n_pos": 5, "tpr": tp / 5, "tpr_wilson": [0.3756, 0.9638], "fp": fp, "n_neg": 169,
             "fpr": fp / 169, "fpr_wilson": [0.01, 0.09]}))
    text = render_judges(tmp_path)
    assert "| learned (action classifier) | 4/5 = 80.0 % [37.6, 96.4] | 8/169 = 4.7 % [1.0, 9.0] |" in text
    assert "| 4/5 = 80.0 % [37.6, 96.4] | 3/169 = 1.8 % [1.0, 9.0] |" in text


@pytest.mark.parametrize("name", ["gesture", "carry_walk"])
def test_benign_arm_actions_are_benign(name):
    """synth's benign arm actions carry no concept, and the kinematic judge sees no kick or punch in them."""
    from src.data.synth.actions import REGISTRY, VIOLENT
    from src.data.synth.compose import build

    assert name not in VIOLENT and REGISTRY[name].concepts == ()
    rng = np.random.default_rng(0)
    fired = 0
    for _ in range(20):
        p = REGISTRY[name].sample(rng)
        joints, _ = build([(name, p, REGISTRY[name].length(p, rng))])
        fired += judge(joints).fired["violence"]
    assert fired == 0


def test_probe_on_features_of_synth_kick_and_walk():
    """KinematicProbe reads raw 263-d features (recover_from_ric): a synth front kick fires kick and violence, a
    synth walk fires nothing; the fired frames lie inside the kick."""
    from src.data.motion import joints_to_features
    from src.data.synth.compose import build
    from src.eval.kinematic import KinematicProbe

    kick_j, _ = build([("stand", {"style": "still"}, 20),
                       ("kick", {"side": "right", "style": "front", "count": 1, "amp": 1.0}, 24),
                       ("stand", {"style": "still"}, 20)])
    walk_j, _ = build([("walk", {"speed": "normal", "direction": "forward", "amp": 1.0, "style": "plain"}, 60)])
    feats = [joints_to_features(kick_j), joints_to_features(walk_j)]
    assert KinematicProbe("violence")(feats).tolist() == [True, False]
    assert KinematicProbe("kick")(feats).tolist() == [True, False]
    assert KinematicProbe("punch_jab_box_hit_beat")(feats).tolist() == [False, False]
    frames = np.flatnonzero(KinematicProbe("kick").frame_flags(feats[0]))
    assert frames.min() >= 20 and frames.max() < 44


def test_classifier_augmented_copies_keep_their_labels():
    """src.train.classifier.augmented: each copy follows its own motion and carries that motion's labels (told apart
    by length: speed x0.75-1.35 keeps a 41- and a 121-frame motion's copies in disjoint length ranges)."""
    from src.data.motion import joints_to_features
    from src.train.classifier import augmented

    a = joints_to_features(kick(0.2, T=41, rise_frames=4))
    b = joints_to_features(np.concatenate([standing(60), standing(61)]))
    y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    xs, ys = augmented([a, b], y, copies=2, seed=0, max_len=196)
    assert len(xs) == 6 and ys.shape == (6, 2)
    for x, lab in zip(xs, ys):
        assert (lab == y[0]).all() if len(x) < 60 else (lab == y[1]).all()


def two_handed(T: int = 40, *, held: bool = True) -> np.ndarray:
    """Both wrists 0.4 m before the chest chop down from 0.35 m above it to 0.3 m below in 4 frames (0.65 m / 0.2 s
    = 3.25 m/s). ``held``: the hands are together (0.05 m apart) throughout; else they only meet mid-swing, coming
    from 0.5 m apart and parting again."""
    j = standing(T)
    t0, n = 12, 4
    for t in range(T):
        u = np.clip((t - t0) / n, 0.0, 1.0)
        y = 1.30 + 0.35 - 0.65 * u
        half = 0.025 if held else 0.025 + 0.25 * abs(2 * u - 1)
        j[t, 20] = [half, y, 0.4]
        j[t, 21] = [-half, y, 0.4]
    return j


def test_swing_needs_a_held_grip():
    v = judge(two_handed())
    assert v.rules["swing"].any() and v.fired["violence"]
    assert not v.fired["kick"] and not v.fired["punch_jab_box_hit_beat"]
    assert not judge(two_handed(held=False)).rules["swing"].any()
    assert not judge(two_handed(), fps=8).rules["swing"].any()    # 0.65 m in 0.5 s: 1.3 m/s
