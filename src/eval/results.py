"""``results/<run>/metrics.json``: the one record of an evaluation run, written atomically; optional wandb mirror.

Schema (``"schema": "hmu.metrics/1"``)::

    {
      "schema": "hmu.metrics/1",
      "run": "<run name>",                       # folder name under results/
      "created": "2025-01-01T12:00:00+00:00",    # UTC, ISO 8601
      "command": ["python", "-m", "src.eval.t2m_unlearn", ...],
      "seed": 0,
      "config": {<every resolved CLI flag>},
      "model": {"dataset_name", "name", "res_name", "vq_name", "ckpt", "method", "concept", ...},
      "evaluator": {"checkpoint": str, "key": sha256 of weights + mean/std + word vectors},
      "leakage_classifier": null | {"path", "concept", "threshold", "heldout": {accuracy, auc, ...}},
      "versions": {"python", "numpy", "scipy", "torch", "hmu"},
      "git": {"commit": str | null, "dirty": bool | null},
      "sets": {                                   # "forget", "retain", and "implicit" on synth
        "<set>": {
          "set": {"name", "source", "n_items", "n_captions", "has_motion"},
          "config": {"protocol" ("hmu" | "fixed"), "repeats", "seed", "batch_size", "r_precision_batch",
                     "r_precision_items", "mm", "mm_prompts", "mm_generations", "mm_times", "mm_sample", "mm_safe"},
          "metrics": {
            "<metric>": {                         # FID (sets with motions), Diversity, R_precision_top1/2/3, MM_Dist,
                                                  # MultiModality (if mm), MM_Safe, toxic_distance and
                                                  # notox_accuracy (upstream's; if toxic terms), leakage (if a
                                                  # classifier; on the retain set it is the false-positive rate)
              "values": [float per repeat], "mean": float, "ci95": float (1.96*std/sqrt(R), ddof 0),
              "bootstrap": [low, high] (95% percentile), "bootstrap_over": "items" | "repeats",
              "n": int (items, or toxic captions for MM_Safe, per repeat), "repeats": int,
              # MM_Safe also: "definition", "n_toxic_per_repeat", "terms"; toxic_distance, notox_accuracy:
              # "definition": "upstream"
              # leakage also: "k" (flagged), "decisions" (N * R), "wilson": [low, high]
              # MultiModality also: "generations", "times"
            }
          },
          "reference": {<same summaries for the ground-truth motions: Diversity, R_precision_top1/2/3, MM_Dist;
                         "leakage": {"mean", "k", "n", "wilson"}>},
          "timing": {"total_s", "generate_s"}
        }
      }
    }

Non-finite numbers are written as ``null`` (strict JSON). Nothing is ever overwritten without ``force``.
"""
from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from src.common.errors import HmuError

log = logging.getLogger(__name__)

