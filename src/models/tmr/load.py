"""Load TMR run directories (``config.json`` + ``<ckpt>_weights/<module>.pt``) strictly, and compare against manifests."""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from src.common.errors import HmuError
from src.common.io import torch_load
from src.models.strict import load_state_dict_strict, state_dict_mismatch

from .config import TMRConfig
from .model import MODULE_NAMES, TMR

log = logging.getLogger(__name__)


def _head(items: Iterable[str], n: int = 3) -> str:
    items = list(items)
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run directory's resolved training config (``config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise HmuError(f"TMR run dir {run_dir} has no config.json")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HmuError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise HmuError(f"{path} has no 'model' block")
    return cfg


def _module_states(run_dir: Path, ckpt_name: str) -> dict[str, tuple[Path, Mapping[str, torch.Tensor]]]:
    weights = run_dir / f"{ckpt_name}_weights"
    if weights.is_dir():
        out = {}
        for p in sorted(weights.glob("*.pt")):
            if p.stem not in MODULE_NAMES:
                raise HmuError(f"{p}: unknown TMR module {p.stem!r} (expected one of {', '.join(MODULE_NAMES)})")
            out[p.stem] = (p, torch_load(p, what="TMR weights"))
        return out
    # Lightning checkpoint, as upstream's fallback: split the prefixed state_dict in memory (nothing is written).
    ckpt = run_dir / "logs" / "checkpoints" / f"{ckpt_name}.ckpt"
    if not ckpt.is_file():
        raise HmuError(f"TMR run dir {run_dir} has neither {weights.name}/ nor logs/checkpoints/{ckpt.name}")
    blob = torch_load(ckpt, what="TMR checkpoint")
    state = blob.get("state_dict") if isinstance(blob, dict) else None
    if not isinstance(state, Mapping):
        raise HmuError(f"{ckpt} has no 'state_dict'")
    out: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in state.items():
        head, _, rest = k.partition(".")
        if head not in MODULE_NAMES:
            raise HmuError(f"{ckpt}: key {k!r} belongs to no TMR module")
        out.setdefault(head, {})[rest] = v
    return {name: (ckpt, sd) for name, sd in out.items()}


def load_tmr(run_dir: str | os.PathLike, *, ckpt_name: str = "last",
             modules: Iterable[str] = MODULE_NAMES) -> TMR:
    """Build TMR from ``run_dir/config.json`` and strictly load each module file; returns the model in eval mode on CPU.

    ``modules`` lists the submodules that must have weights (drop ``motion_decoder`` for retrieval-only runs whose
    decoder file was not shipped); a module without a file keeps its random init only if it is not listed.
    """
    run_dir = Path(run_dir)
    cfg = TMRConfig.from_dict(read_run_config(run_dir)["model"], where=str(run_dir / "config.json"))
    model = TMR.from_config(cfg)
    states = _module_states(run_dir, ckpt_name)
    required = list(modules)
    absent = [m for m in required if m not in states]
    if absent:
        raise HmuError(f"TMR run dir {run_dir}: no weights for {', '.join(absent)} (checkpoint {ckpt_name!r})")
    for name, (path, state) in states.items():
        load_state_dict_strict(getattr(model, name), state, source=f"{path} [{name}]")
        log.info("loaded %s from %s", name, path)
    return model.eval()


def manifest_mismatch(manifest: Mapping[str, Any]) -> str | None:
    """Build the manifest's released config and compare every module's state_dict keys, shapes and dtypes with it."""
    cfg = TMRConfig.from_dict(manifest["constructor_config_model"], where="TMR manifest")
    with torch.device("meta"):
        model = TMR.from_config(cfg)
    problems = []
    for name, expected in manifest["state_dict_per_module"].items():
        if name not in MODULE_NAMES:
            problems.append(f"unknown module {name}")
            continue
        sd = getattr(model, name).state_dict()
        p = state_dict_mismatch({k: v[0] for k, v in expected.items()}, sd)
        dtypes = [k for k, v in expected.items() if k in sd and str(sd[k].dtype).replace("torch.", "") != v[1]]
        if dtypes:
            p = (p + "; " if p else "") + f"dtype mismatches ({_head(dtypes)})"
        if p:
            problems.append(f"{name}: {p}")
    return "; ".join(problems) or None
