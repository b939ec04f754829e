"""The shared id of runs written by one edit (UCE/RECE write a masked run and its ``_res`` run): loaders refuse a
pair whose ids differ, which is what a crash between the two writes, or a rerun that failed halfway, leaves behind.

``<run>/edit.json``: ``{"edit_id": <hex>, "method": "uce", "runs": ["<name>", "<name>_res"]}``.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from src.common.errors import HmuError

EDIT_FILE = "edit.json"


def new_edit(method: str, runs: list[str]) -> dict:
    return {"edit_id": uuid.uuid4().hex, "method": method, "runs": list(runs)}


def write_edit(path: str | os.PathLike, edit: dict) -> None:
    Path(path).write_text(json.dumps(edit, indent=2) + "\n", encoding="utf-8")


def read_edit(run_dir: str | os.PathLike) -> dict | None:
    p = Path(run_dir) / EDIT_FILE
    if not p.is_file():
        return None
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HmuError(f"cannot read {p} ({type(exc).__name__})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("edit_id"), str):
        raise HmuError(f"{p} has no edit_id")
    return obj


def check_pair(mask_dir: str | os.PathLike, res_dir: str | os.PathLike | None) -> None:
    """Refuse (one line) a masked run and a residual run that one edit wrote together but that now carry different
    edit ids. Runs from different edits that were not written as a pair (an edited masked run with the original
    residual run) are a user's choice and pass."""
    if res_dir is None:
        return
    mask_dir, res_dir = Path(mask_dir), Path(res_dir)
    a, b = read_edit(mask_dir), read_edit(res_dir)
    partners = (a is not None and res_dir.name in a.get("runs", [])) or (
        b is not None and mask_dir.name in b.get("runs", []))
    if partners and (a or {}).get("edit_id") != (b or {}).get("edit_id"):
        raise HmuError(f"runs {mask_dir} and {res_dir} were written by one edit but carry different edit ids "
                       f"({(a or {}).get('edit_id', 'none')[:8]} vs {(b or {}).get('edit_id', 'none')[:8]}): one "
                       f"of them is left from an earlier or interrupted edit; rerun the edit with --force")
