"""The LCR selection sweep behind the defaults quoted in src/methods/lcr/edit.py: leakage and retain quality per rule.

    python -m bench.lcr_sweep [--checkpoints_dir checkpoints --dataset_dir dataset] [--out docs/results/lcr_sweep]

On the quickstart's models (``rvq_tiny``, ``t2m_tiny``, ``tres_tiny``; run ``bash scripts/quickstart.sh`` first), for
each selection setting: ``python -m src.methods.lcr`` (a new run ``sweep_<tag>`` under the checkpoints folder, with
``--force``) then ``python -m src.eval.t2m_unlearn`` on forget, retain and implicit (``--no_mm``, ``--repeats`` repeats,
seed 0). The original is evaluated the same way. Writes ``<out>/sweep.json`` (``{"columns", "rows", "config"}``:
what ``python -m src.report.readme`` renders into README.md) and prints the table. Each evaluation takes about a
minute on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

# (tag, label, LCR flags); the first row is the original (no edit).
SETTINGS = (
    ("original", "original", None),
    ("ratio1_k16", "ratio, threshold 1, k 16 (default)", ["--select", "ratio", "--threshold", "1", "--code_prune", "16"]),
    ("ratio1_k8", "ratio, threshold 1, k 8", ["--select", "ratio", "--threshold", "1", "--code_prune", "8"]),
    ("ratio2_k16", "ratio, threshold 2, k 16", ["--select", "ratio", "--threshold", "2", "--code_prune", "16"]),
    ("ratio5_k16", "ratio, threshold 5, k 16", ["--select", "ratio", "--threshold", "5", "--code_prune", "16"]),
    ("upstream_k16", "upstream top-k union, k 16", ["--select", "upstream", "--code_prune", "16"]),
    ("upstream_k8", "upstream top-k union, k 8", ["--select", "upstream", "--code_prune", "8"]),
)
COLUMNS = ["setting", "codes", "leakage forget ↓", "leakage implicit ↓", "R@3 retain ↑", "FID retain ↓"]


def _cell(block: dict, set_name: str, metric: str, d: int) -> str:
    m = block["sets"][set_name]["metrics"][metric]
    half = m.get("ci95", m.get("half_width"))
    return f"{m['mean']:.{d}f} ± {half:.{d}f}" if isinstance(half, (int, float)) else f"{m['mean']:.{d}f}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.lcr_sweep", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoints_dir", default="checkpoints")
    p.add_argument("--dataset_dir", default="dataset")
    p.add_argument("--results_dir", default="results/lcr_sweep", help="the evaluations' metrics.json files")
    p.add_argument("--out", default="docs/results/lcr_sweep", help="folder of sweep.json")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="edit and evaluation seed")
    p.add_argument("--only", nargs="+", default=None, help="tags to run (default: all)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from src.common.io import atomic_write_json, torch_load
    from src.eval.t2m_unlearn import main as evaluate
    from src.methods.lcr.__main__ import main as lcr

    loc = ["--dataset_name", "synth", "--checkpoints_dir", args.checkpoints_dir, "--dataset_dir", args.dataset_dir,
           "--gpu_id", "-1"]
    rows = []
    for tag, label, flags in SETTINGS:
        if args.only and tag not in args.only:
            continue
        vq = "rvq_tiny"
        n_codes = "–"
        if flags is not None:
            vq = f"sweep_{tag}"
            rc = lcr([*loc, "--concept", "violence", "--vq_name", "rvq_tiny", "--name", vq, "--seed", str(args.seed),
                      "--force", "--no_progress", *flags])
            if rc:
                return rc
            ck = torch_load(Path(args.checkpoints_dir) / "synth" / vq / "model" / "net_best_fid.tar")
            n_codes = str(len(ck["removed_codes"][0]))
        rc = evaluate([*loc, "--concept", "violence", "--method", tag, "--name", "t2m_tiny", "--res_name", "tres_tiny",
                       "--vq_name", vq, "--ckpt", "net_best_fid.tar", "--repeat_times", str(args.repeats),
                       "--seed", str(args.seed), "--no_mm", "--results_dir", args.results_dir, "--run_name", tag,
                       "--force"])
        if rc:
            return rc
        m = json.loads((Path(args.results_dir) / tag / "metrics.json").read_text())
        rows.append([label, n_codes, _cell(m, "forget", "leakage", 2), _cell(m, "implicit", "leakage", 2),
                     _cell(m, "retain", "R_precision_top3", 3), _cell(m, "retain", "FID", 2)])
        print(" | ".join(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sweep.json", {
        "columns": COLUMNS, "rows": rows,
        "config": {"models": ["rvq_tiny", "t2m_tiny", "tres_tiny"], "dataset": "synth", "concept": "violence",
                   "repeats": args.repeats, "seed": args.seed, "command": "python -m bench.lcr_sweep"}})
    print(f"wrote {out / 'sweep.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
