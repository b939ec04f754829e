"""The report of a run: the paper's tables, plots and before/after animations from every metrics.json under a folder.

    python -m src.report results/<run> [--prompts FILE] [--no_video] [--gif] [--still] [--force]

Input: every ``metrics.json`` below the folder (``results/<run>/metrics.json`` as written by
``python -m src.eval.t2m_unlearn``, one per evaluated method; point the report at the folder holding them, e.g. the
``--results_dir`` the methods were evaluated into). Output, written to a temporary folder and swapped in at the end
(a killed run leaves the previous report intact)::

    <folder>/report/
        report.md                 summary (leakage, retain FID and R@3, times) + one table per set, caption, links
        report.tex                the same tables as booktabs LaTeX (same cells, for a paper)
        metric_bars.png           bars with 95% intervals per method, forget and retain rows
        tradeoff.png              forget leakage (or R@1) vs retain FID, one point per method
        videos/NN_<prompt>.mp4    original next to each method (gif with --gif or without ffmpeg)
        stills/NN_<prompt>.png    one frame per video (--still), for the README

Library: :func:`make_report`. Tables: :mod:`src.report.tables`; reading: :mod:`src.report.load`; pictures:
:mod:`src.report.media`.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from src.common.errors import HmuError, cli
from src.common.validate import POSITIVE
from src.config.command import DeviceOptions, RunOptions, WandbFlags, command_context, config_parser, group, parse_config
from src.config.flags import opt

log = logging.getLogger(__name__)

REPORT_FILE = "report.md"
LATEX_FILE = "report.tex"


def make_report(run_dir: str | os.PathLike, *, prompts: str | os.PathLike | None = None, video: bool = True,
                gif: bool = False, still: bool = False, force: bool = False, seed: int = 0, device: Any = None,
                max_prompts: int | None = None, loader: Callable | None = None, progress: bool = True,
                reading: str = "safety") -> dict[str, Any]:
    """Write ``<run_dir>/report/`` (see the module docstring); returns what was written.

    Refuses to replace an existing report unless ``force``. ``loader(record, device=...)`` rebuilds a method's
    generator (default: :func:`src.report.media.load_method_generator`).
    """
    import shutil

    from src.common.io import atomic_write_text, ensure_writable_dir, recover_folder, staging_dir, swap_in_folder

    from . import media
    from .load import REPORT_DIR, load_run
    from .latex import render_latex
    from .tables import READINGS, order_records, render_markdown

    if reading not in READINGS:
        raise HmuError(f"--reading {reading!r}: choose one of {', '.join(READINGS)}")
    root = Path(run_dir)
    out = root / REPORT_DIR
    recover_folder(out)  # a report swap killed earlier: finish or undo it first
    if out.exists() and not force:
        raise HmuError(f"report {out} already exists (pass --force to overwrite)")
    records = order_records(load_run(root))          # every input error before any work
    prompt_list = media.read_prompts_file(prompts) if prompts is not None and video else None
    ensure_writable_dir(root)
    tmp = staging_dir(out)
    try:
        groups: dict[tuple, list] = {}
        for r in records:
            groups.setdefault(r.group, []).append(r)
        multi = len(groups) > 1
        images, videos, notes = [], [], []
        for gi, recs in enumerate(groups.values()):
            suffix = f"_{gi}" if multi else ""
            images += media.write_plots(recs, tmp, suffix=suffix)
            if not video:
                continue
            ds = next((r.dataset for r in recs if r.dataset), None) or "HumanML3D"
            plist = prompt_list
            if plist is None:
                cfg = next((r.raw.get("config") for r in recs if isinstance(r.raw.get("config"), dict)), {}) or {}
                from src.common.paths import Paths

                plist = media.default_prompts(Paths.default(dataset_dir=cfg.get("dataset_dir")).dataset_dir, ds)
            if max_prompts is not None:
                plist = plist[:max_prompts]
            v, n = media.write_videos(recs, plist, tmp / "videos", seed=seed, device=device,
                                      fmt="gif" if gif else None, still_dir=tmp / "stills" if still else None,
                                      suffix=suffix, loader=loader, progress=progress)
            videos += v
            notes += n
        md = render_markdown(records, run_dir=root, images=images, videos=videos, notes=notes, reading=reading)
        md += _attacks_section(root, REPORT_DIR)
        atomic_write_text(tmp / REPORT_FILE, md)
        atomic_write_text(tmp / LATEX_FILE, render_latex(records, reading=reading))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)                 # mkdtemp makes it 0700
        swap_in_folder(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {"report": out / REPORT_FILE, "latex": out / LATEX_FILE, "methods": [r.label for r in records],
            "plots": [out / name for _, name in images], "videos": [out / rel for _, rel, _ in videos],
            "stills": [out / s for _, _, s in videos if s], "notes": notes}


PROG = "python -m src.report"


@dataclasses.dataclass(kw_only=True)
class ReportConfig:
    """Write <folder>/report/: the paper's tables (report.md), plots and before/after animations from every
    metrics.json under <folder>."""

    run_dir: str = opt(None, flag="run_dir",
                       help="results folder holding one metrics.json per evaluated method (any depth)")
    prompts: str | None = opt(None, metavar="FILE",
                              help="animation prompts, one per line, optional '#<frames>' suffix (default: a few "
                                   "forget and retain prompts from dataset/<ds>/prompts.json, else built-in ones)")
    max_prompts: int | None = opt(None, range=POSITIVE, help="animate at most this many prompts")
    no_video: bool = opt(False, action="store_true", help="tables and plots only (no generation, no rendering)")
    gif: bool = opt(False, action="store_true", help="write gif animations instead of mp4")
    still: bool = opt(False, action="store_true", help="also write one PNG frame per animation (stills/)")
    seed: int = opt(0, help="generation seed, the same for every panel")
    reading: str = opt("safety", choices=("safety", "paper"),
                       help="how forget-set FID and R@1 are judged: safety (away from the original: FID up, R@1 down) "
                            "or paper (closest to the retain-only model D_r, as the paper's Table 1)")
    run: RunOptions = group(RunOptions)
    device: DeviceOptions = group(DeviceOptions)
    wandb: WandbFlags = group(WandbFlags)


def build_parser() -> argparse.ArgumentParser:
    return config_parser(ReportConfig, prog=PROG, doc=" ".join(ReportConfig.__doc__.split()))


def _attacks_section(root: Path, report_dir: str) -> str:
    """The methods x attacks tables of every attacks.json under ``root`` (written by ``python -m src.attacks``)."""
    import json

    from src.eval.results import ATTACKS_FILE
    from src.report.attacks import attacks_markdown

    parts = []
    for p in sorted(root.rglob(ATTACKS_FILE)):
        if report_dir in p.relative_to(root).parts:
            continue
        try:
            record = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise HmuError(f"{p} is not readable JSON ({type(exc).__name__})") from None
        parts.append("\n" + attacks_markdown(record))
    return "".join(parts)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(ReportConfig, argv, prog=PROG, parser=build_parser())
    ctx = command_context(None, cfg.device, run=cfg.run, wandb=cfg.wandb)
    logging.getLogger("src.viz").setLevel(logging.WARNING)  # their "wrote <tmp path>" lines name the staging folder
    res = make_report(cfg.run_dir, prompts=cfg.prompts, video=not cfg.no_video, gif=cfg.gif, still=cfg.still,
                      force=ctx.force, seed=cfg.seed, device=None if cfg.no_video else ctx.device,
                      max_prompts=cfg.max_prompts, progress=ctx.progress, reading=cfg.reading)
    stills = f", {len(res['stills'])} stills" if cfg.still else ""
    print(f"wrote {res['report']} ({len(res['methods'])} methods, {len(res['plots'])} plots, "
          f"{len(res['videos'])} videos{stills})")
    for n in res["notes"]:
        print(f"warning: {n}")
    if ctx.wandb.enabled:
        from src.report.to_wandb import log_report

        print(log_report(res, run_dir=cfg.run_dir, wandb=ctx.wandb))
    return 0
