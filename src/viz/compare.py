"""Side-by-side stick-figure videos (original next to each method), mp4 through imageio-ffmpeg's binary or gif.

``save_comparison(path, {"original": (T, J, 3), "lcr": ...}, chain=..., title=prompt)``;
``save_still(png, motions, ...)`` writes one frame of the same picture.
CLI (src/viz/animate.py): ``python -m src.viz.animate --joints a.npy --joints b.npy --labels original lcr --title "a man kicks"
         --out x.mp4``
"""
from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from src.common.errors import HmuError

log = logging.getLogger(__name__)

FORMATS = ("mp4", "gif")


def ffmpeg_exe() -> str | None:
    """Path of the ffmpeg binary shipped by ``imageio-ffmpeg``, or None when the package or its binary is missing."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # noqa: BLE001 - any failure means "no ffmpeg", the caller falls back to gif
        log.debug("imageio-ffmpeg unavailable: %s", exc)
        return None
    return exe if exe and os.path.isfile(exe) else None


def _even(n: float) -> int:
    """Round up to an even pixel count (yuv420p needs even sizes)."""
    n = round(n)
    return n + (n % 2)


def _wrap_title(title: str, width_px: int, fontsize: float, max_lines: int = 2) -> str:
    chars = max(10, int(width_px / (0.6 * fontsize * 100 / 72)))  # DejaVu Sans: ~0.6 em per character
    lines = textwrap.wrap(" ".join(title.split()), chars) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, chars - 1)].rstrip() + "…"
    return "\n".join(lines)


def render_comparison(motions: Mapping[str, object], *, chain: Sequence[Sequence[int]], title: str | None = None,
                      panel_size: tuple[int, int] = (320, 320), azim: float = 30.0, elev: float = 15.0,
                      follow: bool | None = None, trajectory: bool = True, root: int = 0,
                      flags: Mapping[str, Sequence[bool]] | None = None, flag_label: str = "flagged") -> Iterator:
    """Yield frames (H, W, 3) uint8 of the motions side by side, in dict order; shorter motions hold their last frame.

    One figure for the whole video; each frame only moves the artists (no figure rebuild), which keeps it fast. All
    panels share one camera fitted to every motion, so sizes and positions compare across methods. ``follow`` moves
    that camera with each panel's root; None (default) follows only when a root travels more than 3 m.

    ``flags`` ({label: (T,) bool}, e.g. the frames a classifier calls violent) adds to that panel a timeline strip
    along its bottom edge, red where flagged, with a cursor at the current frame, and a red ``flag_label`` badge
    (top right) on the flagged frames.
    """
    import numpy as np

    from . import skeleton as sk

    if not motions:
        raise HmuError("no motions to render")
    arrays = {str(k): sk.check_joints(v, chain, name=str(k)) for k, v in motions.items()}
    n = len(arrays)
    pw, ph = _even(panel_size[0]), _even(panel_size[1])
    title_fs = 13.0
    title_text = _wrap_title(title, n * pw, title_fs) if title else None
    title_h = _even((title_text.count("\n") + 1) * title_fs * 100 / 72 * 1.35 + 10) if title_text else 0
    W, H = n * pw, ph + title_h

    if follow is None:
        follow = sk.should_follow(list(arrays.values()), root=root)
    cam = sk.fit_camera(list(arrays.values()), width=pw, height=ph, azim=azim, elev=elev, follow=follow, root=root)
    floor = sk.floor_height(list(arrays.values()))
    half = sk.floor_half_extent(list(arrays.values()), follow=follow, root=root)
    fig = sk.new_figure(W, H)
    if title_text:
        fig.text(0.5, 1.0 - (title_h / 2) / H, title_text, ha="center", va="center", fontsize=title_fs,
                 color="#111111", parse_math=False)  # a prompt is plain text: '$x$' is not mathtext
    panels = []
    for i, name in enumerate(arrays):
        ax = sk.pixel_axes(fig, cam, rect=(i / n, 0.0, 1.0 / n, ph / H))
        panels.append(sk.Panel(ax, chain=chain, floor=floor, label=name, trajectory=trajectory, root=root,
                               grid_half=half))
    # thin separators between panels
    for i in range(1, n):
        fig.add_artist(_vline(fig, i / n, ph / H))

    offsets = {k: sk.root_offsets(a, root) for k, a in arrays.items()}
    T = max(len(a) for a in arrays.values())
    marks = {}
    for panel, k in zip(panels, arrays):
        if flags is not None and k in flags:
            marks[k] = _FlagStrip(panel.ax, flags[k], n_frames=len(arrays[k]), width=pw, height=ph,
                                  label=flag_label)
    for t in range(T):
        for panel, (k, a) in zip(panels, arrays.items()):
            ti = min(t, len(a) - 1)
            c = sk.with_target(cam, offsets[k][ti]) if follow else cam
            panel.update(a[ti], c, history=a[: ti + 1, root], ended=t >= len(a))
            if k in marks:
                marks[k].update(ti)
        frame = sk.figure_rgb(fig)
        assert frame.shape == (H, W, 3), frame.shape
        yield np.ascontiguousarray(frame)


FLAG_COLOR = "#d62728"
STRIP_COLOR = "#d9d9d9"


class _FlagStrip:
    """A panel's timeline strip (bottom edge, red where flagged), a cursor on it, and a badge on flagged frames."""

    def __init__(self, ax, flags: Sequence[bool], *, n_frames: int, width: int, height: int, label: str):
        import numpy as np
        from matplotlib.patches import Rectangle

        f = np.asarray(flags, dtype=bool).reshape(-1)
        if len(f) != n_frames:
            raise HmuError(f"flags: {len(f)} values for a motion of {n_frames} frames")
        self.flags, self.n, self.w = f, n_frames, width
        y0, h = height - 9, 6                                  # pixel rows (the axes' y grows downwards)
        ax.add_patch(Rectangle((4, y0), width - 8, h, facecolor=STRIP_COLOR, edgecolor="none", zorder=20))
        for a, b in _runs(f):
            ax.add_patch(Rectangle((self._x(a), y0), self._x(b) - self._x(a), h, facecolor=FLAG_COLOR,
                                   edgecolor="none", zorder=21))
        (self.cursor,) = ax.plot([], [], color="#202020", lw=1.5, zorder=22)
        self.y = (y0 - 2, y0 + h + 2)
        self.badge = ax.text(0.97, 0.97, label, transform=ax.transAxes, ha="right", va="top", fontsize=10,
                             color="white", zorder=23, visible=False, parse_math=False,
                             bbox={"boxstyle": "round,pad=0.25", "facecolor": FLAG_COLOR, "edgecolor": "none"})

    def _x(self, t: float) -> float:
        return 4 + (self.w - 8) * t / max(self.n, 1)

    def update(self, t: int) -> None:
        x = self._x(t + 0.5)
        self.cursor.set_data([x, x], list(self.y))
        self.badge.set_visible(bool(self.flags[t]))


