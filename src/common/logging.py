"""Logging set-up for CLIs, and a JSONL metric logger that writes to wandb only when asked."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


class MetricLogger:
    """Appends one JSON object per ``log`` call to ``<run_dir>/<name>``; mirrors to wandb if ``wandb_run`` is given."""

    def __init__(self, path: str | os.PathLike, wandb_run: Any | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.wandb_run = wandb_run

    def log(self, step: int | None = None, **metrics: Any) -> None:
        rec = {"time": round(time.time(), 3), **({"step": step} if step is not None else {}), **metrics}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, default=float) + "\n")
        if self.wandb_run is not None:
            self.wandb_run.log(metrics, step=step)
