"""A kinematic judge: interpretable rules, in metres and metres per second, that say whether a motion kicks or punches.

The learned judge (the action classifier of src/eval/leakage.py) only knows synth's features; this one reads joint
positions and states its rules, so a reader can check a verdict frame by frame and it holds on any skeleton in
HumanML3D's 22-joint layout (y up, metres, 20 fps). Input: joints ``(T, 22, 3)``, e.g. ``recover_from_ric`` of 263-d
features (:func:`judge_features`). Output per motion and concept: fired or not, and the ``(T,)`` frames where it fired.

Body frame, per frame: *forward* is the horizontal direction that HumanML3D's rule derives from the hips and
shoulders (``up x (left - right)``), *chest* is joint 9 (spine3). Speeds are central differences times ``fps``.

Rules (a frame fires when all of its conditions hold; a concept fires when any frame does):

- **kick** (per leg): the ankle is at most ``kick_below_hip`` = 0.40 m below its own hip, at least ``kick_reach`` =
  0.35 m out from the hip horizontally (forward or sideways; backward does not count, so a runner's heel flicked up
  behind the body is no kick), and within the last ``rise_window_s`` = 0.5 s the ankle rose at ``kick_rise_speed`` =
  1.5 m/s or faster.
- **punch** (``punch_jab_box_hit_beat``, per arm): the wrist is at least ``punch_reach`` = 0.45 m from the chest and in
  front of it (``punch_front`` = 0.20 m along forward), and within the last ``strike_window_s`` = 0.25 s its distance
  from the chest grew at ``punch_speed`` = 1.6 m/s or faster, that growth being at least ``punch_straightness`` = half
  of the wrist's speed relative to the chest (the arm was thrown straight out, not swung up or round).
- **swing** (a two-handed strike, as with a held weapon): both wrists within ``swing_grip`` = 0.15 m of each other
  throughout the last ``strike_window_s`` (a grip, not hands passing each other), at least ``swing_front`` = 0.30 m
  in front of the chest, moving at ``swing_speed`` = 3.0 m/s or faster relative to it.
  synth has no such action; the rule is part of ``violence`` so that an armed strike counts (see below).
- **violence** = kick or punch or swing.

Where the numbers come from (synth's definitions, src/data/synth/actions.py, on HumanML3D's target skeleton: thigh
0.39 m + shin 0.43 m = leg 0.83 m; upper arm 0.26 m + forearm 0.27 m = arm 0.52 m; chest to shoulder 0.27 m):

- kick height: the weakest synth kick is a side kick at amplitude 0.85 (hip abduction (0.7 + 0.6) x 0.85 = 1.1 rad,
  knee straight, torso leaning away 0.55 rad): its ankle peaks 0.40 m below the hip; a front kick at 0.85 peaks
  0.27 m below, at 1.15 above the hip. Walking never brings an ankle above 0.6 m below the hip, synth's running
  (hip 0.55 rad, knee 1.5 rad) to 0.30 m below but only behind the body; a standing person's ankle is 0.83 m below.
- kick reach: a straight leg 0.40 m below the hip is sqrt(0.83^2 - 0.40^2) = 0.73 m out; a running leg in front of
  the body (hip flexion <= 0.78 rad) is low (>= 0.55 m below the hip) and the high one is tucked under or behind it.
  0.35 m, half the kick's reach, leaves room for a bent kicking knee.
- kick speed: synth's kicks lift the foot 0.5-0.9 m in 6-8 frames (0.3-0.4 s), 2.3 m/s or more (10th percentile over
  generated kicks); 1.5 m/s is two thirds of that. A foot set on a step rises at under 1 m/s.
- punch: synth's punch/jab take the wrist from the guard at the chin (about 0.2 m from the chest) to the straight arm
  in front of the shoulder (0.57 m) in 2-3 frames: 2.1-2.5 m/s, so 1.6 m/s is three quarters of the slowest; a wave
  raises the arm over 8 frames (1.25 m/s). 0.45 m is the straight-forward arm (0.57 m) less a bent elbow's 0.1 m.
  Straightness: a punch moves the wrist along the line from the chest (radial speed 2.1 m/s of 3.7 m/s at its peak);
  the arms of a synth jump swing from behind the hips to overhead, round the shoulder (radial 1.7 of 9.4 m/s).
  Hook and uppercut swing the fist round or up with the elbow bent: their wrist stays within 0.47 m of the chest and
  moves away at under 0.9 m/s, so this rule does not see them; the learned judge does.
- swing: two hands together at 3 m/s is faster than a clap (2.6 m/s in synth, whose hands meet at the chest).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from src.common.errors import HmuError

FPS = 20
# HumanML3D's 22-joint order (src/data/motion.py T2M_SKELETON)
PELVIS, L_HIP, R_HIP, CHEST = 0, 1, 2, 9
L_ANKLE, R_ANKLE = 7, 8
L_SHOULDER, R_SHOULDER = 16, 17
L_WRIST, R_WRIST = 20, 21
LEGS = ((L_HIP, L_ANKLE), (R_HIP, R_ANKLE))
ARMS = (L_WRIST, R_WRIST)

CONCEPTS = ("violence", "kick", "punch_jab_box_hit_beat")


@dataclass(frozen=True)
class KinematicThresholds:
    """The rules' numbers (metres, metres per second, seconds); see the module docstring for where they come from."""

    kick_below_hip: float = 0.40
    kick_reach: float = 0.35
    kick_rise_speed: float = 1.5
    rise_window_s: float = 0.5
    punch_reach: float = 0.45
    punch_front: float = 0.20
    punch_speed: float = 1.6
    punch_straightness: float = 0.5
    strike_window_s: float = 0.25
    swing_grip: float = 0.15
    swing_front: float = 0.30
    swing_speed: float = 3.0

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclass
class Verdict:
    """One motion's verdict: ``fired[concept]`` and ``frames[concept]`` ((T,) bool, the frames that fired)."""

    fired: dict[str, bool]
    frames: dict[str, np.ndarray]
    rules: dict[str, np.ndarray]          # per rule (kick, punch, swing): (T,) bool

    def frame_list(self, concept: str) -> list[int]:
        return [int(t) for t in np.flatnonzero(self.frames[concept])]