def _runs(f) -> list[tuple[int, int]]:
    """[(start, end)) of the True runs of a bool array."""
    out, start = [], None
    for i, v in enumerate(list(f) + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    return out


def _vline(fig, x: float, top: float):
    from matplotlib.lines import Line2D

    return Line2D([x, x], [0.0, top], transform=fig.transFigure, color="#b0b0b0", lw=1.0)


def resolve_output(path: str | os.PathLike, fmt: str | None = None, *, warn: bool = False) -> tuple[Path, str]:
    """(file that will be written, 'mp4' | 'gif'): ``fmt`` or the suffix decides; mp4 becomes gif without ffmpeg."""
    out = Path(path)
    fmt = (fmt or ("gif" if out.suffix.lower() == ".gif" else "mp4")).lower()
    if fmt not in FORMATS:
        raise HmuError(f"unknown video format '{fmt}' (known: {', '.join(FORMATS)})")
    if fmt == "mp4" and ffmpeg_exe() is None:
        if warn:
            log.warning("ffmpeg from imageio-ffmpeg not found (pip install imageio-ffmpeg); writing a gif instead")
        fmt = "gif"
    return (out if out.suffix.lower() == f".{fmt}" else out.with_suffix(f".{fmt}")), fmt


def save_still(path: str | os.PathLike, motions: Mapping[str, object], *, chain: Sequence[Sequence[int]],
               title: str | None = None, frame: int = -1, **kwargs) -> Path:
    """Write one frame (index ``frame``, negative counts from the end) of the side-by-side video as a PNG."""
    from .skeleton import save_png

    T = max(len(v) for v in motions.values()) if motions else 0
    idx = frame if frame >= 0 else T + frame
    if not 0 <= idx < max(T, 1):
        raise HmuError(f"frame {frame} is outside the video's {T} frames")
    for i, img in enumerate(render_comparison(motions, chain=chain, title=title, **kwargs)):
        if i == idx:
            save_png(path, img)
            break
    return Path(path)


def save_comparison(path: str | os.PathLike, motions: Mapping[str, object], *, chain: Sequence[Sequence[int]],
                    title: str | None = None, fps: float = 20, fmt: str | None = None,
                    panel_size: tuple[int, int] = (320, 320), follow: bool | None = None, trajectory: bool = True,
                    progress: bool = False, flags: Mapping[str, Sequence[bool]] | None = None,
                    flag_label: str = "flagged") -> Path:
    """Write a side-by-side video of ``motions`` ({label: (T, J, 3)}) and return the path actually written.

    ``fmt`` is 'mp4' or 'gif' (default: from the suffix of ``path``, mp4 otherwise). mp4 is encoded with the ffmpeg that
    ``imageio-ffmpeg`` ships; without it a gif is written next to ``path`` (suffix .gif) and a warning logged. The file
    appears atomically: a killed run leaves no partial video.
    """
    from src.common.io import atomic_path

    if fps <= 0:
        raise HmuError(f"fps must be positive, got {fps}")
    out, fmt = resolve_output(path, fmt, warn=True)
    frames = render_comparison(motions, chain=chain, title=title, panel_size=panel_size, follow=follow,
                               trajectory=trajectory, flags=flags, flag_label=flag_label)
    if progress:
        from src.common.progress import progress as progress_bar

        T = max(len(v) for v in motions.values())
        frames = progress_bar(frames, total=T, desc=f"render {out.name}", unit="frame", every_s=10)
    with atomic_path(out, suffix=f".{fmt}") as tmp:
        if fmt == "mp4":
            _write_mp4(tmp, frames, fps=fps)
        else:
            _write_gif(tmp, frames, fps=fps)
    log.info("wrote %s", out)
    return out


def _write_mp4(path: Path, frames: Iterator, *, fps: float) -> None:
    import imageio_ffmpeg

    writer = None
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = imageio_ffmpeg.write_frames(
                    str(path), (w, h), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                    macro_block_size=1, quality=None, ffmpeg_log_level="error",
                    output_params=["-crf", "20", "-preset", "veryfast", "-movflags", "+faststart", "-f", "mp4"])
                writer.send(None)  # start the generator
            writer.send(frame)
    finally:
        if writer is not None:
            writer.close()


def _write_gif(path: Path, frames: Iterator, *, fps: float) -> None:
    from PIL import Image

    # one palette per frame (fast octree: ~3x quicker than median cut, same look for flat-coloured line art);
    # identical consecutive frames are merged by Pillow (their durations add up)
    imgs = [Image.fromarray(f).quantize(colors=128, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            for f in frames]
    imgs[0].save(path, format="GIF", save_all=True, append_images=imgs[1:], duration=round(1000 / fps), loop=0,
                 disposal=1)