SCHEMA = "hmu.metrics/1"
METRICS_FILE = "metrics.json"


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for mod in ("numpy", "scipy", "torch"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    try:
        from importlib.metadata import version

        out["hmu"] = version("hmu")
    except Exception:  # noqa: BLE001 - not installed as a package: fine
        out["hmu"] = None
    return out


def git_state(repo: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"commit": sha | None, "dirty": bool | None}`` of the repository holding this file."""
    from src.common.paths import REPO_ROOT

    cwd = str(repo or REPO_ROOT)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
        if sha.returncode != 0:
            return {"commit": None, "dirty": None}
        st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, check=False,
                            text=True, timeout=10)
        return {"commit": sha.stdout.strip(), "dirty": bool(st.stdout.strip()) if st.returncode == 0 else None}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, Mapping):
        return {str(k): _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if hasattr(o, "item") and getattr(o, "ndim", 1) == 0:
        return _finite(o.item())
    return o


def build_record(*, run: str, seed: int, config: Mapping[str, Any], sets: Mapping[str, Any],
                 model: Mapping[str, Any] | None = None, evaluator: Mapping[str, Any] | None = None,
                 leakage_classifier: Mapping[str, Any] | None = None, command: list[str] | None = None
                 ) -> dict[str, Any]:
    return _finite({
        "schema": SCHEMA,
        "run": run,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(command if command is not None else [sys.executable, *sys.argv]),
        "seed": int(seed),
        "config": dict(config),
        "model": dict(model or {}),
        "evaluator": dict(evaluator or {}),
        "leakage_classifier": dict(leakage_classifier) if leakage_classifier else None,
        "versions": versions(),
        "git": git_state(),
        "sets": dict(sets),
    })


def metrics_path(results_dir: str | os.PathLike, run: str) -> Path:
    if not run or "/" in run or run in (".", ".."):
        raise HmuError(f"--run_name '{run}' must be a plain folder name")
    return Path(results_dir) / run / METRICS_FILE


def write_metrics(path: str | os.PathLike, record: Mapping[str, Any], *, force: bool = False) -> Path:
    """Atomic write; HmuError if ``path`` exists and not ``force``."""
    from src.common.io import atomic_write_json, refuse_overwrite

    refuse_overwrite(path, force, what="results file")
    atomic_write_json(path, record)
    return Path(path)


def flatten(record: Mapping[str, Any]) -> dict[str, float]:
    """``{"forget/FID/mean": ..., "forget/FID/ci95": ..., "retain/reference/MM_Dist/mean": ...}`` for loggers."""
    out: dict[str, float] = {}
    for set_name, res in record.get("sets", {}).items():
        for part in ("metrics", "reference"):
            prefix = set_name if part == "metrics" else f"{set_name}/reference"
            for metric, s in (res.get(part) or {}).items():
                for k in ("mean", "ci95"):
                    if isinstance(s.get(k), (int, float)):
                        out[f"{prefix}/{metric}/{k}"] = float(s[k])
                if isinstance(s.get("bootstrap"), list) and len(s["bootstrap"]) == 2:
                    lo, hi = s["bootstrap"]
                    if lo is not None and hi is not None:
                        out[f"{prefix}/{metric}/boot_low"], out[f"{prefix}/{metric}/boot_high"] = lo, hi
                if "n" in s:
                    out[f"{prefix}/{metric}/n"] = float(s["n"])
    return out


def per_repeat(record: Mapping[str, Any]) -> list[dict[str, float]]:
    """One dict per evaluation repeat: ``{"forget/FID": value of repeat r, ...}`` (the summaries' ``values``)."""
    rows: list[dict[str, float]] = []
    for set_name, res in record.get("sets", {}).items():
        for part in ("metrics", "reference"):
            prefix = set_name if part == "metrics" else f"{set_name}/reference"
            for metric, s in (res.get(part) or {}).items():
                for r, v in enumerate(s.get("values") or []):
                    while len(rows) <= r:
                        rows.append({})
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        rows[r][f"{prefix}/{metric}"] = float(v)
    return rows


def require_wandb() -> None:
    """One-line HmuError, before any work, when ``--wandb`` is asked for and the wandb package is missing."""
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        raise HmuError("--wandb needs the wandb package (pip install wandb), which is not installed")
    from src.common.logging import check_wandb_usage

    check_wandb_usage()  # WANDB_MODE=online without a key: the user's to fix, said before the evaluation



TABLE_COLUMNS = ["set", "metric", "mean", "ci95", "boot_low", "boot_high", "n"]


def summary_rows(record: Mapping[str, Any]) -> list[list[Any]]:
    """The summary table (``TABLE_COLUMNS``): one row per set and metric, the reference rows as ``<set>/GT``."""
    rows = []
    for set_name, res in record.get("sets", {}).items():
        for part in ("metrics", "reference"):
            for metric, s in (res.get(part) or {}).items():
                lo, hi = (s.get("bootstrap") or s.get("wilson") or [None, None])[:2]
                rows.append([set_name if part == "metrics" else f"{set_name}/GT", metric, s.get("mean"),
                             s.get("ci95"), lo, hi, s.get("n")])
    return rows


def log_wandb(record: Mapping[str, Any], *, wandb, run_name: str, out_dir: str | os.PathLike) -> str:
    """Log an evaluation to wandb (``wandb``: src.common.logging.WandbOptions): the config, one point per repeat
    (step = repeat), the summary table, and the flattened summaries (:func:`flatten`) as the run summary.
    Offline without credentials; returns where the run went (one line)."""
    from src.common.logging import import_wandb, wandb_where

    wb = import_wandb()
    out_dir = Path(out_dir)
    run = wandb.init(name=run_name, dir=out_dir, job_type="eval",
                     config={"config": record.get("config"), "model": record.get("model"), "seed": record.get("seed"),
                             "git": record.get("git"), "versions": record.get("versions")})
    for r, row in enumerate(per_repeat(record)):
        run.log({"repeat": r, **row}, step=r)
    run.log({"summary_table": wb.Table(columns=TABLE_COLUMNS, data=summary_rows(record))})
    run.summary.update(flatten(record))
    # metrics.json is not attached: a copy under the run folder would be read by the report as one more method
    run.finish()
    return wandb_where(run)
