"""The ground-truth files of a dataset that has them (the embedded ``synth``), read in one place.

``labels.json`` (actions and concepts per motion and segment), ``prompts.json`` (forget / retain / compositional
evaluation prompts) and ``implicit_prompts.json`` (held-out phrasings of a concept without its keywords).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from src.common.errors import HmuError

LABELS_FILE = "labels.json"
PROMPTS_FILE = "prompts.json"
IMPLICIT_PROMPTS_FILE = "implicit_prompts.json"


def read_truth_file(path: str | os.PathLike, what: str, *, required: bool = True) -> Any:
    """One ground-truth JSON file; None when absent and not ``required``, else a one-line HmuError."""
    p = Path(path)
    if not p.is_file():
        if not required:
            return None
        raise HmuError(f"{what} not found: {p} (only datasets with ground truth have it: python -m src.data.synth)")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HmuError(f"cannot read {what} {p}: {exc}") from None


def read_labels(root: str | os.PathLike, *, required: bool = True) -> dict[str, Any] | None:
    """``<root>/labels.json``, checked to hold its ``motions`` and ``concepts`` tables."""
    path = Path(root) / LABELS_FILE
    labels = read_truth_file(path, "ground-truth labels", required=required)
    if labels is not None and not (isinstance(labels, dict) and isinstance(labels.get("motions"), dict)
                                   and isinstance(labels.get("concepts"), dict)):
        raise HmuError(f"labels file {path} is not valid (it needs 'motions' and 'concepts' objects)")
    return labels


def read_eval_prompts(root: str | os.PathLike, *, required: bool = True) -> dict[str, Any] | None:
    """``<root>/prompts.json``: ``{"forget": [...], "retain": [...], "compositional": [...]}``."""
    return read_truth_file(Path(root) / PROMPTS_FILE, "prompts", required=required)


def read_implicit_prompts(root: str | os.PathLike, *, concept: str | None = None, required: bool = True
                          ) -> list[dict[str, Any]] | None:
    """``<root>/implicit_prompts.json`` (``[{"text", "tokens", "length", "concepts", ...}]``), those of ``concept``
    when given; None when the file is absent and not ``required``."""
    prompts = read_truth_file(Path(root) / IMPLICIT_PROMPTS_FILE, "implicit prompts", required=required)
    if prompts is None:
        return None
    if not isinstance(prompts, list):
        raise HmuError(f"{Path(root) / IMPLICIT_PROMPTS_FILE} must hold a JSON list of prompts")
    if concept is None:
        return prompts
    return [p for p in prompts if concept in (p.get("concepts") or [])]
