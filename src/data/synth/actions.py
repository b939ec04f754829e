"""Parametrised action generators on the 22-joint skeleton: joint angles + root motion per frame, at 20 fps.

Every generator takes ``(T, p)`` (frames, parameters drawn by its ``sample``) and returns a :class:`Clip`. Angles of a
"side" limb are written for the left side and mirrored (y and z negated) for the right. Sign conventions are those of
:func:`src.data.synth.skeleton.euler_to_matrix`: x < 0 flexes hip/shoulder forward, x > 0 bends the knee, x < 0 bends
the elbow, z > 0 abducts a left limb, y > 0 turns a segment to the body's left.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import skeleton as sk

FPS = 20
SPEEDS = {"slow": 0.75, "normal": 1.0, "fast": 1.3}


@dataclass
class Clip:
    """One action: angles (T, 22, 3); per-frame forward/lateral velocity (m/frame, heading frame), yaw rate
    (rad/frame, + = turn left) and lift (m, added to the grounded root height)."""

    angles: np.ndarray
    fwd: np.ndarray
    lat: np.ndarray
    yaw_rate: np.ndarray
    lift: np.ndarray

    @property
    def T(self) -> int:
        return len(self.angles)


@dataclass(frozen=True)
class Action:
    name: str
    make: Callable[[int, dict], Clip]
    sample: Callable[[np.random.Generator], dict]
    length: Callable[[dict, np.random.Generator], int]
    concepts: tuple[str, ...] = ()
    weight: float = 1.0
    flags: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- helpers
def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def keyframes(u: np.ndarray, times, values) -> np.ndarray:
    """Smooth (eased) piecewise interpolation of ``values`` at ``times`` (both increasing in u in [0, 1])."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    idx = np.clip(np.searchsorted(times, u, side="right") - 1, 0, len(times) - 2)
    t0, t1 = times[idx], times[idx + 1]
    w = smoothstep((u - t0) / np.maximum(t1 - t0, 1e-9))
    out = values[idx] + (values[idx + 1] - values[idx]) * w
    out = np.where(u <= times[0], values[0], out)
    return np.where(u >= times[-1], values[-1], out)


