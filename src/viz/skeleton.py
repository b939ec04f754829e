"""Stick-figure rendering of joint arrays (T, J, 3), y up, metres: an orthographic camera and a matplotlib (Agg) panel.

The camera is a pure function of its fields (``project``), and the renderer draws in *pixel* coordinates produced by
``project`` on an axes that spans its image exactly, so a pixel coordinate from ``project`` is where the joint lands in
the picture. Nothing here touches pyplot or the global backend: figures are built with ``matplotlib.figure.Figure`` and
an Agg canvas, so rendering works with no screen and in threads.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from src.common.errors import HmuError

log = logging.getLogger(__name__)

Chain = Sequence[Sequence[int]]

# Colours by role. Kinematic chains in the dataset table are ordered (leg, leg, spine, arm, arm) for both HumanML3D and
# KIT, so five chains get these roles; any other chain count falls back to a cycle of the same colours.
LEG_COLORS = ("#1f4e8c", "#5b9bd5")      # right (dark) / left (light) blue
SPINE_COLOR = "#303030"
ARM_COLORS = ("#b22222", "#f08c3c")      # right (dark red) / left (orange)
ROLE_COLORS = (LEG_COLORS[0], LEG_COLORS[1], SPINE_COLOR, ARM_COLORS[0], ARM_COLORS[1])
BACKGROUND = "#ffffff"
FLOOR_COLOR = "#e6e6e6"
GRID_COLOR = "#c8c8c8"
TRAJECTORY_COLOR = "#2ca02c"


@dataclass(frozen=True)
class Camera:
    """Orthographic camera. Pixel coordinates: ``u`` to the right, ``v`` down, origin at the image's top-left corner.

    ``target`` (world, metres) lands at the image centre; ``scale`` is pixels per metre; ``azim`` turns the camera about
    the up (y) axis starting from +z (HumanML3D bodies face +z), ``elev`` raises it above the horizon (degrees).
    """

    width: int = 320
    height: int = 320
    azim: float = 30.0
    elev: float = 15.0
    target: tuple[float, float, float] = (0.0, 1.0, 0.0)
    scale: float = 120.0

    def basis(self) -> np.ndarray:
        """(3, 3) rows: screen right, screen up, towards the camera (world coordinates)."""
        a, e = math.radians(self.azim), math.radians(self.elev)
        d = np.array([math.sin(a) * math.cos(e), math.sin(e), math.cos(a) * math.cos(e)])  # target -> camera
        r = np.array([math.cos(a), 0.0, -math.sin(a)])                                      # up x d, normalised
        u = np.cross(d, r)
        return np.stack([r, u, d])


def view(points: np.ndarray, camera: Camera) -> np.ndarray:
    """World points (..., 3) -> view coordinates (..., 3): right, up (metres from the target), depth (+ = near)."""
    p = np.asarray(points, dtype=np.float64) - np.asarray(camera.target, dtype=np.float64)
    return p @ camera.basis().T


def project(points: np.ndarray, camera: Camera) -> np.ndarray:
    """World points (..., 3) -> pixels (..., 2) as (u column, v row); pixel (r, c) covers [c, c+1) x [r, r+1)."""
    v = view(points, camera)
    u_px = camera.width / 2.0 + camera.scale * v[..., 0]
    v_px = camera.height / 2.0 - camera.scale * v[..., 1]
    return np.stack([u_px, v_px], axis=-1)


def check_joints(joints: Any, chain: Chain, *, name: str = "joints", ndim: int = 3) -> np.ndarray:
    """Check a (T, J, 3) (or (J, 3) with ndim=2) array against a kinematic chain; HmuError naming ``name`` if bad."""
    a = np.asarray(joints, dtype=np.float64)
    shape = "(T, J, 3)" if ndim == 3 else "(J, 3)"
    if a.ndim != ndim or a.shape[-1] != 3:
        raise HmuError(f"{name}: expected joint positions of shape {shape}, got {tuple(a.shape)}")
    if ndim == 3 and a.shape[0] == 0:
        raise HmuError(f"{name}: motion has no frames")
    need = 1 + max((max(c) for c in chain if len(c)), default=-1)
    if a.shape[-2] < need:
        raise HmuError(f"{name}: {a.shape[-2]} joints but the kinematic chain uses joint {need - 1}")
    if not np.isfinite(a).any():
        raise HmuError(f"{name}: no finite joint positions")
    return a


def chain_colors(chain: Chain, colors: Sequence[str] | None = None) -> list[str]:
    """One colour per chain: legs blue, spine dark grey, arms red/orange (table order: leg, leg, spine, arm, arm)."""
    if colors is not None:
        if len(colors) < len(chain):
            raise HmuError(f"colors: {len(colors)} colours for {len(chain)} chains")
        return list(colors[: len(chain)])
    return [ROLE_COLORS[i % len(ROLE_COLORS)] for i in range(len(chain))]


def floor_height(motions: Sequence[np.ndarray]) -> float:
    """Lowest finite y over all motions: the ground plane sits there."""
    return float(min(np.nanmin(np.asarray(m)[..., 1]) for m in motions))


def root_offsets(motion: np.ndarray, root: int = 0) -> np.ndarray:
    """(T, 3) horizontal root position per frame (y zeroed); a following camera adds it to its target."""
    off = np.asarray(motion, dtype=np.float64)[:, root, :].copy()
    off[:, 1] = 0.0
    return np.nan_to_num(off)


def should_follow(motions: Sequence[np.ndarray], *, root: int = 0, max_travel: float = 3.0) -> bool:
    """True when a root travels over ``max_travel`` metres horizontally (a fixed camera would shrink the body)."""
    for m in motions:
        xz = np.asarray(m, dtype=np.float64)[:, root, :][:, [0, 2]]
        xz = xz[np.isfinite(xz).all(axis=1)]
        if len(xz) and float((xz.max(axis=0) - xz.min(axis=0)).max()) > max_travel:
            return True
    return False


def fit_camera(motions: Sequence[np.ndarray], *, width: int = 320, height: int = 320, azim: float = 30.0,
               elev: float = 15.0, follow: bool = False, margin: float = 0.08, min_extent: float = 1.0,
               root: int = 0) -> Camera:
    """One camera that frames every frame of every motion (T, J, 3), plus the ground under the feet.

    With ``follow`` the fit is on root-relative positions (the camera's target then moves with the root per frame, see
    ``root_offsets``), so a long walk keeps the figure large. ``min_extent`` (metres) keeps a still pose from filling
    the frame edge to edge.
    """
    if not motions:
        raise HmuError("fit_camera: no motions")
    pts = []
    for m in motions:
        m = np.asarray(m, dtype=np.float64)
        if follow:
            m = m - root_offsets(m, root)[:, None, :]
        pts.append(m.reshape(-1, 3))
    p = np.concatenate(pts)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) == 0:
        raise HmuError("fit_camera: no finite joint positions")
    unit = Camera(width=width, height=height, azim=azim, elev=elev, target=(0.0, 0.0, 0.0), scale=1.0)
    v = view(p, unit)
    lo, hi = v.min(axis=0), v.max(axis=0)
    c = (lo + hi) / 2.0
    ext = np.maximum(hi - lo, min_extent)
    usable_w, usable_h = width * (1 - 2 * margin), height * (1 - 2 * margin)
    scale = float(min(usable_w / ext[0], usable_h / ext[1]))
    basis = unit.basis()
    target = basis[0] * c[0] + basis[1] * c[1]  # the world point whose screen position is the bbox centre
    return Camera(width=width, height=height, azim=azim, elev=elev, target=tuple(float(x) for x in target),
                  scale=scale)


def floor_half_extent(motions: Sequence[np.ndarray], *, follow: bool = False, root: int = 0, pad: float = 0.75,
                      minimum: float = 1.5) -> float:
    """Half side (metres) of the square floor tile: the joints' horizontal spread plus ``pad``, at least ``minimum``."""
    spread = 0.0
    for m in motions:
        m = np.asarray(m, dtype=np.float64)
        if follow:
            m = m - root_offsets(m, root)[:, None, :]
        xz = m[..., [0, 2]].reshape(-1, 2)
        xz = xz[np.isfinite(xz).all(axis=1)]
        if len(xz):
            spread = max(spread, float((xz.max(axis=0) - xz.min(axis=0)).max()) / 2.0)
    return max(minimum, spread + pad)


