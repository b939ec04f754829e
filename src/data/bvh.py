"""A small BVH reader and forward kinematics, written from the BVH specification (Biovision, 1990s; the format as
Blender, MotionBuilder and the CMU/Bandai-Namco/Mixamo exports write it).

Why our own reader: the BVH loaders that motion-generation code carries assume one channel layout for the whole
file (Holden's ``BVH.py`` and its copies in deep-motion-editing and GenMM: one rotation order taken from the header,
the same channel count on every joint, so mixed 3/6-channel files fail) or drop position channels below the root
(AnimatedDrawings); the Bandai-Namco Research Motion files have position channels on *every* joint. ``bvhio`` on the
package index reads them (its issue tracker shows Bandai-Namco files), but it would be a new dependency for some 150
lines of parsing. The format is small: this reader follows it as written, joint by joint (each joint's own channel
order), and names the file (and the frame or token) in a one-line :class:`HmuError` for anything it cannot read.

What it reads:

- ``HIERARCHY``: ``ROOT``/``JOINT name { OFFSET x y z  CHANNELS n c1 .. cn  children..  End Site { OFFSET .. } }``,
  any number of roots; joints are numbered in the order they are declared (depth-first, parents first), which is also
  the order of their values on each frame line.
- ``MOTION``: ``Frames: N``, ``Frame Time: dt`` (seconds), then ``N`` lines of numbers; the values are read as one
  stream, so a frame may be wrapped over several lines.

Forward kinematics (:meth:`BVH.positions`): a joint's local translation is its ``OFFSET``, except that its position
channels, when it has any, *replace* the offset's components (as Blender's importer does; files with position
channels on every joint write the offset again in them); its local rotation is the product of its rotation channels
**in the order the header lists them**, each an elementary rotation about the named axis (degrees), composed
intrinsically: ``CHANNELS 3 Zrotation Xrotation Yrotation`` means ``R = Rz(a) @ Rx(b) @ Ry(c)`` acting on column
vectors. A joint's global rotation is its parent's times its own, and its position its parent's position plus the
parent's global rotation applied to its local translation.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.common.errors import HmuError

# The joint names of hmu's BVH export (src/viz/bvh.py), in HumanML3D's joint order (SMPL's first 22 joints).
T2M_JOINT_NAMES = (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3", "L_Foot",
    "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
    "R_Wrist")

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
CHANNEL_NAMES = POSITION_CHANNELS + ROTATION_CHANNELS
MAX_FRAMES = 10_000_000       # a header claiming more is not a motion file we can hold
MAX_CHANNELS = 6


def elementary_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices about ``axis`` ('X', 'Y' or 'Z') by ``degrees`` (...,), right-handed."""
    a = np.radians(np.asarray(degrees, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i, j, k = {"X": (0, 1, 2), "Y": (1, 2, 0), "Z": (2, 0, 1)}[axis]
    R[..., i, i] = 1.0
    R[..., j, j], R[..., j, k] = c, -s
    R[..., k, j], R[..., k, k] = s, c
    return R


@dataclass
class BVH:
    """A parsed BVH file. ``channels[j]`` lists joint j's channel names in header order; ``motion`` holds every
    frame's values (T, sum of channel counts) in file order; ``offsets`` (J, 3) in file units."""

    path: str
    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    channels: list[tuple[str, ...]]
    motion: np.ndarray
    frame_time: float

    @property
    def n_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def channel_columns(self) -> list[range]:
        """Columns of ``motion`` that belong to each joint."""
        out, col = [], 0
        for ch in self.channels:
            out.append(range(col, col + len(ch)))
            col += len(ch)
        return out

    def local_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame local translations (T, J, 3) and rotations (T, J, 3, 3) (see the module docstring)."""
        T, J = self.n_frames, len(self.names)
        trans = np.broadcast_to(self.offsets, (T, J, 3)).copy()
        rots = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
        for j, cols in enumerate(self.channel_columns()):
            for name, c in zip(self.channels[j], cols):
                v = self.motion[:, c]
                if name in POSITION_CHANNELS:
                    trans[:, j, POSITION_CHANNELS.index(name)] = v
                else:
                    rots[:, j] = rots[:, j] @ elementary_rotation(name[0], v)
        return trans, rots

    def positions(self) -> np.ndarray:
        """Forward kinematics: global joint positions (T, J, 3), file units."""
        trans, rots = self.local_transforms()
        T, J = trans.shape[:2]
        G = np.empty((T, J, 3, 3))
        P = np.empty((T, J, 3))
        for j, p in enumerate(self.parents):   # parents are declared before their children
            if p < 0:
                G[:, j], P[:, j] = rots[:, j], trans[:, j]
            else:
                G[:, j] = G[:, p] @ rots[:, j]
                P[:, j] = P[:, p] + np.einsum("tij,tj->ti", G[:, p], trans[:, j])
        return P


def _read_tokens(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise HmuError(f"{path} is a folder, not a BVH file") from None
    except OSError as exc:
        raise HmuError(f"cannot read BVH file {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("latin-1")   # joint names are ASCII in practice; numbers are what matters
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise HmuError(f"{path} is not a text file") from None
    if "\x00" in text:
        raise HmuError(f"{path} is not a BVH text file (it holds NUL bytes)")
    return text.split()


def _number(tok: str, path: Path, what: str) -> float:
    try:
        v = float(tok)
    except ValueError:
        raise HmuError(f"{path}: {what} '{tok[:40]}' is not a number") from None
    if not math.isfinite(v):
        raise HmuError(f"{path}: {what} is {tok} (not a finite number)")
    return v


def read(path: str | os.PathLike) -> BVH:
    """Parse a BVH file; one-line HmuError naming the file for anything malformed (see the module docstring)."""
    p = Path(path)
    toks = _read_tokens(p)
    if not toks or toks[0].upper() != "HIERARCHY":
        raise HmuError(f"{p} is not a BVH file (it does not start with HIERARCHY)")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float] | None] = []
    channels: list[tuple[str, ...] | None] = []
    stack: list[int] = []       # open braces: joint index, or -1 for an End Site
    pending: int | None = None  # the joint (or -1) whose '{' comes next
    i, n = 1, len(toks)

    def need(k: int, what: str) -> list[str]:
        if i + k > n:
            raise HmuError(f"{p}: the file ends inside the hierarchy (reading {what})")
        return toks[i:i + k]

    while i < n and toks[i].upper() != "MOTION":
        t = toks[i]
        if t in ("ROOT", "JOINT"):
            (name,) = need(2, t)[1:]
            if t == "ROOT" and stack:
                raise HmuError(f"{p}: ROOT {name} inside another joint")
            if t == "JOINT" and (not stack or stack[-1] < 0):
                raise HmuError(f"{p}: JOINT {name} outside a joint")
            if name in names:
                raise HmuError(f"{p}: joint name '{name}' appears twice")
            names.append(name)
            parents.append(stack[-1] if stack else -1)
            offsets.append(None)
            channels.append(None)
            pending = len(names) - 1
            i += 2
        elif t == "End":
            need(2, "End Site")
            if not stack or stack[-1] < 0:
                raise HmuError(f"{p}: End Site outside a joint")
            pending = -1
            i += 2
        elif t == "{":
            if pending is None:
                raise HmuError(f"{p}: '{{' without a joint")
            stack.append(pending)
            pending = None
            i += 1
        elif t == "}":
            if not stack:
                raise HmuError(f"{p}: unbalanced '}}' in the hierarchy")
            j = stack.pop()
            if j >= 0 and offsets[j] is None:
                raise HmuError(f"{p}: joint {names[j]} has no OFFSET")
            i += 1
        elif t == "OFFSET":
            vals = need(4, "OFFSET")[1:]
            if not stack:
                raise HmuError(f"{p}: OFFSET outside a joint")
            j = stack[-1]
            xyz = [_number(v, p, f"OFFSET of {names[j] if j >= 0 else 'an End Site'}") for v in vals]
            if j >= 0:
                offsets[j] = xyz
            i += 4
        elif t == "CHANNELS":
            (cnt,) = need(2, "CHANNELS")[1:]
            if not stack or stack[-1] < 0:
                raise HmuError(f"{p}: CHANNELS outside a joint")
            j = stack[-1]
            if not cnt.isdigit() or int(cnt) > MAX_CHANNELS:
                raise HmuError(f"{p}: joint {names[j]} has channel count '{cnt[:20]}' (want 0..{MAX_CHANNELS})")
            k = int(cnt)
            chans = tuple(need(2 + k, "CHANNELS")[2:])
            for c in chans:
                if c not in CHANNEL_NAMES:
                    raise HmuError(f"{p}: joint {names[j]} has unknown channel '{c[:40]}' (known: "
                                   f"{', '.join(CHANNEL_NAMES)})")
            if len(set(chans)) < len(chans):
                raise HmuError(f"{p}: joint {names[j]} lists a channel twice ({' '.join(chans)})")
            channels[j] = chans
            i += 2 + k
        else:
            raise HmuError(f"{p}: unexpected '{t[:40]}' in the hierarchy")
    if stack:
        raise HmuError(f"{p}: the hierarchy's braces are not closed before MOTION")
    if not names:
        raise HmuError(f"{p}: the hierarchy holds no joint")
    if i >= n:
        raise HmuError(f"{p} has no MOTION section")
    chans_all = [c if c is not None else () for c in channels]

    i += 1
    frames_tok, i = _header_value(toks, i, ("Frames",), p)
    if not frames_tok.isdigit():
        raise HmuError(f"{p}: Frames: '{frames_tok[:20]}' is not a whole number")
    n_frames = int(frames_tok)
    if n_frames == 0:
        raise HmuError(f"{p} has no frames (Frames: 0)")
    if n_frames > MAX_FRAMES:
        raise HmuError(f"{p}: Frames: {n_frames} is more than {MAX_FRAMES}")
    dt_tok, i = _header_value(toks, i, ("Frame", "Time"), p)
    frame_time = _number(dt_tok, p, "Frame Time")
    if frame_time <= 0:
        raise HmuError(f"{p}: Frame Time must be positive, got {dt_tok}")
    per = sum(len(c) for c in chans_all)
    values = toks[i:]
    if len(values) != n_frames * per:
        raise HmuError(f"{p}: {len(values)} motion values, expected {n_frames} frames x {per} channels = "
                       f"{n_frames * per}")
    if per == 0:
        motion = np.zeros((n_frames, 0))
    else:
        try:
            motion = np.asarray(values, dtype=np.float64).reshape(n_frames, per)
        except ValueError:
            k = next(k for k, v in enumerate(values) if not _is_float(v))
            raise HmuError(f"{p}: frame {k // per + 1}, channel {k % per + 1} holds '{values[k][:40]}', which is "
                           f"not a number") from None
        bad = ~np.isfinite(motion)
        if bad.any():
            t, c = np.argwhere(bad)[0]
            raise HmuError(f"{p}: frame {t + 1}, channel {c + 1} is {motion[t, c]} (not a finite number)")
    return BVH(path=str(p), names=names, parents=parents, offsets=np.asarray(offsets, dtype=np.float64),
               channels=chans_all, motion=motion, frame_time=frame_time)


def _header_value(toks: list[str], i: int, words: tuple[str, ...], p: Path) -> tuple[str, int]:
    """The value after ``Frames:`` / ``Frame Time:`` at token ``i``, the colon glued or not; (value, next index)."""
    want = " ".join(words) + ":"
    parts: list[str] = []
    while i < len(toks):
        parts.append(toks[i])
        i += 1
        norm = " ".join(parts).replace(" :", ":")
        if norm == want:
            if i < len(toks):
                return toks[i], i + 1
            break
        if norm.startswith(want):            # 'Frames:358'
            return norm[len(want):], i
        if not want.startswith(norm):
            break
    raise HmuError(f"{p}: MOTION must be followed by 'Frames: N' and 'Frame Time: seconds'")


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True
