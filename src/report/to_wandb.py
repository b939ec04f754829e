"""The report to wandb (``python -m src.report <folder> --wandb``): the summary table of every evaluated method, the
plots, and the before/after videos (original next to each method) as ``wandb.Video``."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def summary_table_rows(run_dir: str | os.PathLike) -> list[list[Any]]:
    """[method, set, metric, mean, ci95, boot_low, boot_high, n] for every metrics.json under ``run_dir``."""
    from src.eval.results import summary_rows
    from src.report.load import find_metrics_files

    rows = []
    for path in find_metrics_files(run_dir):
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        method = (record.get("model") or {}).get("method") or Path(path).parent.name
        rows += [[method, *row] for row in summary_rows(record)]
    return rows


def log_report(result: Mapping[str, Any], *, run_dir: str | os.PathLike, wandb) -> str:
    """``result``: :func:`src.report.make_report`'s; ``wandb``: src.common.logging.WandbOptions -> where it went."""
    from src.common.logging import import_wandb, wandb_where
    from src.eval.results import TABLE_COLUMNS

    wb = import_wandb()
    run_dir = Path(run_dir)
    run = wandb.init(name=f"{run_dir.name}_report", dir=run_dir, job_type="report",
                     config={"run_dir": str(run_dir), "methods": list(result.get("methods", []))})
    logged: dict[str, Any] = {"summary_table": wb.Table(columns=["method", *TABLE_COLUMNS],
                                                        data=summary_table_rows(run_dir))}
    for p in result.get("plots", []):
        logged[f"plots/{Path(p).stem}"] = wb.Image(str(p))
    for p in result.get("videos", []):
        fmt = Path(p).suffix.lstrip(".") or "mp4"
        logged[f"videos/{Path(p).stem}"] = wb.Video(str(p), caption=Path(p).stem, format=fmt)
    run.log(logged)
    run.finish()
    return wandb_where(run)