def _canvas(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return FigureCanvasAgg(fig)


def new_figure(width_px: int, height_px: int, dpi: int = 100):
    """A pyplot-free figure of exactly ``width_px`` x ``height_px`` pixels on an Agg canvas."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, facecolor=BACKGROUND)
    _canvas(fig)
    return fig


def figure_rgb(fig) -> np.ndarray:
    """Draw ``fig`` and return its pixels (H, W, 3) uint8."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def pixel_axes(fig, camera: Camera, rect: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)):
    """An axes at ``rect`` (figure fraction) whose data coordinates are the camera's pixel coordinates."""
    ax = fig.add_axes(rect)
    ax.set_xlim(0, camera.width)
    ax.set_ylim(camera.height, 0)
    ax.set_axis_off()
    ax.set_facecolor(BACKGROUND)
    return ax


class Panel:
    """Artists for one stick figure on a pixel axes: floor, grid, trajectory, one line per chain, a label.

    Built once; ``update`` moves the artists for a new pose, so an animation redraws without rebuilding anything.
    """

    def __init__(self, ax, *, chain: Chain, floor: float, colors: Sequence[str] | None = None,
                 label: str | None = None, linewidth: float | None = None, grid_step: float = 0.5,
                 grid_half: float = 2.0, trajectory: bool = False, root: int = 0):
        from matplotlib.collections import LineCollection
        from matplotlib.patches import Polygon

        self.ax, self.chain, self.floor, self.root = ax, [list(c) for c in chain], float(floor), root
        self.grid_step, self.grid_half, self.show_trajectory = grid_step, grid_half, trajectory
        self.colors = chain_colors(self.chain, colors)
        self.floor_patch = Polygon(np.zeros((4, 2)), closed=True, facecolor=FLOOR_COLOR, edgecolor="none", zorder=0)
        ax.add_patch(self.floor_patch)
        self.grid = LineCollection([], colors=GRID_COLOR, linewidths=0.8, zorder=1)
        ax.add_collection(self.grid)
        (self.traj,) = ax.plot([], [], color=TRAJECTORY_COLOR, lw=1.5, zorder=2, solid_capstyle="round")
        self.lw = linewidth
        self.lines = [ax.plot([], [], color=c, solid_capstyle="round", solid_joinstyle="round", zorder=3)[0]
                      for c in self.colors]
        self.label = None
        if label:
            self.label = ax.text(0.03, 0.97, label, transform=ax.transAxes, ha="left", va="top", fontsize=11,
                                 color="#202020", zorder=10, parse_math=False)  # a run name is not mathtext

    def update(self, joints: np.ndarray, camera: Camera, *, history: np.ndarray | None = None,
               ended: bool = False) -> None:
        """Draw pose ``joints`` (J, 3); ``history`` (t, 3) root positions for the trajectory; ``ended`` greys label."""
        lw = self.lw if self.lw is not None else max(1.5, camera.scale * 0.025)  # ~2.5 cm thick limbs
        self._update_floor(camera)
        px = project(joints, camera)
        depth = view(joints, camera)[:, 2]
        for i, (line, c) in enumerate(zip(self.lines, self.chain)):
            line.set_data(px[c, 0], px[c, 1])
            line.set_linewidth(lw)
            # nearer chains on top: a cheap painter's order, enough for five chains
            d = np.nanmean(depth[c]) if np.isfinite(depth[c]).any() else 0.0
            line.set_zorder(3 + 1.0 / (1.0 + math.exp(-d)) + 1e-3 * i)
        if self.show_trajectory and history is not None and len(history):
            h = np.asarray(history, dtype=np.float64).copy()
            h[:, 1] = self.floor
            hp = project(h, camera)
            self.traj.set_data(hp[:, 0], hp[:, 1])
        else:
            self.traj.set_data([], [])
        if self.label is not None:
            self.label.set_alpha(0.45 if ended else 1.0)

    def _update_floor(self, camera: Camera) -> None:
        tx, tz = camera.target[0], camera.target[2]
        h, s, y = self.grid_half, self.grid_step, self.floor
        x0, x1, z0, z1 = tx - h, tx + h, tz - h, tz + h
        corners = np.array([[x0, y, z0], [x1, y, z0], [x1, y, z1], [x0, y, z1]])
        self.floor_patch.set_xy(project(corners, camera))
        # grid lines at fixed world positions, so they slide past a following camera and show the motion
        xs = np.arange(math.ceil(x0 / s), math.floor(x1 / s) + 1) * s
        zs = np.arange(math.ceil(z0 / s), math.floor(z1 / s) + 1) * s
        segs = [[[x, y, z0], [x, y, z1]] for x in xs] + [[[x0, y, z], [x1, y, z]] for z in zs]
        self.grid.set_segments(list(project(np.asarray(segs).reshape(-1, 2, 3), camera)) if segs else [])


def render_frame(joints: np.ndarray, *, chain: Chain, title: str | None = None, ax=None,
                 size: tuple[int, int] = (320, 320), camera: Camera | None = None,
                 trajectory: np.ndarray | None = None, colors: Sequence[str] | None = None,
                 floor: float | None = None) -> np.ndarray:
    """Render one pose (J, 3) and return the picture (H, W, 3) uint8.

    ``size`` is (width, height) in pixels; the default camera is ``fit_camera`` on this pose. With ``ax`` the figure is
    drawn into that axes (its limits become the camera's pixel box) and the whole figure's pixels are returned.
    ``trajectory`` (t, 3) root positions are drawn on the floor. The title is the panel's label (top left).
    """
    j = check_joints(joints, chain, ndim=2)
    if camera is None:
        camera = fit_camera([j[None]], width=int(size[0]), height=int(size[1]))
    fl = floor_height([j]) if floor is None else float(floor)
    if ax is None:
        fig = new_figure(camera.width, camera.height)
        ax = pixel_axes(fig, camera)
    else:
        fig = ax.figure
        if getattr(fig, "canvas", None) is None or not hasattr(fig.canvas, "buffer_rgba"):
            _canvas(fig)
        ax.set_xlim(0, camera.width)
        ax.set_ylim(camera.height, 0)
        ax.set_axis_off()
    panel = Panel(ax, chain=chain, floor=fl, colors=colors, label=title, trajectory=trajectory is not None,
                  grid_half=floor_half_extent([j[None]]))
    panel.update(j, camera, history=trajectory)
    return figure_rgb(fig)


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 picture as PNG, atomically."""
    from PIL import Image

    from src.common.io import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(tmp, format="PNG")


def save_frame(path: str | os.PathLike, joints: np.ndarray, **kwargs: Any) -> np.ndarray:
    """``render_frame`` then ``save_png``; returns the picture."""
    img = render_frame(joints, **kwargs)
    save_png(path, img)
    return img


def with_target(camera: Camera, offset: np.ndarray) -> Camera:
    """The camera moved by a world ``offset`` (3,) (used to follow the root)."""
    return replace(camera, target=tuple(float(a + b) for a, b in zip(camera.target, offset)))


def t_pose(*, height: float = 1.7) -> np.ndarray:
    """A 22-joint HumanML3D T-pose (22, 3), feet on y=0, facing +z, arms along x; used by tests and docs."""
    s = height / 1.7
    j = np.zeros((22, 3))
    j[0] = (0.0, 0.95, 0.0)                                   # pelvis
    j[1], j[2] = (0.09, 0.88, 0.0), (-0.09, 0.88, 0.0)        # hips (left +x, right -x)
    j[4], j[5] = (0.10, 0.50, 0.0), (-0.10, 0.50, 0.0)        # knees
    j[7], j[8] = (0.10, 0.08, -0.02), (-0.10, 0.08, -0.02)    # ankles
    j[10], j[11] = (0.10, 0.0, 0.10), (-0.10, 0.0, 0.10)      # feet
    j[3], j[6], j[9] = (0.0, 1.07, 0.0), (0.0, 1.20, 0.0), (0.0, 1.33, 0.0)   # spine
    j[12], j[15] = (0.0, 1.48, 0.0), (0.0, 1.62, 0.0)         # neck, head
    j[13], j[14] = (0.08, 1.40, 0.0), (-0.08, 1.40, 0.0)      # collars
    j[16], j[17] = (0.19, 1.40, 0.0), (-0.19, 1.40, 0.0)      # shoulders
    j[18], j[19] = (0.45, 1.40, 0.0), (-0.45, 1.40, 0.0)      # elbows
    j[20], j[21] = (0.70, 1.40, 0.0), (-0.70, 1.40, 0.0)      # wrists
    return j * s
