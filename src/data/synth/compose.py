"""Sequences of 1-3 actions: blended joint angles, integrated root path, grounded height, joint positions."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import skeleton as sk
from .actions import REGISTRY, Clip, smoothstep

BLEND = 8  # frames over which one action's pose flows into the next


@dataclass
class Segment:
    action: str
    start: int   # first frame (joint frames; feature rows share the index)
    end: int     # exclusive
    params: dict


def blend(clips: list[Clip], *, frames: int = BLEND) -> tuple[Clip, list[tuple[int, int]]]:
    """Concatenate clips; each clip's first ``frames`` frames absorb the jump from the previous clip's last frame."""
    out = {k: [] for k in ("angles", "fwd", "lat", "yaw_rate", "lift")}
    bounds = []
    t0 = 0
    prev = None
    for c in clips:
        cur = {k: getattr(c, k).copy() for k in out}
        if prev is not None:
            n = min(frames, c.T)
            w = 1 - smoothstep((np.arange(n) + 1) / (n + 1))
            for k in out:
                delta = prev[k][-1] - cur[k][0]
                cur[k][:n] += w.reshape((n,) + (1,) * (cur[k].ndim - 1)) * delta
        for k, parts in out.items():
            parts.append(cur[k])
        bounds.append((t0, t0 + c.T))
        t0 += c.T
        prev = cur
    return Clip(*(np.concatenate(out[k]) for k in ("angles", "fwd", "lat", "yaw_rate", "lift"))), bounds


def ground_height(local: np.ndarray) -> np.ndarray:
    """Root height that puts the lowest body part (with its clearance) on the floor; (T, 22, 3) body-frame joints
    (root at the origin, heading 0) -> (T,)."""
    return (sk.CLEARANCE[None] - local[..., 1]).max(axis=1)


def realise(c: Clip, *, yaw0: float = 0.0) -> np.ndarray:
    """Joint positions (T, 22, 3) of a blended clip: heading from the integrated yaw rate, root xz from the
    integrated heading-frame velocity, root y from the ground contact plus lift."""
    yaw = yaw0 + np.concatenate([[0.0], np.cumsum(c.yaw_rate)[:-1]])
    cy, sy = np.cos(yaw), np.sin(yaw)
    # heading frame: forward = (sin yaw, 0, cos yaw), left = (cos yaw, 0, -sin yaw)
    vx = c.fwd * sy + c.lat * cy
    vz = c.fwd * cy - c.lat * sy
    root = np.zeros((c.T, 3))
    root[1:, 0] = np.cumsum(vx)[:-1]
    root[1:, 2] = np.cumsum(vz)[:-1]
    # One forward-kinematics pass in the body frame; the heading is a rotation of the whole body about +y.
    local = sk.forward_kinematics(c.angles, np.zeros((c.T, 3)), np.zeros(c.T))
    root[:, 1] = ground_height(local) + c.lift
    return np.einsum("tij,tkj->tki", sk.yaw_matrix(yaw), local) + root[:, None]


def build(plan: list[tuple[str, dict, int]], *, posture: np.ndarray | None = None) -> tuple[np.ndarray, list[Segment]]:
    """Plan ``[(action, params, frames), ...]`` -> joints (T, 22, 3) float64 and the action segments."""
    clips = [REGISTRY[name].make(T, p) for name, p, T in plan]
    c, bounds = blend(clips)
    if posture is not None:
        c.angles += posture[None]
    joints = realise(c)
    segs = [Segment(name, s, e, p) for (name, p, _), (s, e) in zip(plan, bounds)]
    return joints, segs
