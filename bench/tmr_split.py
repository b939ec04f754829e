"""Keyword split vs the two TMR refinements on synth's ground truth: precision and recall of the forget split.

    python -m bench.tmr_split [--split test] [--checkpoints_dir checkpoints --dataset_dir dataset]
                              [--out docs/results/tmr_split]

Needs the quickstart's dataset and generator runs (``bash scripts/quickstart.sh``) and a TMR run
(``python -m src.train.tmr --dataset_name synth --name tmr``). For the split list ``--split`` of synth and the concept
violence it computes the keyword forget set (``python -m src.data.split``'s rule) and refines it with
``--tmr_method knn`` (defaults 8 of 20) and ``--tmr_method upstream_filter`` (10 generations, top 10, >= 8), then
scores each forget set against labels.json. Nothing is written under dataset/. Writes ``<out>/tmr_split.json``
(``{"columns", "rows", "config"}``, rendered into README.md by ``python -m src.report.readme``).
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path

COLUMNS = ["forget split", "motions", "precision", "recall", "F1", "implicit recovered", "moved / dropped", "time"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.tmr_split", description=__doc__.split("\n")[0])
    p.add_argument("--split", default="test", help="split list of synth to measure on")
    p.add_argument("--concept", default="violence")
    p.add_argument("--tmr_name", default="tmr")
    p.add_argument("--checkpoints_dir", default="checkpoints")
    p.add_argument("--dataset_dir", default="dataset")
    p.add_argument("--out", default="docs/results/tmr_split", help="folder of tmr_split.json")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from src.common.io import atomic_write_json
    from src.common.paths import Paths
    from src.data.humanml3d import read_split
    from src.data.keywords import forget_keywords, keyword_split, split_quality
    from src.data.split import TMRRefineOptions, make_tmr_refiner
    from src.data.synth.truth import read_labels
    from src.models.tmr.refine_split import implicit_cases

    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir)
    root = paths.data_root("synth")
    labels = read_labels(root, required=True)
    keywords = forget_keywords("synth", args.concept)
    ids = read_split(root / f"{args.split}.txt")
    naive = keyword_split(ids, root / "texts", keywords)
    implicit = set(implicit_cases(labels, args.concept, ids, naive.forget))

    def row(label: str, forget: Sequence[str], change: str, seconds: float | None) -> list[str]:
        q = split_quality(forget, labels, args.concept, ids=ids)
        p, r = q["precision"], q["recall"]
        f1 = 2 * p * r / (p + r) if p + r > 0 else math.nan
        got = sum(i in set(forget) for i in implicit)
        def f(x: float) -> str:
            return "n/a" if math.isnan(x) else f"{x:.3f}"

        return [label, str(len(forget)), f(p), f(r), f(f1), f"{got} of {len(implicit)}", change,
                "–" if seconds is None else f"{seconds:.0f} s"]

    rows = [row("keyword (word match)", naive.forget, "–", None)]
    for method, label in (("knn", "TMR knn, 8 of 20 nearest captions (ours)"),
                          ("upstream_filter", "TMR upstream filter, >= 8 of 10 generations")):
        t = time.perf_counter()
        refiner = make_tmr_refiner(TMRRefineOptions(method=method, name=args.tmr_name, seed=args.seed),
                                   dataset_name="synth", concept=args.concept, root=root, keywords=keywords,
                                   match="word", paths=paths)
        out = refiner(args.split, naive, ids=ids)
        secs = time.perf_counter() - t
        if method == "knn":
            change = f"+{len(set(out.forget) - set(naive.forget))} added"
        else:
            dropped = len(refiner.last_dropped)
            change = f"{len(naive.forget) - len(out.forget) - dropped} to retain / {dropped} dropped"
        rows.append(row(label, out.forget, change, secs))
        print(" | ".join(rows[-1]), flush=True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "tmr_split.json", {
        "columns": COLUMNS, "rows": rows,
        "config": {"dataset": "synth", "split": args.split, "n_ids": len(ids), "concept": args.concept,
                   "tmr": args.tmr_name, "seed": args.seed, "command": "python -m bench.tmr_split"}})
    print(f"wrote {out_dir / 'tmr_split.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