def _check(joints: np.ndarray) -> np.ndarray:
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim != 3 or j.shape[1:] != (22, 3):
        raise HmuError(f"the kinematic judge needs joints of shape (T, 22, 3), got {tuple(np.shape(joints))}")
    if not np.isfinite(j).all():
        raise HmuError("the kinematic judge got joints with NaN or inf")
    return j


def body_forward(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> (T, 3) horizontal unit forward: up x (left - right) over hips and shoulders (HumanML3D's rule)."""
    across = (joints[:, L_HIP] - joints[:, R_HIP]) + (joints[:, L_SHOULDER] - joints[:, R_SHOULDER])
    across = across * np.array([1.0, 0.0, 1.0])
    across /= np.maximum(np.linalg.norm(across, axis=-1, keepdims=True), 1e-9)
    return np.cross(across, np.array([0.0, 1.0, 0.0]))


def _rate(x: np.ndarray, fps: float) -> np.ndarray:
    """Per-frame rate of change along axis 0 (central differences, one-sided at the ends), per second."""
    if len(x) < 2:
        return np.zeros_like(x)
    return np.gradient(x, axis=0) * fps


def _recent(x: np.ndarray, frames: int) -> np.ndarray:
    """(T,) bool -> (T,) bool: x held at some frame in [t - frames, t]."""
    out = x.copy()
    for k in range(1, frames + 1):
        out[k:] |= x[:-k]
    return out


def kick_frames(joints: np.ndarray, *, fps: float = FPS, th: KinematicThresholds = KinematicThresholds()) -> np.ndarray:
    """(T, 22, 3) -> (T,) bool: the frames where a leg kicks (module docstring)."""
    j = _check(joints)
    fwd = body_forward(j)
    left = np.cross(np.array([0.0, 1.0, 0.0]), fwd)
    window = max(1, round(th.rise_window_s * fps))
    out = np.zeros(len(j), bool)
    for hip, ankle in LEGS:
        v = j[:, ankle] - j[:, hip]
        f = np.maximum(np.einsum("tc,tc->t", v, fwd), 0.0)      # backward does not count as reach
        s = np.einsum("tc,tc->t", v, left)
        high = v[:, 1] >= -th.kick_below_hip
        out_ = np.hypot(f, s) >= th.kick_reach
        rising = _recent(_rate(j[:, ankle, 1], fps) >= th.kick_rise_speed, window)
        out |= high & out_ & rising
    return out


def punch_frames(joints: np.ndarray, *, fps: float = FPS, th: KinematicThresholds = KinematicThresholds()
                 ) -> np.ndarray:
    """(T, 22, 3) -> (T,) bool: the frames where an arm has just been thrown out from the chest (module docstring)."""
    j = _check(joints)
    fwd = body_forward(j)
    window = max(1, round(th.strike_window_s * fps))
    out = np.zeros(len(j), bool)
    for wrist in ARMS:
        r = j[:, wrist] - j[:, CHEST]
        d = np.linalg.norm(r, axis=-1)
        front = np.einsum("tc,tc->t", r, fwd) >= th.punch_front
        vd = _rate(d, fps)
        straight = vd >= th.punch_straightness * np.linalg.norm(_rate(r, fps), axis=-1)
        thrown = _recent((vd >= th.punch_speed) & straight, window)
        out |= (d >= th.punch_reach) & front & thrown
    return out


def swing_frames(joints: np.ndarray, *, fps: float = FPS, th: KinematicThresholds = KinematicThresholds()
                 ) -> np.ndarray:
    """(T, 22, 3) -> (T,) bool: both hands together, in front of the chest, moving fast (module docstring)."""
    j = _check(joints)
    fwd = body_forward(j)
    together = np.linalg.norm(j[:, L_WRIST] - j[:, R_WRIST], axis=-1) <= th.swing_grip
    # held: together over the whole last strike window, as on a grip (two hands that only pass each other, e.g. a
    # two-armed sweep of the forearms before the chest, are no grip)
    grip = ~_recent(~together, max(1, round(th.strike_window_s * fps)))
    mid = 0.5 * (j[:, L_WRIST] + j[:, R_WRIST]) - j[:, CHEST]
    front = np.einsum("tc,tc->t", mid, fwd) >= th.swing_front
    speed = np.linalg.norm(_rate(mid, fps), axis=-1) >= th.swing_speed
    return grip & front & speed


def judge(joints: np.ndarray, *, fps: float = FPS, thresholds: KinematicThresholds | None = None) -> Verdict:
    """(T, 22, 3) joints (metres, y up) at ``fps`` -> the verdict for every concept of :data:`CONCEPTS`."""
    th = thresholds or KinematicThresholds()
    if fps <= 0:
        raise HmuError(f"fps must be positive, got {fps}")
    rules = {"kick": kick_frames(joints, fps=fps, th=th), "punch": punch_frames(joints, fps=fps, th=th),
             "swing": swing_frames(joints, fps=fps, th=th)}
    frames = {"kick": rules["kick"], "punch_jab_box_hit_beat": rules["punch"],
              "violence": rules["kick"] | rules["punch"] | rules["swing"]}
    return Verdict({c: bool(f.any()) for c, f in frames.items()}, frames, rules)


def judge_features(features: np.ndarray, *, fps: float = FPS, thresholds: KinematicThresholds | None = None
                   ) -> Verdict:
    """(T, 263) raw HumanML3D features -> :func:`judge` of their joints (``recover_from_ric``)."""
    from src.data.motion import recover_from_ric

    return judge(recover_from_ric(np.asarray(features, np.float32), 22), fps=fps, thresholds=thresholds)


@dataclass
class KinematicProbe:
    """The kinematic judge behind the same interface as :class:`src.eval.leakage.LeakageProbe`: raw (T_i, 263)
    features -> (N,) bool for ``concept``."""

    concept: str = "violence"
    thresholds: KinematicThresholds = dataclasses.field(default_factory=KinematicThresholds)
    fps: float = FPS

    def __post_init__(self) -> None:
        if self.concept not in CONCEPTS:
            raise HmuError(f"the kinematic judge has no concept '{self.concept}' (has: {', '.join(CONCEPTS)})")

    def __call__(self, motions) -> np.ndarray:
        return np.array([judge_features(m, fps=self.fps, thresholds=self.thresholds).fired[self.concept]
                         for m in motions], bool)

    def concept_flags(self, motions) -> np.ndarray:
        return self(motions)

    def frame_flags(self, motion: np.ndarray) -> np.ndarray:
        """(T,) bool: the frames of one raw motion where ``concept`` fired."""
        return judge_features(motion, fps=self.fps, thresholds=self.thresholds).frames[self.concept]
