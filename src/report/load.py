"""Read every ``metrics.json`` under a results folder into flat, uniform records the report can tabulate.

The writer is :mod:`src.eval.results` (its docstring holds the schema). This reader is deliberately tolerant about
where things sit, so that the report keeps working while that schema settles, and strict about what a value is:

- one method per file: ``{"method", "model", "dataset", "concept", "seed", "repeats", "wall_time_s", "sets": {...}}``;
  a file may instead hold several under ``"methods"`` (a list, or a dict keyed by method name) or ``"results"``;
- a set (``sets.forget``, ``sets.retain``, ``sets.implicit``, ...) holds ``"metrics": {name: summary}``, its size as
  ``"n"`` (or ``"set": {"n_items"}``, as :func:`src.eval.loop.evaluate` returns it) and optionally its own
  ``"reference"`` (the ground-truth row);
- a summary is ``{"mean", "ci95", ...}`` (``ci``/``interval`` as half-widths, or ``bootstrap``/``wilson`` as [lo, hi])
  or a bare number;
- ground-truth leakage is the set's ``leakage`` metric, or a top-level ``"leakage": {"forget", "implicit",
  "retain_fp"}`` block (``rate`` or ``mean``; ``ci`` half-width or [lo, hi]).

Anything missing stays missing (shown as "–"), never invented. A file that is not JSON, not an object, or lacks a
method name raises :class:`HmuError` naming the file.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.common.errors import HmuError

METRICS_FILE = "metrics.json"
REPORT_DIR = "report"
HALF_KEYS = ("ci95", "ci", "interval", "half")
RANGE_KEYS = ("bootstrap", "wilson", "ci", "interval", "range")
EDIT_TIME_KEYS = ("edit_time_s", "unlearn_time_s", "method_time_s")
LEAKAGE_KEYS = {"forget": "forget", "implicit": "implicit", "retain_fp": "retain", "retain": "retain"}


@dataclass(frozen=True)
class Stat:
    """A summarised metric: mean with an optional half-width (± form) or [lo, hi] range, and its N."""

    mean: float
    half: float | None = None
    lo: float | None = None
    hi: float | None = None
    n: int | None = None

    @property
    def err(self) -> float:
        """A symmetric half-width for error bars (the larger side of a [lo, hi] range); 0 when there is none."""
        if self.half is not None:
            return self.half
        if self.lo is not None and self.hi is not None:
            return max(self.mean - self.lo, self.hi - self.mean, 0.0)
        return 0.0


@dataclass
class MethodResult:
    """One method (on one model, dataset and concept) as the report sees it."""

    method: str
    source: Path
    model: str | None = None
    dataset: str | None = None
    concept: str | None = None
    seed: int | None = None
    repeats: int | None = None
    wall_time_s: float | None = None      # evaluation wall time (all sets)
    edit_time_s: float | None = None      # the unlearning edit itself, when recorded
    family: str | None = None             # model family (momask, bamm) when recorded
    sets: dict[str, dict[str, Stat]] = field(default_factory=dict)       # set -> metric -> Stat
    n: dict[str, int] = field(default_factory=dict)                       # set -> items
    reference: dict[str, dict[str, Stat]] = field(default_factory=dict)   # set -> metric -> Stat (ground truth)
    # set -> metrics that were computed but are NaN/inf: shown as "NaN", never as "not measured" (issue 26)
    not_finite: dict[str, set[str]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def stat(self, set_name: str, metric: str) -> Stat | None:
        return self.sets.get(set_name, {}).get(metric)

    @property
    def group(self) -> tuple[str, str]:
        return (self.dataset or "?", self.concept or "?", self.family or "")

    @property
    def model_info(self) -> dict[str, Any]:
        """The ``model`` block as recorded (run names, checkpoint) — what the animations rebuild the generator from."""
        m = self.raw.get("model")
        return dict(m) if isinstance(m, Mapping) else {}


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def parse_stat(value: Any, *, where: str) -> Stat | None:
    """A summary dict (or bare number) -> Stat; None when the mean is missing or not finite (NaN: not measured)."""
    if isinstance(value, Mapping):
        mean = value.get("mean", value.get("rate", value.get("value")))
        if mean is not None and not isinstance(mean, (int, float)):
            raise HmuError(f"{where}: 'mean' is not a number ({mean!r})")
        m = _num(mean)
        if m is None:
            return None
        half = lo = hi = None
        for k in HALF_KEYS:
            h = value.get(k)
            if isinstance(h, (int, float)) and not isinstance(h, bool) and _num(h) is not None:
                half = abs(float(h))
                break
        if half is None:
            for k in RANGE_KEYS:
                r = value.get(k)
                if isinstance(r, (list, tuple)) and len(r) == 2 and _num(r[0]) is not None and _num(r[1]) is not None:
                    lo, hi = float(r[0]), float(r[1])
                    break
        n = value.get("n")
        return Stat(m, half, lo, hi, int(n) if isinstance(n, int) and not isinstance(n, bool) else None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        m = _num(value)
        return None if m is None else Stat(m)
    if value is None:
        return None
    raise HmuError(f"{where}: expected a number or a summary object, got {type(value).__name__}")


def _not_finite(block: Any) -> set[str]:
    """Names of the metrics of ``block`` whose mean is recorded but is NaN or inf (computed, not a number)."""
    out = set()
    if isinstance(block, Mapping):
        for name, v in block.items():
            mean = v.get("mean", v.get("rate", v.get("value"))) if isinstance(v, Mapping) else v
            if isinstance(mean, float) and not math.isfinite(mean):
                out.add(str(name))
    return out


def _metrics(block: Any, *, where: str) -> dict[str, Stat]:
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise HmuError(f"{where}: expected an object of metrics, got {type(block).__name__}")
    out = {}
    for name, v in block.items():
        s = parse_stat(v, where=f"{where}.{name}")
        if s is not None:
            out[str(name)] = s
    return out


def _model_label(model: Mapping[str, Any] | str | None) -> str | None:
    """``name`` (plus the checkpoint file when it is not the run's latest.tar), or a plain string as is."""
    if isinstance(model, str):
        return model
    if not isinstance(model, Mapping) or not model:
        return None
    name = model.get("name")
    ckpt = model.get("ckpt")
    label = str(name) if name else None
    if isinstance(ckpt, str) and ckpt and Path(ckpt).name not in ("latest.tar", "net_best_fid.tar"):
        label = f"{label} · {Path(ckpt).name}" if label else Path(ckpt).name
    return label


def _set_n(block: Mapping[str, Any]) -> int | None:
    for v in (block.get("n"), block.get("n_items"), (block.get("set") or {}).get("n_items")
              if isinstance(block.get("set"), Mapping) else None):
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def parse_record(obj: Any, source: Path, *, where: str | None = None) -> MethodResult:
    """One method's JSON object -> MethodResult; HmuError naming ``source`` for anything malformed."""
    where = where or str(source)
    if not isinstance(obj, Mapping):
        raise HmuError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    model = obj.get("model") if isinstance(obj.get("model"), Mapping) else {}
    method = obj.get("method") or model.get("method") or obj.get("name")
    if not isinstance(method, str) or not method.strip():
        raise HmuError(f"{where}: no 'method' name")
    sets_block = obj.get("sets")
    if sets_block is None:  # flat layout: {"forget": {...}, "retain": {...}}
        sets_block = {k: obj[k] for k in ("forget", "retain", "implicit") if isinstance(obj.get(k), Mapping)}
    if not isinstance(sets_block, Mapping):
        raise HmuError(f"{where}: 'sets' must be an object of evaluation sets")
    rec = MethodResult(method=method.strip(), source=source, raw=dict(obj))
    rec.model = _model_label(obj.get("model"))
    rec.family = str(model.get("family") or model.get("arch") or "") or None
    for key, alt in (("dataset", "dataset_name"), ("concept", "concept")):
        v = obj.get(key) if isinstance(obj.get(key), str) else model.get(alt)
        setattr(rec, key, str(v) if v is not None else None)
    rec.seed = obj.get("seed") if isinstance(obj.get("seed"), int) else None
    rec.repeats = obj.get("repeats") if isinstance(obj.get("repeats"), int) else None
    rec.wall_time_s = _num(obj.get("wall_time_s"))
    if rec.wall_time_s is None:  # hmu.metrics/1: evaluation time = the sum of the sets' timing.total_s
        t = [_num((b.get("timing") or {}).get("total_s")) for b in sets_block.values()
             if isinstance(b, Mapping) and isinstance(b.get("timing"), Mapping)]
        rec.wall_time_s = sum(x for x in t if x is not None) if any(x is not None for x in t) else None
    info = model.get("info") if isinstance(model.get("info"), Mapping) else {}
    rec.edit_time_s = next((_num(b[k]) for b in (obj, model, info) for k in EDIT_TIME_KEYS
                            if _num(b.get(k)) is not None), None)
    for set_name, block in sets_block.items():
        sw = f"{where}: sets.{set_name}"
        if not isinstance(block, Mapping):
            raise HmuError(f"{sw} must be an object")
        if rec.repeats is None and isinstance(block.get("config"), Mapping):
            r = block["config"].get("repeats")
            rec.repeats = r if isinstance(r, int) else None
        rec.sets[str(set_name)] = _metrics(block.get("metrics", {}), where=f"{sw}.metrics")
        bad = _not_finite(block.get("metrics", {}))
        if bad:
            rec.not_finite[str(set_name)] = bad
        n = _set_n(block)
        if n is not None:
            rec.n[str(set_name)] = n
        if block.get("reference"):
            rec.reference[str(set_name)] = _metrics(block["reference"], where=f"{sw}.reference")
    ref = obj.get("reference")
    if isinstance(ref, Mapping) and ref:
        if any(k in rec.sets or k in ("forget", "retain") for k in ref):
            for set_name, block in ref.items():
                rec.reference.setdefault(str(set_name), _metrics(block, where=f"{where}: reference.{set_name}"))
        elif len(rec.sets) == 1:
            rec.reference.setdefault(next(iter(rec.sets)), _metrics(ref, where=f"{where}: reference"))
    leak = obj.get("leakage")
    if leak is not None:
        if not isinstance(leak, Mapping):
            raise HmuError(f"{where}: 'leakage' must be an object")
        for key, set_name in LEAKAGE_KEYS.items():
            if key in leak:
                s = parse_stat(leak[key], where=f"{where}: leakage.{key}")
                if s is not None:
                    rec.sets.setdefault(set_name, {}).setdefault("leakage", s)
    if not rec.sets:
        raise HmuError(f"{where}: no evaluation sets (expected 'sets': {{'forget': ..., 'retain': ...}})")
    return rec


def read_metrics_file(path: str | os.PathLike) -> list[MethodResult]:
    """All method records in one metrics.json (one, or several under 'methods'/'results')."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise HmuError(f"cannot read {p}: {exc.strerror or exc}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HmuError(f"{p} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    many = obj.get("methods", obj.get("results")) if isinstance(obj, Mapping) and "sets" not in obj else None
    if many is None:
        return [parse_record(obj, p)]
    if isinstance(many, Mapping):
        items = [({"method": k, **{kk: obj[kk] for kk in ("model", "dataset", "concept", "seed") if kk in obj},
                   **v} if isinstance(v, Mapping) else v, f"{p}: methods.{k}") for k, v in many.items()]
    elif isinstance(many, list):
        items = [(v, f"{p}: methods[{i}]") for i, v in enumerate(many)]
    else:
        raise HmuError(f"{p}: 'methods' must be a list or an object")
    if not items:
        raise HmuError(f"{p}: 'methods' is empty")
    return [parse_record(v, p, where=w) for v, w in items]


def find_metrics_files(run_dir: str | os.PathLike) -> list[Path]:
    """Every metrics.json under ``run_dir`` (sorted), skipping the report folder itself and hidden folders."""
    root = Path(run_dir)
    if not root.exists():
        raise HmuError(f"results folder not found: {root}")
    if not root.is_dir():
        raise HmuError(f"results folder {root} is not a folder")
    out = []
    for p in sorted(root.rglob(METRICS_FILE)):
        rel = p.relative_to(root).parts
        if rel[0] == REPORT_DIR or any(part.startswith(".") for part in rel):
            continue
        out.append(p)
    if not out:
        raise HmuError(f"results folder {root} holds no {METRICS_FILE} (run the evaluation first)")
    return out


def load_run(run_dir: str | os.PathLike) -> list[MethodResult]:
    """Every method record under ``run_dir``, labelled uniquely (method name, or its folder when names repeat)."""
    root = Path(run_dir)
    records = [r for p in find_metrics_files(root) for r in read_metrics_file(p)]
    seen: dict[tuple, int] = {}
    for r in records:
        key = (r.group, r.method)
        seen[key] = seen.get(key, 0) + 1
    for r in records:
        if seen[(r.group, r.method)] > 1:
            rel = r.source.parent.relative_to(root).as_posix()
            r.label = f"{r.method} ({rel})" if rel != "." else r.method
        else:
            r.label = r.method
    return records
