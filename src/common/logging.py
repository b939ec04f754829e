"""Logging set-up for CLIs, and the one metric logger: JSONL always, Weights & Biases only when asked (``--wandb``).

    opts = WandbOptions(enabled=args.wandb, project=args.wandb_project)   # from add_wandb_flags (src/config/flags.py)
    opts.check()                                   # before any work: one line when wandb is missing
    logger = MetricLogger(run_dir / "train_log.jsonl", wandb=opts, name="mtrans", config=cfg.to_dict(), dir=run_dir)
    logger.log(step=it, loss=0.3)                  # a JSONL line; and a wandb point when enabled
    logger.finish()

wandb runs offline unless the user set ``WANDB_MODE`` or has credentials (``WANDB_API_KEY`` or an api.wandb.ai entry in
``~/.netrc``), so nothing needs a network; ``wandb sync <run folder>`` uploads such a run later.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from src.common.errors import HmuError

log = logging.getLogger(__name__)

# The version requirements-dev.txt pins (what the tests ran with); any recent wandb works.
WANDB_PIN = "wandb==0.31.0"


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


# ------------------------------------------------------------------------------------------------------------ wandb
def import_wandb():
    """The wandb module, or a one-line HmuError saying how to install it."""
    try:
        import wandb
    except ImportError:
        raise HmuError(f"--wandb needs the wandb package: pip install {WANDB_PIN} (or drop --wandb)") from None
    return wandb


def wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def default_wandb_mode() -> str:
    """``WANDB_MODE`` when the user set it, else "online" with credentials, else "offline"."""
    return os.environ.get("WANDB_MODE") or ("online" if wandb_credentials() else "offline")


WANDB_MODES = ("online", "offline", "dryrun", "disabled", "run", "shared")


def check_wandb_usage() -> str:
    """The wandb mode a run will use, checked before any work (issue 26): a ``WANDB_MODE`` wandb does not know, or
    ``online`` without credentials, is a one-line HmuError now, not a failure after the results are written."""
    mode = default_wandb_mode()
    if mode not in WANDB_MODES:
        raise HmuError(f"WANDB_MODE={mode!r} is not a wandb mode (one of {', '.join(WANDB_MODES[:4])})")
    if mode in ("online", "run", "shared") and not wandb_credentials():
        raise HmuError(f"WANDB_MODE={mode} but no wandb credentials (WANDB_API_KEY, or an api.wandb.ai entry in "
                       f"~/.netrc): run 'wandb login', or set WANDB_MODE=offline and 'wandb sync' later")
    return mode


@dataclasses.dataclass(frozen=True)
class WandbOptions:
    """What ``--wandb``, ``--wandb_project`` and ``--wandb_group`` asked for (src.config.flags.add_wandb_flags)."""

    enabled: bool = False
    project: str = "hmu"
    group: str | None = None

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any] | Any) -> WandbOptions:
        get = flags.get if isinstance(flags, Mapping) else (lambda k, d=None: getattr(flags, k, d))
        return cls(enabled=bool(get("wandb", False)), project=get("wandb_project") or "hmu",
                   group=get("wandb_group") or None)

    def check(self) -> None:
        """Fail now (one line) when wandb is asked for but not installed or not usable (a wrong WANDB_MODE, online
        without credentials): before any work, not after it."""
        if self.enabled:
            check_wandb_usage()
            import_wandb()

    def argv(self) -> list[str]:
        """The flags that pass these options on to another CLI."""
        if not self.enabled:
            return []
        return ["--wandb", "--wandb_project", self.project, *(["--wandb_group", self.group] if self.group else [])]

    def init(self, *, name: str, dir: str | os.PathLike, config: Mapping[str, Any] | None = None,  # noqa: A002
             job_type: str | None = None):
        """Start a wandb run (offline by default, see the module docstring) -> the run object, or None when off."""
        if not self.enabled:
            return None
        wandb = import_wandb()
        if not os.environ.get("WANDB_MODE"):  # unset or empty: offline unless credentials exist
            os.environ["WANDB_MODE"] = default_wandb_mode()
        os.environ.setdefault("WANDB_SILENT", "true")
        Path(dir).mkdir(parents=True, exist_ok=True)
        return wandb.init(project=self.project, name=name, group=self.group, job_type=job_type, dir=str(dir),
                          config=dict(config or {}), reinit="finish_previous")


def start_cli(flags: Mapping[str, Any] | Any, verbose: bool = False) -> WandbOptions:
    """A CLI's first step: logging on, then its wandb options, checked before any work (one line when
    --wandb is given without the package) -> those options."""
    setup_logging(verbose)
    wandb = WandbOptions.from_flags(flags)
    wandb.check()
    return wandb


def wandb_where(run) -> str:
    """One line: where a finished run went (its offline folder and the sync command, or its URL)."""
    folder = Path(getattr(run, "dir", "") or ".").parent
    if os.environ.get("WANDB_MODE") in ("offline", "dryrun"):
        return f"wandb run saved offline under {folder} (upload later with: wandb sync {folder})"
    return f"wandb run logged: {getattr(run, 'url', '') or folder}"


def _number(v: Any) -> float | int | None:
    if hasattr(v, "detach"):
        v = v.detach()
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        v = v.item()
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    return None


class MetricLogger:
    """Appends one JSON object per ``log`` call to ``path``; mirrors the numeric values to a wandb run when asked.

    ``wandb``: a :class:`WandbOptions` (a run is started with ``name``/``config``/``dir``) or an already started run
    object (``wandb_run``). Values may be floats, ints or 0-d tensors; non-numeric values go to the JSONL only.
    """

    def __init__(self, path: str | os.PathLike, wandb_run: Any | None = None, *, wandb: WandbOptions | None = None,
                 name: str | None = None, config: Mapping[str, Any] | None = None,
                 dir: str | os.PathLike | None = None, job_type: str | None = None):  # noqa: A002
        from src.common import dist

        self.path = Path(path)
        # under torchrun only rank 0 logs: the other ranks' loggers write nothing and start no wandb run
        self.enabled = dist.is_main()
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.wandb_run = wandb_run if self.enabled else None
        self._own_run = False
        if self.enabled and wandb_run is None and wandb is not None and wandb.enabled:
            self.wandb_run = wandb.init(name=name or self.path.parent.name, dir=dir or self.path.parent,
                                        config=config, job_type=job_type)
            self._own_run = True

    def _write(self, step: int | None, metrics: Mapping[str, Any]) -> dict[str, Any]:
        values = {k: (_number(v) if _number(v) is not None else v) for k, v in metrics.items()}
        if not self.enabled:
            return values
        rec = {"time": round(time.time(), 3), **({"step": step} if step is not None else {}), **values}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, default=float) + "\n")
        return values

    def log(self, step: int | None = None, **metrics: Any) -> None:
        values = self._write(step, metrics)
        if self.wandb_run is not None:
            numeric = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not (
                isinstance(v, float) and math.isnan(v))}
            if numeric:
                self.wandb_run.log(numeric, step=step)

    def summary(self, **values: Any) -> None:
        """Final values (wandb's run summary; also one JSONL line with ``event: summary``)."""
        self._write(None, {"event": "summary", **values})
        if self.wandb_run is not None:
            self.wandb_run.summary.update({k: _number(v) if _number(v) is not None else v for k, v in values.items()
                                           if _number(v) is not None or isinstance(v, str)})

    def finish(self) -> str | None:
        """End the wandb run this logger started -> where it went (one line), or None without wandb."""
        run, self.wandb_run = self.wandb_run, None
        if run is None or not self._own_run:
            return None
        run.finish()
        return wandb_where(run)
