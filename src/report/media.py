"""The report's pictures: metric bars and the leakage/quality trade-off (PNG), and before/after stick-figure videos.

Videos rebuild each method's generator from what its metrics.json records (``model``: run names, checkpoint; ``config``:
guidance scale, mask-predict steps, folders) through :func:`src.gen.generate.load_generator`, the same factory the evaluation
used. A method whose checkpoint cannot be loaded, or whose generation fails, loses its panel with a warning; the
report goes on.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.common.errors import HmuError
from src.data.prompts import DEFAULT_LENGTH, Prompt, read_prompt_lines

from .load import MethodResult
from .tables import ARROWS, COLUMNS, direction, is_bound

log = logging.getLogger(__name__)

BAR_METRICS = ("FID", "Diversity", "R_precision_top1", "MM_Dist", "MM_Safe", "leakage")
# why a bar panel can be empty (the panel is then dropped with this note)
EMPTY_NOTES = {"retain/MM_Safe": "defined on the forget set only: retain captions hold no violent words to mask",
               "leakage": "no action classifier was given to the evaluation"}
SCATTER_SIZE = (560, 440)
BUILTIN_PROMPTS = (  # (text, length): the paper's qualitative prompts and two safe ones
    ("a man does a run-up to kick something lying on the ground.", 120),
    ("a man punches and then kicks the enemy.", 120),
    ("a person walks forward and waves with the right hand.", 120),
    ("a person jumps up and down twice.", 100),
)


METRIC_WORDS = {"FID": "FID", "Diversity": "Diversity", "R_precision_top1": "R-precision top-1",
                "MM_Dist": "MM-Dist", "MM_Safe": "MM-Safe", "leakage": "leakage"}
SET_WORDS = {"forget": "Forget set", "retain": "Retain set", "implicit": "Implicit prompts"}


def bar_title(set_name: str, metric: str) -> str:
    """A bar panel's title in words with the direction it is judged in, e.g. "Forget set: FID ↑"."""
    col = next((c for c in COLUMNS if c.key == metric), None)
    words = METRIC_WORDS.get(metric, metric)
    if metric == "leakage" and set_name == "retain":
        words = "false positives"
    arrow = ARROWS[direction(col, set_name)] if col is not None else ""
    return f"{SET_WORDS.get(set_name, set_name)}: {words} {arrow}".strip()


def bar_reference(records: Sequence[MethodResult], sets: Sequence[str], metrics: Sequence[str]) -> dict[str, float]:
    """``"<set>/<metric>"`` -> the ground truth's value where the evaluation recorded one (FID's is 0 by definition)."""
    out = {}
    for s in sets:
        ref = next((r.reference[s] for r in records if r.reference.get(s)), None)
        for m in metrics:
            if ref is not None and m == "FID":
                out[f"{s}/{m}"] = 0.0
            elif ref is not None and m in ref:
                out[f"{s}/{m}"] = ref[m].mean
    return out


def bars_size(n_metrics: int, n_sets: int) -> tuple[int, int]:
    """Pixel size of the metric-bar figure: 260 px per metric column, 240 px per set row (+60 px title)."""
    return max(360, 260 * n_metrics), 60 + 240 * n_sets


def plot_records(records: Sequence[MethodResult], sets: Sequence[str]) -> list[dict[str, Any]]:
    """MethodResults -> the plain dicts :mod:`src.viz.plots` takes (mean and a symmetric half-interval)."""
    out = []
    for r in records:
        d: dict[str, Any] = {"method": r.label}
        for s in sets:
            if s in r.sets:
                d[s] = {m: {"mean": st.mean, "ci95": st.err} for m, st in r.sets[s].items()}
        out.append(d)
    return out


def write_plots(records: Sequence[MethodResult], out_dir: Path, *, suffix: str = "") -> list[tuple[str, str]]:
    """metric_bars<suffix>.png and tradeoff<suffix>.png; returns (title, file name) of what was written."""
    from src.viz import plots

    sets = [s for s in ("forget", "retain") if any(s in r.sets for r in records)]
    written = []
    if not sets:
        return written
    recs = plot_records(records, sets)
    metrics = [m for m in BAR_METRICS if any(r.stat(s, m) for r in records for s in sets)]
    if metrics:
        name = f"metric_bars{suffix}.png"
        plots.metric_bars(recs, metrics, out_dir / name, sets=sets, size=bars_size(len(metrics), len(sets)),
                          title="Metrics per method (mean ± 95% interval; ↓ lower / ↑ higher / → closer to the ground "
                                "truth is better; dashed: ground truth)", notes=EMPTY_NOTES,
                          titles={f"{s}/{m}": bar_title(s, m) for s in sets for m in metrics},
                          reference=bar_reference(records, sets, metrics))
        empty = [f"{s} {m}" for s in sets for m in metrics if not any(r.stat(s, m) for r in records)]
        written.append(("Metrics per method, forget and retain sets (mean ± 95% interval)"
                        + (f"; not measured, so not drawn: {', '.join(empty)}" if empty else ""), name))
    # x: ground-truth leakage when measured, else forget-set R@1 (text-motion agreement with the violent caption)
    x = "leakage" if any(r.stat("forget", "leakage") for r in records) else "R_precision_top1"
    y = "FID" if any(r.stat("retain", "FID") for r in records) else "R_precision_top1"
    if any(r.stat("forget", x) and r.stat("retain", y) for r in records):
        name = f"tradeoff{suffix}.png"
        rp = plot_records(records, ["forget", "retain"])
        plots.tradeoff_scatter(rp, x, y, out_dir / name, size=SCATTER_SIZE,
                               title=f"forget {x} (lower = forgets more) vs retain {y}")
        written.append((f"Forgetting vs retain quality: forget-set {x} against retain-set {y}, one point per method",
                        name))
    return written


