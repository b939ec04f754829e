"""PNG plots of result records: metric bars with intervals per method, and a trade-off scatter (one point per method).

A record is a plain dict: ``{"method": "lcr", "forget": {"FID": {"mean": 1.2, "ci95": 0.1}, ...}, "retain": {...}}``.
A metric value may also be a bare number (no interval). Missing or non-scalar values are skipped, never invented.
"""
from __future__ import annotations

import logging
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from src.common.errors import HmuError

log = logging.getLogger(__name__)

SETS = ("forget", "retain")
PALETTE = ("#4d4d4d", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22")
INTERVAL_KEYS = ("ci95", "ci", "interval")


def stat(record: Mapping[str, Any], set_name: str, metric: str) -> tuple[float, float] | None:
    """(mean, half-interval) of ``record[set_name][metric]``, or None when absent or not a finite scalar."""
    block = record.get(set_name)
    if not isinstance(block, Mapping) or metric not in block:
        return None
    v = block[metric]
    if isinstance(v, Mapping):
        mean = v.get("mean")
        ci = next((v[k] for k in INTERVAL_KEYS if v.get(k) is not None), 0.0)
    else:
        mean, ci = v, 0.0
    try:
        mean, ci = float(mean), float(ci)
    except (TypeError, ValueError):
        log.warning("%s / %s / %s is not a number (%r); skipped", record.get("method"), set_name, metric, mean)
        return None
    if not math.isfinite(mean):
        return None
    return mean, (abs(ci) if math.isfinite(ci) else 0.0)


def is_not_finite(record: Mapping[str, Any], set_name: str, metric: str) -> bool:
    """True when ``record[set_name][metric]`` was computed but its mean is NaN or inf (not "not measured")."""
    block = record.get(set_name)
    v = block.get(metric) if isinstance(block, Mapping) else None
    mean = v.get("mean") if isinstance(v, Mapping) else v
    return isinstance(mean, float) and not math.isfinite(mean)


def _methods(records: Sequence[Mapping[str, Any]]) -> list[str]:
    if not records:
        raise HmuError("no result records to plot")
    names = []
    for i, r in enumerate(records):
        m = r.get("method") if isinstance(r, Mapping) else None
        if not isinstance(m, str) or not m:
            raise HmuError(f"result record {i} has no 'method' name")
        names.append(m)
    return names


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """Stable colours: the i-th distinct method gets the i-th palette colour (the original/first is grey)."""
    out: dict[str, str] = {}
    for m in methods:
        if m not in out:
            out[m] = PALETTE[len(out) % len(PALETTE)]
    return out


def _figure(size: tuple[int, int], dpi: int):
    from src.viz.skeleton import new_figure

    return new_figure(int(size[0]), int(size[1]), dpi=dpi)


def plain_text(fig) -> None:
    """Every text of ``fig`` as plain text: run names, concepts and notes are the user's, and a ``$`` in them must
    not start matplotlib's math parser (which raises on ``$\\frac{$`` when the figure is drawn)."""
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        t.set_parse_math(False)


def _quiet_axes(ax, *, color: str, axis: str = "both") -> None:
    """A light grid (on ``axis``) drawn under the data, and no top or right spine: both charts' axes style."""
    ax.grid(axis=axis, color=color, lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _save(fig, path: str | os.PathLike, dpi: int) -> Path:
    from src.common.io import atomic_path

    plain_text(fig)
    out = Path(path)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, facecolor=fig.get_facecolor())
    log.info("wrote %s", out)
    return out


def metric_bars(records: Sequence[Mapping[str, Any]], metrics: Sequence[str], path: str | os.PathLike, *,
                sets: Sequence[str] = SETS, title: str | None = None, size: tuple[int, int] | None = None,
                dpi: int = 100, notes: Mapping[str, str] | None = None, titles: Mapping[str, str] | None = None,
                reference: Mapping[str, float] | None = None) -> Path:
    """One bar per method with its interval as an error bar; a row per set (forget, retain), a column per metric.

    ``size`` is (width, height) in pixels (default: 260 px per metric column, 240 px per set row). A panel no record
    has a value for is dropped (no axes) and replaced by a note: ``notes["<set>/<metric>"]`` or ``notes[metric]``
    when given (why it is not measured, e.g. MM-Safe on the retain set), else "not measured".
    ``titles["<set>/<metric>"]``: a panel's title (default ``"<set> · <metric>"``); ``reference["<set>/<metric>"]``:
    the ground truth's value, drawn as a dashed line labelled "ground truth". Returns ``path``.
    """
    methods = _methods(records)
    metrics = list(metrics)
    if not metrics:
        raise HmuError("metric_bars: no metrics given")
    sets = [s for s in sets if any(isinstance(r.get(s), Mapping) for r in records)]
    if not sets:
        raise HmuError(f"metric_bars: no record has any of the sets {', '.join(SETS)}")
    for m in metrics:
        if not any(stat(r, s, m) is not None or is_not_finite(r, s, m) for r in records for s in sets):
            known = sorted({k for r in records for s in sets if isinstance(r.get(s), Mapping) for k in r[s]})
            raise HmuError(f"metric '{m}' is in no result record (known: {', '.join(known) or 'none'})")
    size = size or (max(360, 260 * len(metrics)), 60 + 240 * len(sets))
    fig = _figure(size, dpi)
    colors = method_colors(methods)
    axes = fig.subplots(len(sets), len(metrics), squeeze=False)
    x = list(range(len(methods)))
    for i, s in enumerate(sets):
        for j, m in enumerate(metrics):
            ax = axes[i][j]
            vals = [stat(r, s, m) for r in records]
            if all(v is None for v in vals):
                ax.set_axis_off()
                nan = any(is_not_finite(r, s, m) for r in records)
                note = (notes or {}).get(f"{s}/{m}") or (notes or {}).get(m) or \
                    ("NaN: computed, not a number" if nan else "not measured")
                head = (titles or {}).get(f"{s}/{m}", f"{s} · {m}")
                ax.text(0.5, 0.5, f"{head}\n" + "\n".join(textwrap.wrap(note, 30)), transform=ax.transAxes,
                        ha="center", va="center", fontsize=9, color="#666666")
                continue
            for xi, (meth, v) in enumerate(zip(methods, vals)):
                if v is None:
                    ax.text(xi, 0.0, "NaN" if is_not_finite(records[xi], s, m) else "n/a",
                            transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                            fontsize=7, color="#888888")
                    continue
                ax.bar(xi, v[0], yerr=v[1] if v[1] > 0 else None, color=colors[meth], capsize=3, width=0.7,
                       error_kw={"elinewidth": 1.0, "ecolor": "#222222"})
            ax.set_title((titles or {}).get(f"{s}/{m}", f"{s} · {m}"), fontsize=10)
            ref = (reference or {}).get(f"{s}/{m}")
            if ref is not None:
                ax.axhline(ref, color="#444444", ls="--", lw=1.0, zorder=3)
                ax.text(len(methods) - 0.45, ref, "ground truth", ha="right", va="bottom", fontsize=7, color="#444444")
            ax.set_xticks(x)
            ax.set_xlim(-0.6, len(methods) - 0.4)
            ax.set_xticklabels(methods if i == len(sets) - 1 else [""] * len(methods), rotation=30, ha="right",
                               fontsize=8)
            ax.tick_params(axis="y", labelsize=8)
            _quiet_axes(ax, color="#e0e0e0", axis="y")
    if title:
        fig.suptitle(title, fontsize=12)
    plain_text(fig)
    fig.tight_layout()
    return _save(fig, path, dpi)


def tradeoff_scatter(records: Sequence[Mapping[str, Any]], x_metric: str, y_metric: str, path: str | os.PathLike, *,
                     x_set: str = "forget", y_set: str = "retain", title: str | None = None,
                     size: tuple[int, int] = (560, 440), dpi: int = 100) -> Path:
    """One point per method at (``x_set``/``x_metric``, ``y_set``/``y_metric``) with both intervals as error bars.

    Typical use: ground-truth leakage on the forget set against retain-set quality (FID). Methods lacking either value
    are left out with a warning. Returns ``path``.
    """
    methods = _methods(records)
    colors = method_colors(methods)
    pts = []
    for meth, r in zip(methods, records):
        xv, yv = stat(r, x_set, x_metric), stat(r, y_set, y_metric)
        if xv is None or yv is None:
            log.warning("%s has no %s/%s or %s/%s; left out of the scatter", meth, x_set, x_metric, y_set, y_metric)
            continue
        pts.append((meth, xv, yv))
    if not pts:
        raise HmuError(f"no record has both {x_set}/{x_metric} and {y_set}/{y_metric}")
    fig = _figure(size, dpi)
    ax = fig.add_subplot(1, 1, 1)
    for meth, (xm, xc), (ym, yc) in pts:
        ax.errorbar(xm, ym, xerr=xc or None, yerr=yc or None, fmt="o", ms=7, color=colors[meth], capsize=3,
                    elinewidth=1.0, label=meth)
    ax.set_xlabel(f"{x_set} · {x_metric}")
    ax.set_ylabel(f"{y_set} · {y_metric}")
    _quiet_axes(ax, color="#e6e6e6")
    ax.margins(0.15)
    if title:
        ax.set_title(title, fontsize=11)
    plain_text(fig)
    fig.tight_layout()
    place_labels(ax, [(xm, ym) for _, (xm, _), (ym, _) in pts], [m for m, _, _ in pts],
                 [colors[m] for m, _, _ in pts])
    return _save(fig, path, dpi)


def place_labels(ax, points: Sequence[tuple[float, float]], labels: Sequence[str], colors: Sequence[str], *,
                 fontsize: float = 9, step: float = 9.0, rings: int = 12) -> list:
    """Annotate each point with its label where the label overlaps no other label and no marker.

    Greedy: points in order; for each, candidate offsets on rings of growing radius (``step`` points apart, 12
    directions a ring), the first whose text box (display pixels, 2 px padding) is disjoint from every box placed so
    far and from every marker, and inside the axes, wins (a thin leader line joins labels set far off). Points that
    coincide thus fan their labels out instead of printing them on top of each other. Returns the text artists; call
    after the layout is final (``tight_layout``), since boxes are measured in display space.
    """
    import matplotlib.transforms as mtransforms

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    ax_box = ax.get_window_extent(renderer)
    markers = []
    for x, y in points:
        cx, cy = to_px((x, y))
        markers.append(mtransforms.Bbox([[cx - 5, cy - 5], [cx + 5, cy + 5]]))
    placed: list = []
    texts = []
    dirs = [(math.cos(a), math.sin(a)) for a in [math.radians(45 + 30 * k) for k in range(12)]]
    dpi_scale = fig.dpi / 72.0
    for (x, y), label, color in zip(points, labels, colors):
        chosen = None
        for ring in range(1, rings + 1):
            r = step * ring
            for dx, dy in dirs:
                off = (r * dx, r * dy)
                ha = "left" if dx > 0.3 else "right" if dx < -0.3 else "center"
                va = "bottom" if dy > 0.3 else "top" if dy < -0.3 else "center"
                t = ax.annotate(label, (x, y), xytext=off, textcoords="offset points", fontsize=fontsize,
                                color=color, ha=ha, va=va, parse_math=False)
                bb = t.get_window_extent(renderer).expanded(1.0, 1.0).padded(2 * dpi_scale)
                inside = (bb.x0 >= ax_box.x0 - 2 and bb.x1 <= ax_box.x1 + 40 and bb.y0 >= ax_box.y0 - 2
                          and bb.y1 <= ax_box.y1 + 2)
                if inside and not any(bb.overlaps(o) for o in placed + markers):
                    chosen = (t, bb, r)
                    break
                t.remove()
            if chosen:
                break
        if chosen is None:  # nowhere free: keep the first candidate rather than drop the label
            t = ax.annotate(label, (x, y), xytext=(6, 6), textcoords="offset points", fontsize=fontsize, color=color)
            chosen = (t, t.get_window_extent(renderer), step)
            log.warning("tradeoff: no free place for the label %r", label)
        t, bb, r = chosen
        if r > 1.5 * step:
            t.remove()
            off = t.xyann
            t = ax.annotate(label, (x, y), xytext=off, textcoords="offset points", fontsize=fontsize, color=color,
                            ha=t.get_ha(), va=t.get_va(),
                            arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6, "shrinkA": 1, "shrinkB": 4})
        placed.append(bb)
        texts.append(t)
    return texts
