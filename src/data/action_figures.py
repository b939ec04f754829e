"""Per-action kinematic figures of motions in HumanML3D's 22-joint layout (y up, metres), pure numpy.

A rare action (synth's kicks are ~1.5 % of the frames) hides in a mean reconstruction error, so the VQ trainer, the
benches and the report also read the figure that shows the action itself:

- **highest ankle**: the highest either ankle rises above the motion's floor (the lowest foot joint of the whole
  motion) over the frames of the action. Synth's kicks reach ~0.6-0.95 m, its walks ~0.25 m.
- **wrist reach**: the farthest either wrist gets from the chest (spine3) in the horizontal plane. Hanging arms sit at
  ~0.2 m; synth's punches extend to ~0.5-0.6 m.

Joints are ``(T, 22, 3)``; a segment is ``(start, end)`` in frames, end exclusive.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

L_ANKLE, R_ANKLE, L_FOOT, R_FOOT, SPINE3, L_WRIST, R_WRIST = 7, 8, 10, 11, 9, 20, 21
FEET = (L_ANKLE, R_ANKLE, L_FOOT, R_FOOT)
UP = 1


def _joints(joints) -> np.ndarray:
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim != 3 or j.shape[1] < 22 or j.shape[2] != 3 or len(j) == 0:
        raise ValueError(f"joints must be (T>0, 22, 3), got {j.shape}")
    return j


def ankle_height(joints) -> np.ndarray:
    """(T,) height of the higher ankle above the motion's floor (its lowest foot joint over all frames), metres."""
    j = _joints(joints)
    floor = j[:, FEET, UP].min()
    return j[:, [L_ANKLE, R_ANKLE], UP].max(axis=1) - floor


def wrist_reach(joints) -> np.ndarray:
    """(T,) horizontal distance of the farther wrist from the chest (spine3), metres."""
    j = _joints(joints)
    d = j[:, [L_WRIST, R_WRIST]] - j[:, SPINE3:SPINE3 + 1]
    d[..., UP] = 0.0
    return np.linalg.norm(d, axis=-1).max(axis=1)


def _span(n: int, segment: Sequence[int] | None) -> slice:
    if segment is None:
        return slice(0, n)
    s, e = max(0, int(segment[0])), min(n, int(segment[1]))
    return slice(s, max(s, e))


def segment_figures(joints, segment: Sequence[int] | None = None) -> dict[str, float]:
    """``{"ankle_m", "reach_m"}``: the highest ankle and the farthest wrist reach over ``segment`` (all frames when
    None; the floor is always the whole motion's). NaN for an empty segment."""
    j = _joints(joints)
    sl = _span(len(j), segment)
    if sl.stop <= sl.start:
        return {"ankle_m": float("nan"), "reach_m": float("nan")}
    return {"ankle_m": float(ankle_height(j)[sl].max()), "reach_m": float(wrist_reach(j)[sl].max())}


def mpjpe_m(true, pred, segment: Sequence[int] | None = None) -> float:
    """Mean per-joint position error (metres) over ``segment``, global joints; both (T, J, 3) of the same T."""
    a, b = _joints(true), _joints(pred)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    sl = _span(len(a), segment)
    if sl.stop <= sl.start:
        return float("nan")
    return float(np.linalg.norm(a[sl] - b[sl], axis=-1).mean())


def action_segments(label: Mapping) -> list[tuple[str, int, int]]:
    """``[(action, start, end)]`` of one ``labels.json`` motion record (frames of the features)."""
    return [(str(s["action"]), int(s["start"]), int(s["end"])) for s in label.get("segments", [])]


def reconstruction_rows(pairs: Iterable[tuple[np.ndarray, np.ndarray, Sequence[tuple[str, int, int]]]]) -> list[dict]:
    """One row per (motion, action segment): ``{"action", "mpjpe_m", "ankle_true_m", "ankle_rec_m", "reach_true_m",
    "reach_rec_m"}`` from ``(true joints, reconstructed joints, segments)`` of equal length."""
    rows = []
    for true, rec, segments in pairs:
        for action, s, e in segments:
            ft, fr = segment_figures(true, (s, e)), segment_figures(rec, (s, e))
            if np.isnan(ft["ankle_m"]):
                continue
            rows.append({"action": action, "mpjpe_m": mpjpe_m(true, rec, (s, e)),
                         "ankle_true_m": ft["ankle_m"], "ankle_rec_m": fr["ankle_m"],
                         "reach_true_m": ft["reach_m"], "reach_rec_m": fr["reach_m"]})
    return rows


def summarise(rows: Iterable[Mapping[str, float]], *, key: str = "action") -> dict[str, dict[str, float]]:
    """Per ``key`` value: ``n`` and the median of every numeric field of its rows (sorted by name)."""
    groups: dict[str, list[Mapping]] = {}
    for r in rows:
        groups.setdefault(str(r[key]), []).append(r)
    out: dict[str, dict[str, float]] = {}
    for name in sorted(groups):
        rs = groups[name]
        fields = [k for k, v in rs[0].items() if k != key and isinstance(v, (int, float))]
        out[name] = {"n": len(rs), **{k: float(np.median([r[k] for r in rs])) for k in fields}}
    return out


def flat_log(summary: Mapping[str, Mapping[str, float]], actions: Sequence[str] | None = None) -> dict[str, float]:
    """``{"<action>_<field>": value}`` for a training log (``actions``: those to keep, all when None)."""
    out = {}
    for name, figs in summary.items():
        if actions is not None and name not in actions:
            continue
        for k, v in figs.items():
            out[f"{name}_{k}"] = float(v)
    return out


def format_table(summary: Mapping[str, Mapping[str, float]], *, mm: bool = True) -> str:
    """A plain-text table of :func:`summarise`'s reconstruction figures, one action a line."""
    head = f"{'action':<12}{'n':>5}{'MPJPE mm':>10}{'ankle GT':>10}{'ankle rec':>10}{'reach GT':>10}{'reach rec':>10}"
    lines = [head]
    for name, f in summary.items():
        mp = f.get("mpjpe_m", float("nan")) * (1000.0 if mm else 1.0)
        lines.append(f"{name:<12}{int(f['n']):>5}{mp:>10.1f}{f.get('ankle_true_m', float('nan')):>10.2f}"
                     f"{f.get('ankle_rec_m', float('nan')):>10.2f}{f.get('reach_true_m', float('nan')):>10.2f}"
                     f"{f.get('reach_rec_m', float('nan')):>10.2f}")
    return "\n".join(lines)
