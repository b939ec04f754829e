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


def _wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def log_wandb(record: Mapping[str, Any], *, project: str, run_name: str, out_dir: str | os.PathLike) -> str:
    """Log ``record`` to wandb (config + flattened summary + the JSON as a file); offline without credentials.

    Returns a one-line description of where the run went. Never needs a network when offline.
    """
    try:
        import wandb
    except ImportError:
        raise HmuError("--wandb needs the wandb package (pip install wandb); metrics.json was written anyway") from None
    if not os.environ.get("WANDB_MODE") and not _wandb_credentials():
        os.environ["WANDB_MODE"] = "offline"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, name=run_name, dir=str(out_dir), reinit=True,
                     config={"config": record.get("config"), "model": record.get("model"), "seed": record.get("seed"),
                             "git": record.get("git"), "versions": record.get("versions")})
    flat = flatten(record)
    run.summary.update(flat)
    run.log(flat)
    try:
        run.save(str(out_dir / METRICS_FILE), base_path=str(out_dir), policy="now")
    except Exception as exc:  # noqa: BLE001 - the file is on disk anyway
        log.warning("wandb could not attach metrics.json: %s", exc)
    where = getattr(run, "dir", str(out_dir))
    offline = os.environ.get("WANDB_MODE") == "offline"
    run.finish()
    if offline:
        return f"wandb run saved offline under {Path(where).parent} (upload later with: wandb sync {Path(where).parent})"
    return f"wandb run logged to project {project} ({getattr(run, 'url', '') or where})"
