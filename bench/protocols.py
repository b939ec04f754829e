"""The quickstart's models evaluated under another evaluation protocol, for the README's side-by-side table.

    python -m bench.protocols [--quickstart results/quickstart] [--protocol hmu] [--out docs/results/protocols/hmu]

The quickstart evaluates its six models under ``--protocol fixed`` (synth's default: one item per motion, its first
caption-drawn crop, full batches). This script reruns each model's own evaluation command, read from its
``<quickstart>/<method>/metrics.json`` ("command"), with only ``--protocol``, ``--results_dir`` and ``--cache_dir``
changed: the same checkpoints, sets, seed, repeats and MultiModality budget. Under ``hmu`` that means upstream's items
(one per caption line, its own ``#from#to`` segment), a random crop per repeat, the partial last batch counted, and
gumbel sampling for the MultiModality prompts; ``--mm_prompts``/``--mm_generations`` stay the quickstart's, so the
cost stays a few minutes per model on 2 CPU cores. Writes ``<out>/<method>/metrics.json``;
``python -m src.report.readme`` renders the table (block ``protocols``) from them and the quickstart's files.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

METHODS = ("original", "lcr", "uce", "rece", "finetune", "retrain")
_REPLACED = ("--results_dir", "--protocol", "--cache_dir", "--mm_safe")


def rewrite_command(command: Sequence[str], *, protocol: str, out: Path, cache_dir: Path) -> list[str]:
    """A recorded ``python .../t2m_unlearn.py ARGS`` -> ``python -m src.eval.t2m_unlearn ARGS`` under ``protocol``,
    writing into ``out``. ``--mm_safe`` is dropped so that each protocol uses its own default."""
    args = list(command)
    try:
        start = next(i for i, a in enumerate(args) if a.endswith("t2m_unlearn.py") or a == "src.eval.t2m_unlearn")
    except StopIteration:
        raise SystemExit(f"error: not a src.eval.t2m_unlearn command: {' '.join(args)[:200]}") from None
    rest, kept = args[start + 1:], []
    i = 0
    while i < len(rest):
        flag = rest[i].split("=", 1)[0]
        if flag in _REPLACED:
            i += 1 if "=" in rest[i] else 2
            continue
        if flag in ("--force", "--wandb"):
            i += 1
            continue
        kept.append(rest[i])
        i += 1
    return [sys.executable, "-m", "src.eval.t2m_unlearn", *kept, "--protocol", protocol, "--results_dir", str(out),
            "--cache_dir", str(cache_dir), "--no_progress"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.protocols", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quickstart", default="results/quickstart", help="a finished quickstart's results folder")
    p.add_argument("--protocol", choices=("hmu", "fixed"), default="hmu")
    p.add_argument("--out", default=None, help="output folder (default docs/results/protocols/<protocol>)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--force", action="store_true", help="re-evaluate models whose metrics.json exists in --out")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    qs = Path(args.quickstart)
    out = Path(args.out or f"docs/results/protocols/{args.protocol}")
    cache = qs / ".cache" / "eval"
    for m in args.methods:
        rec_file = qs / m / "metrics.json"
        if not rec_file.is_file():
            raise SystemExit(f"error: {rec_file} not found: run bash scripts/quickstart.sh first")
        if (out / m / "metrics.json").is_file() and not args.force:
            print(f"{m}: {out / m / 'metrics.json'} exists (--force to redo)")
            continue
        cmd = rewrite_command(json.loads(rec_file.read_text())["command"], protocol=args.protocol, out=out,
                              cache_dir=cache)
        if args.force:
            cmd.append("--force")
        print(f"{m}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.time()
        rc = subprocess.call(cmd)
        if rc != 0:
            print(f"error: the evaluation of {m} exited {rc}", file=sys.stderr)
            return rc
        print(f"{m}: done in {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