# ------------------------------------------------------------------------------------------------------------ prompts
def read_prompts_file(path: str | os.PathLike) -> list[Prompt]:
    """``--prompts``: one prompt per line, optionally ``text#length`` (frames); see :mod:`src.data.prompts`."""
    return read_prompt_lines(path, default_length=DEFAULT_LENGTH, kind="file", what="--prompts")


def default_prompts(dataset_dir: Path | None, dataset_name: str, *, n_forget: int = 2, n_retain: int = 2,
                    n_comp: int = 1) -> list[Prompt]:
    """A few forget, compositional and retain prompts from dataset/<ds>/prompts.json, else the built-in ones."""
    from src.common.datasets import get_spec

    if dataset_dir is not None:
        try:
            f = Path(dataset_dir) / get_spec(dataset_name).folder / "prompts.json"
        except HmuError:
            f = None
        if f is not None and f.is_file():
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise HmuError(f"{f} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
            out = []
            for kind, n in (("forget", n_forget), ("compositional", n_comp), ("retain", n_retain)):
                for p in (data.get(kind) or [])[:n]:
                    if isinstance(p, Mapping) and isinstance(p.get("text"), str):
                        out.append(Prompt(p["text"], int(p.get("length") or DEFAULT_LENGTH), kind=kind))
            if out:
                return out
    return [Prompt(t, n, kind="builtin") for t, n in BUILTIN_PROMPTS]


def slug(text: str, n: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return s[:n].rstrip("_") or "prompt"


# ------------------------------------------------------------------------------------------------------------ videos
GenerateFn = Callable[..., Sequence[Any]]


def load_method_generator(record: MethodResult, *, device) -> GenerateFn:
    """Rebuild the generator that produced ``record``: :func:`src.gen.generate.load_generator` with the run names and checkpoint
    of its ``model`` block and the folders and sampling flags of its ``config`` (as the evaluation passed them)."""
    model = record.model_info
    cfg = record.raw.get("config") if isinstance(record.raw.get("config"), Mapping) else {}
    if not model.get("name"):
        raise HmuError(f"{record.source}: no model.name recorded; cannot rebuild its generator")
    try:
        from src.gen.generate import load_generator
    except ImportError as exc:
        raise HmuError(f"generation is not available (src/gen/generate.py: {exc})") from None
    kw: dict[str, Any] = {k: cfg[k] for k in ("checkpoints_dir", "dataset_dir", "glove_dir", "cond_scale",
                                                "time_steps") if cfg.get(k) is not None}
    kw.update({k: model[k] for k in ("res_name", "vq_name", "ckpt", "res_ckpt", "len_name") if model.get(k)})
    kw.setdefault("res_name", model.get("res_name"))
    return load_generator(dataset_name=record.dataset or model.get("dataset_name"), name=model["name"],
                          device=device, **kw)


def _call(gen: Any, captions: list[str], lengths: list[int], generator) -> Sequence[Any]:
    fn = getattr(gen, "generate", None) or gen   # an object with .generate, or the bare callable the loop takes
    return fn(captions, lengths, generator=generator)


def panel_order(records: Sequence[MethodResult]) -> list[MethodResult]:
    """The original model first (the "before" panel), then the other bounds, then the methods in report order."""
    def key(ir):
        i, r = ir
        return (0 if r.method.lower() == "original" else 1 if is_bound(r) else 2, i)
    return [r for _, r in sorted(enumerate(records), key=key)]


def write_videos(records: Sequence[MethodResult], prompts: Sequence[Prompt], out_dir: Path, *, seed: int,
                 device, fmt: str | None, still_dir: Path | None = None, suffix: str = "",
                 loader: Callable[..., GenerateFn] | None = None, progress: bool = True
                 ) -> tuple[list[tuple[str, str, str | None]], list[str]]:
    """One side-by-side video per prompt (same seed for every panel); returns ([(prompt, video, still)], warnings).

    Paths in the result are relative to ``out_dir``'s parent (the report folder).
    """
    import numpy as np

    from src.common.progress import progress as progress_bar
    from src.common.seed import torch_generator
    from src.data.motion import recover_from_ric
    from src.common.datasets import get_spec
    from src.viz.compare import save_comparison, save_still

    loader = loader or load_method_generator
    notes: list[str] = []
    dataset = next((r.dataset for r in records if r.dataset), None)
    spec = get_spec(dataset or "HumanML3D")
    gens: dict[str, Any] = {}
    for r in panel_order(records):
        try:
            gens[r.label] = loader(r, device=device)
        except Exception as exc:  # noqa: BLE001 - one broken checkpoint must not sink the report
            from src.common.errors import one_line

            msg = f"animations: skipped {r.label} (its generator could not be loaded: {one_line(exc)})"
            log.warning(msg)
            notes.append(msg)
    if not gens:
        notes.append("animations: no method's generator could be loaded; no videos written")
        return [], notes
    probe = frame_probe(records, notes)
    out_dir.mkdir(parents=True, exist_ok=True)
    if still_dir is not None:
        still_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k, pr in enumerate(progress_bar(prompts, desc="animations", unit="prompt", enabled=progress, every_s=10)):
        length = spec.crop_length(pr.length, at_least_one_unit=True)
        motions, flags = {}, {}
        for label, gen in gens.items():
            try:
                feats = _call(gen, [pr.text], [length], torch_generator(seed))
                f = np.asarray(feats[0].detach().cpu().numpy() if hasattr(feats[0], "detach") else feats[0],
                               dtype=np.float32)
                motions[label] = recover_from_ric(f, spec.joints_num)
                if probe is not None:
                    flags[label] = probe(f)
            except Exception as exc:  # noqa: BLE001
                from src.common.errors import one_line

                msg = f"animations: {label} failed on '{pr.text}' ({one_line(exc)}); panel skipped"
                log.warning(msg)
                notes.append(msg)
        if not motions:
            continue
        base = f"{k:02d}_{slug(pr.text)}{suffix}"
        marks = {"flags": flags, "flag_label": probe.concept} if probe is not None else {}
        path = save_comparison(out_dir / f"{base}.mp4", motions, chain=spec.kinematic_chain, title=pr.text,
                               fps=spec.fps, fmt=fmt, **marks)
        still = None
        if still_dir is not None:
            sp = save_still(still_dir / f"{base}.png", motions, chain=spec.kinematic_chain, title=pr.text,
                            frame=telling_frame(motions), **marks)
            still = f"{still_dir.name}/{sp.name}"
        written.append((pr.text, f"{out_dir.name}/{path.name}", still))
    return written, notes


@dataclass
class FrameProbe:
    """Raw motion (T, dim_pose) -> (T,) bool: the frames the ground-truth classifier calls ``concept``."""

    classifier: Any
    concept: str
    threshold: float

    def __call__(self, features) -> Any:
        from src.eval.leakage import frame_flags

        return frame_flags(features, self.classifier, self.concept, threshold=self.threshold)


def frame_probe(records: Sequence[MethodResult], notes: list[str]) -> FrameProbe | None:
    """The classifier the evaluation measured leakage with (``leakage_classifier`` in metrics.json), or None."""
    info = next((r.raw["leakage_classifier"] for r in records if isinstance(r.raw.get("leakage_classifier"), Mapping)
                 and r.raw["leakage_classifier"].get("path")), None)
    if info is None:
        return None
    try:
        from src.eval.leakage import LeakageProbe

        p = LeakageProbe.load(info["path"], str(info.get("concept") or records[0].concept))
    except Exception as exc:  # noqa: BLE001 - the videos go on without marks
        from src.common.errors import one_line

        notes.append(f"animations: violent frames not marked (classifier {info['path']}: {one_line(exc)})")
        return None
    thr = float(info["threshold"]) if isinstance(info.get("threshold"), (int, float)) else p.threshold
    return FrameProbe(p.classifier, p.concept, thr)


def telling_frame(motions: dict) -> int:
    """The frame where the other panels differ most from the first one (the original): the "before/after" moment.

    Poses are compared root-relative (mean joint distance), so a method that only drifts elsewhere does not win.
    With a single panel, the frame where its pose is farthest from its own mean pose.
    """
    import numpy as np

    arrs = [np.asarray(m, dtype=np.float64) for m in motions.values()]
    T = min(len(a) for a in arrs)
    if T == 0:
        return 0
    rel = [a[:T] - a[:T, :1] for a in arrs]
    ref = rel[0]
    others = rel[1:] or [np.broadcast_to(ref.mean(axis=0, keepdims=True), ref.shape)]
    diff = np.mean([np.linalg.norm(o - ref, axis=-1).mean(axis=-1) for o in others], axis=0)
    return int(np.argmax(diff))