def envelope(T: int, ramp: int) -> np.ndarray:
    """0 -> 1 over ``ramp`` frames at the start, 1 -> 0 over ``ramp`` frames at the end."""
    t = np.arange(T, dtype=np.float64)
    r = max(1, min(ramp, T // 2))
    return smoothstep(t / r) * smoothstep((T - 1 - t) / r)


def neutral(T: int) -> np.ndarray:
    """Standing pose: arms hanging slightly away from the body, elbows a little bent."""
    a = np.zeros((T, sk.J, 3))
    a[:, sk.L_SHOULDER, 2], a[:, sk.R_SHOULDER, 2] = 0.1, -0.1
    a[:, [sk.L_ELBOW, sk.R_ELBOW], 0] = -0.15
    return a


def sgn(side: str) -> float:
    return 1.0 if side == "left" else -1.0


def other(side: str) -> str:
    return "right" if side == "left" else "left"


def limb(name: str, side: str) -> int:
    return sk.LIMB[name][0 if side == "left" else 1]


def add(a: np.ndarray, name: str, side: str, x=0.0, y=0.0, z=0.0) -> None:
    """Add left-convention angles to a side limb (mirrored for the right)."""
    s = sgn(side)
    j = limb(name, side)
    a[:, j, 0] += x
    a[:, j, 1] += s * np.asarray(y)
    a[:, j, 2] += s * np.asarray(z)


def spine(a: np.ndarray, x=0.0, y=0.0, z=0.0) -> None:
    """Spread a torso bend over the three spine joints."""
    for j, w in ((sk.SPINE1, 0.4), (sk.SPINE2, 0.35), (sk.SPINE3, 0.25)):
        a[:, j, 0] += w * np.asarray(x)
        a[:, j, 1] += w * np.asarray(y)
        a[:, j, 2] += w * np.asarray(z)


def clip(a, fwd=None, lat=None, yaw_rate=None, lift=None) -> Clip:
    T = len(a)
    z = np.zeros(T)

    def full(v):
        return z.copy() if v is None else np.broadcast_to(np.asarray(v, dtype=np.float64), (T,)).copy()

    return Clip(a, full(fwd), full(lat), full(yaw_rate), full(lift))


def seconds(T: int) -> np.ndarray:
    return np.arange(T, dtype=np.float64) / FPS


def frac(T: int) -> np.ndarray:
    return np.arange(T, dtype=np.float64) / max(T - 1, 1)


def gait(a: np.ndarray, phi: np.ndarray, amp: float, *, hip=0.38, knee=0.7, arm=0.3, env=None) -> None:
    """Alternating leg swing and counter-swinging arms for phase ``phi`` (left leg forward when sin(phi) > 0)."""
    e = 1.0 if env is None else env
    s = np.sin(phi)
    c = np.cos(phi)
    add(a, "hip", "left", x=-hip * amp * s * e)
    add(a, "hip", "right", x=hip * amp * s * e)
    add(a, "knee", "left", x=(0.08 + knee * amp * np.maximum(0, c) ** 2) * e)
    add(a, "knee", "right", x=(0.08 + knee * amp * np.maximum(0, -c) ** 2) * e)
    add(a, "ankle", "left", x=-0.15 * amp * np.maximum(0, c) * e)
    add(a, "ankle", "right", x=-0.15 * amp * np.maximum(0, -c) * e)
    add(a, "shoulder", "left", x=arm * amp * s * e)
    add(a, "shoulder", "right", x=-arm * amp * s * e)
    a[:, sk.PELVIS, 1] += 0.08 * amp * s * e


def _rng_choice(rng, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def _speed(rng) -> str:
    return _rng_choice(rng, ["slow", "normal", "fast"], [0.25, 0.5, 0.25])


def _side(rng) -> str:
    return _rng_choice(rng, ["left", "right"])


def _flex_len(lo: int, hi: int):
    return lambda p, rng: int(rng.integers(lo, hi + 1))


REGISTRY: dict[str, Action] = {}


def action(name: str, *, sample, length, concepts=(), weight=1.0, **flags):
    def deco(fn):
        REGISTRY[name] = Action(name, fn, sample, length, tuple(concepts), weight, flags)
        return fn
    return deco


# ------------------------------------------------------------------------------------------------ locomotion
def _walk_sample(rng):
    d = _rng_choice(rng, ["forward", "forward", "forward", "backward", "left", "right", "circle_left",
                          "circle_right"])
    return {"speed": _speed(rng), "direction": d, "amp": float(rng.uniform(0.8, 1.2)),
            "style": _rng_choice(rng, ["plain", "plain", "plain", "arms_still"])}


@action("walk", sample=_walk_sample, length=_flex_len(36, 80), weight=2.5, locomotion=True)
def walk(T, p):
    a = neutral(T)
    sp = SPEEDS[p["speed"]]
    freq = 0.9 * sp
    t = seconds(T)
    env = envelope(T, 6)
    d = p["direction"]
    phi = 2 * np.pi * freq * t * (-1.0 if d == "backward" else 1.0)
    side_walk = d in ("left", "right")
    amp = p["amp"] * (0.45 if side_walk else 1.0)
    gait(a, phi, amp, arm=0.0 if p["style"] == "arms_still" or side_walk else 0.3, env=env)
    if side_walk:
        open_ = 0.18 * p["amp"] * np.maximum(0, np.sin(phi)) * env
        add(a, "hip", d, z=open_)
        add(a, "hip", other(d), z=0.5 * open_)
    v = 4 * 0.85 * np.sin(0.38 * amp) * freq * 0.9 / FPS
    fwd = lat = yaw = 0.0
    if d == "forward" or d.startswith("circle"):
        fwd = v * env
    elif d == "backward":
        fwd = -0.7 * v * env
    else:
        lat = sgn(d) * 0.35 * sp / FPS * env
    if d.startswith("circle"):
        yaw = sgn(d.split("_")[1]) * float(p.get("turns", 0.5)) * 2 * np.pi / T * env
    return clip(a, fwd=fwd, lat=lat, yaw_rate=yaw)


def _run_sample(rng):
    d = _rng_choice(rng, ["forward", "forward", "forward", "in_place", "circle_left", "circle_right"])
    return {"speed": _rng_choice(rng, ["normal", "fast"]), "direction": d, "amp": float(rng.uniform(0.85, 1.15))}


@action("run", sample=_run_sample, length=_flex_len(30, 64), weight=1.5, locomotion=True)
def run(T, p):
    a = neutral(T)
    sp = SPEEDS[p["speed"]]
    freq = 1.35 * sp
    phi = 2 * np.pi * freq * seconds(T)
    env = envelope(T, 6)
    amp = p["amp"] * (0.55 if p["direction"] == "in_place" else 1.0)
    gait(a, phi, amp, hip=0.55, knee=1.5, arm=0.55, env=env)
    add(a, "elbow", "left", x=-1.2 * env)
    add(a, "elbow", "right", x=-1.2 * env)
    add(a, "hip", "left", x=-0.15 * env)
    add(a, "hip", "right", x=-0.15 * env)
    spine(a, x=0.25 * env)
    lift = 0.05 * amp * np.abs(np.sin(phi)) * env
    v = 0.0 if p["direction"] == "in_place" else 4 * 0.85 * np.sin(0.55 * amp) * freq * 1.05 / FPS * env
    yaw = 0.0
    if p["direction"].startswith("circle"):
        yaw = sgn(p["direction"].split("_")[1]) * np.pi / T * env
    return clip(a, fwd=v, yaw_rate=yaw, lift=lift)


def _jump_sample(rng):
    style = _rng_choice(rng, ["up", "forward", "repeated"], [0.4, 0.35, 0.25])
    return {"style": style, "count": int(rng.integers(2, 4)) if style == "repeated" else 1,
            "height": float(rng.uniform(0.2, 0.4))}


@action("jump", sample=_jump_sample, length=lambda p, rng: int(p["count"] * rng.integers(24, 30) + 8),
        concepts=("jump_leap_hop",), weight=1.2)
def jump(T, p):
    a = neutral(T)
    t = np.arange(T, dtype=np.float64)
    n = p["count"]
    per = (T - 8) / n
    lift = np.zeros(T)
    crouch = np.zeros(T)
    up = np.zeros(T)
    fwd = np.zeros(T)
    for k in range(n):
        u = (t - 4 - k * per) / per
        crouch += keyframes(u, [0, 0.3, 0.42, 0.66, 0.8, 1.0], [0, 1, 0.2, 0.1, 0.8, 0])
        up += keyframes(u, [0, 0.3, 0.45, 0.62, 0.8], [0, 0, 1, 0.6, 0])
        s = (u - 0.42) / 0.26
        inside = (s > 0) & (s < 1)
        lift += np.where(inside, p["height"] * 4 * s * (1 - s), 0.0)
        if p["style"] == "forward":
            fwd += np.where(inside, float(p.get("dist", 0.7)) / (0.26 * per), 0.0)
    for side in ("left", "right"):
        add(a, "hip", side, x=-1.0 * crouch)
        add(a, "knee", side, x=1.5 * crouch)
        add(a, "ankle", side, x=-0.35 * crouch + 0.3 * up)
        add(a, "shoulder", side, x=0.7 * crouch - 2.4 * up)
    spine(a, x=0.45 * crouch)
    return clip(a, fwd=fwd, lift=lift)


def _hop_sample(rng):
    return {"side": _side(rng), "count": int(rng.integers(2, 6)),
            "direction": _rng_choice(rng, ["in_place", "forward"])}


@action("hop", sample=_hop_sample, length=lambda p, rng: int(p["count"] * 10 + 16), concepts=("jump_leap_hop",),
        weight=0.7)
def hop(T, p):
    a = neutral(T)
    env = envelope(T, 8)
    held = other(p["side"])  # "hops on the left leg": the right foot is held up behind
    add(a, "hip", held, x=-0.35 * env)
    add(a, "knee", held, x=1.4 * env)
    add(a, "shoulder", "left", z=0.4 * env)
    add(a, "shoulder", "right", z=0.4 * env)
    t = np.arange(T, dtype=np.float64)
    ph = np.clip((t - 8) / max(T - 16, 1), 0, 1) * p["count"]
    bounce = np.sin(np.pi * ph) ** 2
    add(a, "knee", p["side"], x=0.35 * (1 - bounce) * env)
    add(a, "hip", p["side"], x=-0.2 * (1 - bounce) * env)
    lift = 0.1 * np.abs(np.sin(np.pi * ph)) * ((ph > 0) & (ph < p["count"]))
    fwd = (0.5 / FPS) * env if p["direction"] == "forward" else 0.0
    return clip(a, fwd=fwd, lift=lift)


@action("crawl", sample=lambda rng: {"speed": _speed(rng)}, length=_flex_len(48, 90),
        concepts=("crawl_creep_slide",), weight=0.8, locomotion=True)
def crawl(T, p):
    a = neutral(T)
    env = envelope(T, 14)
    sp = SPEEDS[p["speed"]]
    phi = 2 * np.pi * 0.7 * sp * seconds(T)
    s = np.sin(phi)
    a[:, sk.PELVIS, 0] += 1.3 * env
    for side, sign in (("left", 1.0), ("right", -1.0)):
        add(a, "hip", side, x=(-1.35 - 0.25 * sign * s) * env)
        add(a, "knee", side, x=(1.45 + 0.15 * sign * np.cos(phi)) * env)
        add(a, "ankle", side, x=0.4 * env)
        add(a, "shoulder", side, x=(-1.3 + 0.25 * sign * s) * env, z=0.1 * env)
        add(a, "elbow", side, x=0.1 * env)
    a[:, sk.NECK, 0] -= 0.8 * env
    spine(a, x=-0.15 * env)
    return clip(a, fwd=0.3 * sp / FPS * env)


@action("squat", sample=lambda rng: {"count": int(rng.integers(1, 4)), "amp": float(rng.uniform(0.75, 1.0)),
                                      "speed": _speed(rng)},
        length=lambda p, rng: int(p["count"] * 30 / SPEEDS[p["speed"]] + 10), concepts=("duck_squat",), weight=1.0)
def squat(T, p):
    a = neutral(T)
    u = np.clip((np.arange(T) - 5) / max(T - 10, 1), 0, 1)
    d = p["amp"] * np.sin(np.pi * p["count"] * u) ** 2
    for side in ("left", "right"):
        add(a, "hip", side, x=-1.7 * d, z=0.15 * d)
        add(a, "knee", side, x=2.1 * d)
        add(a, "ankle", side, x=-0.5 * d)
        add(a, "shoulder", side, x=-1.4 * d)
    spine(a, x=0.5 * d)
    return clip(a)


@action("sit", sample=lambda rng: {"style": _rng_choice(rng, ["chair_stay", "chair_up", "floor"], [0.4, 0.4, 0.2])},
        length=lambda p, rng: int(rng.integers(40, 70)), weight=1.0)
def sit(T, p):
    a = neutral(T)
    u = frac(T)
    if p["style"] == "chair_up":
        d = keyframes(u, [0, 0.35, 0.65, 1.0], [0, 1, 1, 0])
    else:
        d = keyframes(u, [0, 0.45, 1.0], [0, 1, 1])
    move = keyframes(u, [0, 0.2, 0.35, 0.5], [0, 1, 1, 0]) if p["style"] != "floor" else 0 * u
    if p["style"] == "floor":
        for side in ("left", "right"):
            add(a, "hip", side, x=-1.5 * d, z=0.1 * d)
            add(a, "knee", side, x=0.35 * d)
            add(a, "shoulder", side, x=0.5 * d, z=0.15 * d)
        spine(a, x=-0.2 * d)
    else:
        for side in ("left", "right"):
            add(a, "hip", side, x=-1.55 * d, z=0.1 * d)
            add(a, "knee", side, x=1.55 * d)
            add(a, "shoulder", side, x=-0.35 * d)
            add(a, "elbow", side, x=-0.7 * d)
        spine(a, x=0.35 * move)
    return clip(a)


def _turn_sample(rng):
    return {"side": _side(rng), "angle": _rng_choice(rng, ["around", "quarter"])}


@action("turn", sample=_turn_sample, length=lambda p, rng: int(rng.integers(30, 46)), weight=1.0)
def turn(T, p):
    a = neutral(T)
    env = envelope(T, 5)
    total = np.pi if p["angle"] == "around" else np.pi / 2
    w = np.sin(np.pi * frac(T)) ** 2
    yaw = sgn(p["side"]) * total * w / w.sum()
    gait(a, 2 * np.pi * 1.3 * seconds(T), 0.35, arm=0.1, env=env)
    return clip(a, yaw_rate=yaw)


@action("side_step", sample=lambda rng: {"side": _side(rng), "count": int(rng.integers(2, 5))},
        length=lambda p, rng: int(p["count"] * 14 + 10), weight=0.8, locomotion=True)
def side_step(T, p):
    a = neutral(T)
    env = envelope(T, 5)
    t = np.arange(T, dtype=np.float64)
    ph = np.clip((t - 5) / max(T - 10, 1), 0, 1) * p["count"]
    lead = np.sin(np.pi * np.clip(ph % 1 * 2, 0, 1)) * (ph < p["count"])
    trail = np.sin(np.pi * np.clip(ph % 1 * 2 - 1, 0, 1)) * (ph < p["count"])
    add(a, "hip", p["side"], z=0.3 * lead * env)
    add(a, "knee", p["side"], x=0.3 * lead * env)
    add(a, "knee", other(p["side"]), x=0.3 * trail * env)
    add(a, "shoulder", "left", z=0.15 * env)
    add(a, "shoulder", "right", z=0.15 * env)
    return clip(a, lat=sgn(p["side"]) * 0.4 / FPS * env)


# --------------------------------------------------------------------------------------------- upper body
@action("stand", sample=lambda rng: {"style": _rng_choice(rng, ["still", "look", "shift"])},
        length=_flex_len(28, 60), weight=0.9)
def stand(T, p):
    a = neutral(T)
    t = seconds(T)
    spine(a, x=0.03 * np.sin(2 * np.pi * 0.3 * t))
    if p["style"] == "look":
        a[:, sk.NECK, 1] += 0.7 * np.sin(2 * np.pi * frac(T)) * envelope(T, 6)
    elif p["style"] == "shift":
        a[:, sk.PELVIS, 2] += 0.08 * np.sin(2 * np.pi * 0.5 * t)
        spine(a, z=-0.1 * np.sin(2 * np.pi * 0.5 * t))
    return clip(a)


def _wave_sample(rng):
    return {"side": _side(rng), "both": bool(rng.random() < 0.25), "count": int(rng.integers(2, 5))}


@action("wave", sample=_wave_sample, length=lambda p, rng: int(p["count"] * 11 + 18), weight=1.0)
def wave(T, p):
    a = neutral(T)
    env = envelope(T, 8)
    t = np.arange(T, dtype=np.float64)
    osc = np.sin(2 * np.pi * p["count"] * np.clip((t - 8) / max(T - 16, 1), 0, 1))
    for side in (["left", "right"] if p["both"] else [p["side"]]):
        add(a, "shoulder", side, x=-0.3 * env, z=2.2 * env)
        add(a, "elbow", side, x=-0.3 * env, z=(0.5 + 0.45 * osc) * env)
    return clip(a)


@action("throw", sample=lambda rng: {"side": _side(rng), "style": _rng_choice(rng, ["overhand", "underhand"])},
        length=lambda p, rng: int(rng.integers(30, 42)), concepts=("throw",), weight=0.9)
def throw(T, p):
    a = neutral(T)
    u = frac(T)
    s, o = p["side"], other(p["side"])
    k = [0, 0.4, 0.52, 0.65, 1.0]
    if p["style"] == "overhand":
        add(a, "shoulder", s, x=keyframes(u, k, [0, -2.5, -1.5, -0.7, 0]), z=keyframes(u, k, [0, 0.5, 0.1, 0, 0]),
            y=keyframes(u, k, [0, 0, -0.3, -0.5, 0]))
        add(a, "elbow", s, x=keyframes(u, k, [0, -1.7, -0.15, -0.3, 0]))
    else:
        add(a, "shoulder", s, x=keyframes(u, k, [0, 0.8, -1.2, -1.5, 0]))
        add(a, "elbow", s, x=keyframes(u, k, [0, -0.2, -0.1, -0.3, 0]))
    spine(a, y=sgn(s) * keyframes(u, k, [0, 0.5, -0.3, -0.4, 0]), x=keyframes(u, k, [0, -0.1, 0.25, 0.3, 0]))
    add(a, "hip", o, x=keyframes(u, k, [0, -0.35, -0.35, -0.2, 0]))
    add(a, "knee", o, x=keyframes(u, k, [0, 0.3, 0.2, 0.2, 0]))
    return clip(a)


def _dance_sample(rng):
    return {"style": _rng_choice(rng, ["sway", "spin", "bounce"]), "tempo": float(rng.uniform(1.6, 2.2))}


@action("dance", sample=_dance_sample, length=_flex_len(40, 80), weight=1.0)
def dance(T, p):
    a = neutral(T)
    env = envelope(T, 8)
    b = 2 * np.pi * p["tempo"] / 2 * seconds(T)
    yaw = 0.0
    lift = 0.0
    if p["style"] == "sway":
        a[:, sk.PELVIS, 2] += 0.15 * np.sin(b) * env
        spine(a, z=-0.3 * np.sin(b) * env)
        for side, ph in (("left", 0.0), ("right", np.pi)):
            add(a, "shoulder", side, z=(1.9 + 0.5 * np.sin(b + ph)) * env)
            add(a, "elbow", side, x=-0.5 * env)
            add(a, "knee", side, x=0.2 * (1 + np.sin(b + ph)) * env)
    elif p["style"] == "spin":
        for side in ("left", "right"):
            add(a, "shoulder", side, z=1.45 * env)
            add(a, "knee", side, x=0.15 * (1 - np.cos(2 * b)) * env)
        w = np.sin(np.pi * frac(T)) ** 2
        yaw = 2 * np.pi * w / w.sum()
    else:
        bounce = np.abs(np.sin(b))
        for side, ph in (("left", 0.0), ("right", np.pi)):
            add(a, "knee", side, x=0.45 * bounce * env)
            add(a, "hip", side, x=-0.3 * bounce * env)
            add(a, "shoulder", side, x=(-1.2 + 0.7 * np.sin(b + ph)) * env)
            add(a, "elbow", side, x=-1.2 * env)
        lift = 0.04 * (1 - bounce) * env
    return clip(a, yaw_rate=yaw, lift=lift)


@action("clap", sample=lambda rng: {"count": int(rng.integers(2, 6))},
        length=lambda p, rng: int(p["count"] * 9 + 16), weight=0.8)
def clap(T, p):
    a = neutral(T)
    env = envelope(T, 8)
    t = np.arange(T, dtype=np.float64)
    osc = 0.5 - 0.5 * np.cos(2 * np.pi * p["count"] * np.clip((t - 8) / max(T - 16, 1), 0, 1))
    for side in ("left", "right"):
        add(a, "shoulder", side, x=-1.0 * env, z=-0.1 * env, y=(0.4 - 0.75 * osc) * env)
        add(a, "elbow", side, x=-0.9 * env)
    return clip(a)


@action("bow", sample=lambda rng: {"amp": float(rng.uniform(0.6, 1.0))}, length=lambda p, rng: int(rng.integers(36, 52)),
        weight=0.7)
def bow(T, p):
    a = neutral(T)
    d = p["amp"] * keyframes(frac(T), [0, 0.1, 0.4, 0.6, 0.9, 1.0], [0, 0, 1, 1, 0, 0])
    spine(a, x=1.3 * d)
    a[:, sk.NECK, 0] += 0.2 * d
    for side in ("left", "right"):
        add(a, "hip", side, x=-0.2 * d)
    return clip(a)


@action("stretch", sample=lambda rng: {"style": _rng_choice(rng, ["up", "side", "arms_out"]), "side": _side(rng)},
        length=lambda p, rng: int(rng.integers(40, 60)), weight=0.8)
def stretch(T, p):
    a = neutral(T)
    d = keyframes(frac(T), [0, 0.1, 0.35, 0.7, 0.95, 1.0], [0, 0, 1, 1, 0, 0])
    for side in ("left", "right"):
        if p["style"] == "arms_out":
            add(a, "shoulder", side, z=1.45 * d, y=0.3 * d)
            add(a, "elbow", side, x=0.15 * d)
        else:
            add(a, "shoulder", side, x=-2.9 * d)
            add(a, "elbow", side, x=0.15 * d)
    if p["style"] == "side":
        spine(a, z=-sgn(p["side"]) * 0.55 * keyframes(frac(T), [0, 0.35, 0.5, 0.7, 1], [0, 0, 1, 0, 0]))
    elif p["style"] == "up":
        spine(a, x=-0.15 * d)
    return clip(a)


@action("drum", sample=lambda rng: {"tempo": float(rng.uniform(2.0, 3.0))}, length=_flex_len(36, 64), weight=0.6)
def drum(T, p):
    a = neutral(T)
    env = envelope(T, 8)
    b = 2 * np.pi * p["tempo"] * seconds(T)
    for side, ph in (("left", 0.0), ("right", np.pi)):
        add(a, "shoulder", side, x=-0.45 * env, z=0.15 * env)
        add(a, "elbow", side, x=(-1.25 + 0.4 * np.sin(b + ph)) * env)
    spine(a, x=0.1 * env)
    return clip(a)


@action("paint", sample=lambda rng: {"side": _side(rng)}, length=_flex_len(40, 70), weight=0.6)
def paint(T, p):
    a = neutral(T)
    env = envelope(T, 8)
    osc = 0.5 - 0.5 * np.cos(2 * np.pi * 0.75 * seconds(T))
    add(a, "shoulder", p["side"], x=(-0.7 - 1.6 * osc) * env, y=-0.2 * env)
    add(a, "elbow", p["side"], x=-0.35 * env)
    return clip(a, lat=sgn(p["side"]) * 0.08 / FPS * env)


@action("hitchhike", sample=lambda rng: {"side": _side(rng)}, length=_flex_len(36, 60), weight=0.5)
def hitchhike(T, p):
    a = neutral(T)
    env = envelope(T, 8)
    add(a, "shoulder", p["side"], z=1.3 * env, x=-0.2 * env,
        y=0.15 * np.sin(2 * np.pi * 0.8 * seconds(T)) * env)
    add(a, "elbow", p["side"], x=0.1 * env)
    a[:, sk.NECK, 1] += sgn(p["side"]) * 0.5 * env
    return clip(a)


@action("lift", sample=lambda rng: {"amp": float(rng.uniform(0.8, 1.0))}, length=lambda p, rng: int(rng.integers(40, 56)),
        weight=0.6)
def lift(T, p):
    a = neutral(T)
    u = frac(T)
    bend = p["amp"] * keyframes(u, [0, 0.1, 0.38, 0.5, 0.8, 1.0], [0, 0, 1, 1, 0, 0])
    hold = keyframes(u, [0, 0.45, 0.75, 1.0], [0, 0, 1, 1])
    for side in ("left", "right"):
        add(a, "hip", side, x=-1.1 * bend)
        add(a, "knee", side, x=1.3 * bend)
        add(a, "shoulder", side, x=-1.0 * bend - 0.45 * hold, z=-0.05)
        add(a, "elbow", side, x=-1.3 * hold)
    spine(a, x=0.7 * bend)
    return clip(a)


# ------------------------------------------------------------------------------------------------ violence
VIOLENT = ("kick", "punch", "jab", "hook", "uppercut")


def _kick_sample(rng):
    return {"side": _side(rng), "style": _rng_choice(rng, ["front", "front", "side", "roundhouse"]),
            "count": int(rng.choice([1, 1, 2])), "amp": float(rng.uniform(0.85, 1.15))}


@action("kick", sample=_kick_sample, length=lambda p, rng: int(p["count"] * rng.integers(20, 26) + 12),
        concepts=("violence", "kick"), weight=1.0)
def kick(T, p):
    a = neutral(T)
    s = p["side"]
    env = envelope(T, 6)
    t = np.arange(T, dtype=np.float64)
    per = (T - 12) / p["count"]
    ext = np.zeros(T)
    cham = np.zeros(T)
    for k in range(p["count"]):
        u = (t - 6 - k * per) / per
        cham += keyframes(u, [0, 0.3, 0.45, 0.6, 0.9], [0, 1, 1, 1, 0])
        ext += keyframes(u, [0, 0.3, 0.45, 0.6, 0.9], [0, 0, 1, 0, 0])
    amp = p["amp"]
    for side in ("left", "right"):  # guard
        add(a, "shoulder", side, x=-0.45 * env, z=0.05 * env)
        add(a, "elbow", side, x=-1.8 * env)
    add(a, "knee", other(s), x=0.15 * env)
    if p["style"] == "front":
        add(a, "hip", s, x=-(1.2 * cham + 0.35 * ext + 1.6 * ext * (1 - ext)) * amp)
        add(a, "knee", s, x=1.8 * cham * (1 - ext) + 0.1)
        add(a, "ankle", s, x=0.4 * ext)
        spine(a, x=-0.3 * ext)
    elif p["style"] == "side":
        add(a, "hip", s, x=-0.6 * cham * (1 - ext), z=(0.7 * cham + 0.6 * ext) * amp)
        add(a, "knee", s, x=1.6 * cham * (1 - ext) + 0.1)
        spine(a, z=-0.55 * ext)
    else:
        add(a, "hip", s, x=-0.5 * cham * amp, z=1.1 * cham * amp)
        add(a, "knee", s, x=1.7 * cham * (1 - ext) + 0.1)
        a[:, sk.PELVIS, 1] -= sgn(s) * 0.7 * cham
        spine(a, z=-0.4 * cham)
    return clip(a)


def _punch_sample(rng):
    return {"side": _side(rng), "count": int(rng.choice([1, 2, 2, 3, 4])), "alternate": bool(rng.random() < 0.4),
            "speed": _rng_choice(rng, ["normal", "fast"])}


def _strikes(T: int, count: int, *, lead: int, ext: int, hold: int, back: int, ramp: int = 6) -> np.ndarray:
    """(count, T) activation of each strike: ramps to 1 in ``ext`` frames, holds, returns in ``back`` frames."""
    per = ext + hold + back + 2
    out = np.zeros((count, T))
    t = np.arange(T, dtype=np.float64)
    for k in range(count):
        t0 = ramp + lead + k * per
        out[k] = smoothstep((t - t0) / ext) * (1 - smoothstep((t - t0 - ext - hold) / back))
    return out


def _guard(a: np.ndarray, env: np.ndarray, lead: str) -> None:
    for side in ("left", "right"):
        add(a, "shoulder", side, x=-0.55 * env, y=-0.15 * env, z=0.05 * env)
        add(a, "elbow", side, x=-2.1 * env)
        add(a, "knee", side, x=0.2 * env)
    add(a, "hip", lead, x=-0.25 * env)
    add(a, "hip", other(lead), x=0.15 * env)


def _strike_length(ext, hold, back, lead=2):
    return lambda p, rng: int(12 + lead + p["count"] * (ext + hold + back + 2) + rng.integers(0, 4))


@action("punch", sample=_punch_sample, length=_strike_length(3, 2, 5), concepts=("violence", "punch_jab_box_hit_beat"),
        weight=1.0)
def punch(T, p):
    a = neutral(T)
    env = envelope(T, 6)
    _guard(a, env, other(p["side"]))
    acts = _strikes(T, p["count"], lead=2, ext=3, hold=2, back=5)
    for k, e in enumerate(acts):
        side = p["side"] if not p["alternate"] or k % 2 == 0 else other(p["side"])
        add(a, "shoulder", side, x=-1.05 * e, y=-0.05 * e)
        add(a, "elbow", side, x=2.05 * e)
        spine(a, y=-sgn(side) * 0.45 * e)
    return clip(a)


@action("jab", sample=lambda rng: {"side": _side(rng), "count": int(rng.integers(1, 4))},
        length=_strike_length(2, 1, 4), concepts=("violence", "punch_jab_box_hit_beat"), weight=0.7)
def jab(T, p):
    a = neutral(T)
    env = envelope(T, 6)
    _guard(a, env, p["side"])
    for e in _strikes(T, p["count"], lead=2, ext=2, hold=1, back=4):
        add(a, "shoulder", p["side"], x=-0.95 * e, y=-0.05 * e)
        add(a, "elbow", p["side"], x=1.95 * e)
        spine(a, y=-sgn(p["side"]) * 0.2 * e)
    return clip(a)


@action("hook", sample=lambda rng: {"side": _side(rng), "count": int(rng.choice([1, 1, 2]))},
        length=_strike_length(4, 2, 6), concepts=("violence", "punch_jab_box_hit_beat"), weight=0.6)
def hook(T, p):
    a = neutral(T)
    env = envelope(T, 6)
    _guard(a, env, other(p["side"]))
    s = p["side"]
    for e in _strikes(T, p["count"], lead=2, ext=4, hold=2, back=6):
        add(a, "shoulder", s, x=0.55 * e, z=1.35 * e, y=(0.5 - 1.3 * e) * np.minimum(1, 3 * e))
        add(a, "elbow", s, x=0.5 * e)
        spine(a, y=-sgn(s) * 0.6 * e)
    return clip(a)


@action("uppercut", sample=lambda rng: {"side": _side(rng), "count": int(rng.choice([1, 1, 2]))},
        length=_strike_length(4, 2, 6), concepts=("violence", "punch_jab_box_hit_beat"), weight=0.6)
def uppercut(T, p):
    a = neutral(T)
    env = envelope(T, 6)
    _guard(a, env, other(p["side"]))
    s = p["side"]
    for e in _strikes(T, p["count"], lead=2, ext=4, hold=2, back=6):
        add(a, "shoulder", s, x=-0.9 * e)
        add(a, "elbow", s, x=0.3 * e)
        for side in ("left", "right"):
            add(a, "knee", side, x=0.3 * (1 - e) * env + 0.05 * e)
        spine(a, y=-sgn(s) * 0.4 * e, x=-0.15 * e)
    return clip(a)


# ------------------------------------------------------------------------------- benign arm actions (issue 30)
# Real people gesture with bent arms and hands before the chest (goodbyes, pointing the way, hands clasped for a bow,
# walking with the arms bent), which synth's earlier actions did only while fighting (the guard of kick/punch): a
# judge trained on synth learned "hands before the chest" as violence. These benign actions hold such poses and move
# the arms at a gesture's pace, so that only the strike itself tells violence apart.
GESTURES = ("bye", "point", "sweep", "clasp", "call", "fold")
GESTURE_LEGS = ("still", "relaxed", "bounce", "sway")


def _gesture_sample(rng):
    return {"style": _rng_choice(rng, list(GESTURES), [0.25, 0.2, 0.2, 0.12, 0.1, 0.13]), "side": _side(rng),
            "both": bool(rng.random() < 0.3), "aim": _rng_choice(rng, ["front", "side", "diagonal"]),
            "amp": float(rng.uniform(0.7, 1.1)), "tempo": float(rng.uniform(1.2, 3.0)),
            "ramp": int(rng.integers(5, 13)), "bow": float(rng.uniform(0.0, 0.6)) * (rng.random() < 0.4),
            "legs": _rng_choice(rng, list(GESTURE_LEGS), [0.3, 0.3, 0.2, 0.2]), "knee": float(rng.uniform(0.1, 0.45)),
            "low": bool(rng.random() < 0.25)}


def _idle_legs(a: np.ndarray, p: dict, env: np.ndarray) -> None:
    """A standing person's lower body while gesturing: one knee relaxed, a bounce in both knees, or a sway."""
    t = seconds(len(a))
    if p["legs"] == "relaxed":
        add(a, "knee", other(p["side"]), x=p["knee"] * env)
        add(a, "hip", other(p["side"]), x=-0.4 * p["knee"] * env)
        a[:, sk.PELVIS, 2] += sgn(p["side"]) * 0.06 * env
    elif p["legs"] == "bounce":
        b = np.abs(np.sin(np.pi * p["tempo"] * t))
        for s in ("left", "right"):
            add(a, "knee", s, x=p["knee"] * b * env)
            add(a, "hip", s, x=-0.5 * p["knee"] * b * env)
    elif p["legs"] == "sway":
        a[:, sk.PELVIS, 2] += 0.1 * np.sin(np.pi * p["tempo"] * t) * env
        spine(a, z=-0.15 * np.sin(np.pi * p["tempo"] * t) * env, y=0.2 * np.sin(0.5 * np.pi * p["tempo"] * t) * env)


@action("gesture", sample=_gesture_sample, length=_flex_len(36, 72), weight=2.5)
def gesture(T, p):
    a = neutral(T)
    env = envelope(T, p["ramp"])
    amp = p["amp"]
    st = p["style"]
    sides = ["left", "right"] if p["both"] or st in ("clasp", "call", "fold") else [p["side"]]
    if st == "bye":  # forearm up, hand near the face (or, low, the upper arm down and the hand by the chest), waving
        osc = np.sin(2 * np.pi * p["tempo"] * seconds(T))
        for s in sides:
            if p.get("low"):
                add(a, "shoulder", s, x=-0.25 * amp * env, z=0.2 * env, y=0.12 * amp * osc * env)
                add(a, "elbow", s, x=-2.1 * env, z=0.25 * amp * osc * env)
            else:
                add(a, "shoulder", s, x=-0.7 * amp * env, z=0.5 * amp * env, y=0.35 * amp * osc * env)
                add(a, "elbow", s, x=-1.8 * env, z=0.3 * amp * osc * env)
    elif st == "point":  # the arm raised towards a direction, nearly straight, held
        x, z = {"front": (-1.4, 0.1), "side": (-0.2, 1.4), "diagonal": (-1.0, 0.8)}[p["aim"]]
        for s in sides:
            add(a, "shoulder", s, x=x * amp * env, z=z * amp * env)
            add(a, "elbow", s, x=-0.25 * env)
        spine(a, y=sgn(p["side"]) * 0.25 * env * (p["aim"] != "front"))
    elif st == "sweep":  # "this way, please": the forearm sweeps out from before the chest to the side, palm up
        u = frac(T)
        out = keyframes(u, [0, 0.25, 0.45, 0.8, 1.0], [0, 0, 1, 1, 0])
        for s in sides:
            add(a, "shoulder", s, x=-0.8 * amp * env, y=(-0.7 + 1.4 * out) * env, z=0.3 * out * env)
            add(a, "elbow", s, x=(-1.5 + 1.1 * out) * env)
    elif st == "clasp":  # hands together before the belly, often with a bow
        for s in sides:
            add(a, "shoulder", s, x=-0.45 * amp * env, y=-0.45 * env, z=-0.05 * env)
            add(a, "elbow", s, x=-1.3 * env)
    elif st == "call":  # hands cupped at the mouth
        for s in sides:
            add(a, "shoulder", s, x=-0.75 * amp * env, y=-0.35 * env)
            add(a, "elbow", s, x=-2.2 * env)
        a[:, sk.NECK, 0] -= 0.2 * env
    else:  # fold: arms crossed before the chest
        for s in sides:
            add(a, "shoulder", s, x=-0.5 * amp * env, y=-0.6 * env)
            add(a, "elbow", s, x=-1.9 * env)
    spine(a, x=1.0 * p["bow"] * keyframes(frac(T), [0, 0.2, 0.45, 0.6, 0.85], [0, 0, 1, 1, 0]))
    _idle_legs(a, p, env)
    return clip(a)


def _carry_sample(rng):
    return {"speed": _speed(rng), "direction": _rng_choice(rng, ["forward", "backward", "backward", "left", "right"]),
            "arms": _rng_choice(rng, ["carry", "bent_swing", "hips"]), "amp": float(rng.uniform(0.8, 1.2)),
            "elbow": float(rng.uniform(1.2, 2.0))}


@action("carry_walk", sample=_carry_sample, length=_flex_len(36, 80), weight=1.2, locomotion=True)
def carry_walk(T, p):
    """Walking (any direction) with the arms held bent: carrying, swinging bent arms, or hands on the hips."""
    a = neutral(T)
    sp = SPEEDS[p["speed"]]
    freq = 0.9 * sp
    env = envelope(T, 6)
    d = p["direction"]
    phi = 2 * np.pi * freq * seconds(T) * (-1.0 if d == "backward" else 1.0)
    side_walk = d in ("left", "right")
    amp = p["amp"] * (0.45 if side_walk else 1.0)
    arm = 0.45 if p["arms"] == "bent_swing" else 0.0
    gait(a, phi, amp, arm=arm, env=env)
    for s in ("left", "right"):
        if p["arms"] == "carry":
            add(a, "shoulder", s, x=-0.5 * env, y=-0.2 * env)
        elif p["arms"] == "hips":
            add(a, "shoulder", s, z=0.45 * env, x=0.2 * env)
        add(a, "elbow", s, x=-p["elbow"] * env)
    v = 4 * 0.85 * np.sin(0.38 * amp) * freq * 0.9 / FPS
    fwd = lat = 0.0
    if d == "forward":
        fwd = v * env
    elif d == "backward":
        fwd = -0.7 * v * env
    else:
        lat = sgn(d) * 0.35 * sp / FPS * env
    return clip(a, fwd=fwd, lat=lat)
