"""The whole job on the embedded default, one command: data -> split -> train -> unlearn -> evaluate -> report.

    python -m src.quickstart [--fast] [--force] [--gpu_id -1]      (what ``bash scripts/quickstart.sh`` runs)

Every stage is one of the project's own CLIs, run as a subprocess with the same flags a user would type, so the
quickstart is also a worked example of the commands. A stage whose outputs exist is skipped, so a second run finishes
in seconds; ``--force`` redoes everything. Stage timings go to ``results/<run>/stages.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from src.common.errors import HmuError, cli

CONCEPT = "violence"
# Tiny original model (the names scripts/train/momask_tiny.sh uses).
VQ, TRANS, RES, LEN = "rvq_tiny", "t2m_tiny", "tres_tiny", "length_estimator"


@dataclass
class Stage:
    name: str
    module: str
    argv: list[str]
    outputs: list[Path]            # the stage is done when all of these exist
    info: str = ""
    env: dict[str, str] = field(default_factory=dict)
    resume: Path | None = None     # a training stage interrupted earlier left this file: continue from it

    def done(self) -> bool:
        return bool(self.outputs) and all(p.exists() for p in self.outputs)


@dataclass(frozen=True)
class Settings:
    n: int
    repeats: int
    epochs_scale: float
    mm: bool
    video: bool


FULL = Settings(n=3000, repeats=5, epochs_scale=1.0, mm=True, video=True)
FAST = Settings(n=400, repeats=2, epochs_scale=0.0, mm=False, video=False)  # epochs_scale 0: one epoch each


def plan(*, run: str, settings: Settings, seed: int, gpu: list[str], ckpt: Path, data: Path, results: Path,
         fast: bool) -> list[Stage]:
    """The stages in order (pure; the test checks names, order and outputs)."""
    root = data / "synth"
    ds = ["--dataset_name", "synth"]
    loc = ["--checkpoints_dir", str(ckpt), "--dataset_dir", str(data)]
    c = ckpt / "synth"
    ep = (lambda n: ["--max_epoch", "1"]) if fast else (lambda n: [])
    out = results / run
    rep = ["--repeat_times", str(settings.repeats)] + ([] if settings.mm else ["--no_mm"])
    ev = ["--results_dir", str(out)]

    def best(name: str, file: str = "net_best_fid.tar") -> Path:
        return c / name / "model" / file

    def evaluate(label: str, trans: str, res: str, vq: str) -> Stage:
        return Stage(f"eval:{label}", "src.eval.t2m_unlearn",
                     [*ds, *loc, *gpu, "--concept", CONCEPT, "--method", label, "--name", trans, "--res_name", res,
                      "--vq_name", vq, "--ckpt", "net_best_fid.tar", *rep, "--seed", str(seed),
                      "--run_name", label, *ev],
                     [out / label / "metrics.json"])

    stages = [
        Stage("data", "src.data.synth", ["--out", str(root), "--n", str(settings.n), "--seed", str(seed)],
              [root / "labels.json", root / "Mean.npy"], "procedural dataset"),
        Stage("split", "src.data.split", ["synth", CONCEPT, "--dataset_dir", str(data)],
              [root / "kw_splits" / f"train_val-w-{CONCEPT}.txt", root / "kw_splits" / f"test-wo-{CONCEPT}.txt"],
              "keyword forget/retain splits"),
        Stage("train:vq", "src.train.vq", ["--name", VQ, *ds, *loc, *gpu, *ep(1)], [best(VQ)],
              resume=best(VQ, "latest.tar")),
        Stage("train:mask", "src.train.mask", ["--name", TRANS, "--vq_name", VQ, *ds, *loc, *gpu, *ep(1)],
              [best(TRANS)], resume=best(TRANS, "latest.tar")),
        Stage("train:residual", "src.train.residual", ["--name", RES, "--vq_name", VQ, *ds, *loc, *gpu, *ep(1)],
              [best(RES)], resume=best(RES, "latest.tar")),
        Stage("train:length", "src.train.length", ["--name", LEN, *ds, *loc, *gpu, *ep(1)],
              [best(LEN, "finest.tar")], resume=best(LEN, "latest.tar")),
        Stage("train:evaluator", "src.train.evaluator", [*ds, *loc, *gpu, *ep(1)],
              [best("text_mot_match", "finest.tar")]),
        Stage("train:classifier", "src.train.classifier", [*ds, *loc, *gpu, *ep(1)],
              [best("action_classifier", "classifier.tar")]),
        # Unlearning: each writes NEW runs; the originals are never touched.
        Stage("unlearn:lcr", "src.methods.lcr",
              [*ds, *loc, *gpu, "--concept", CONCEPT, "--vq_name", VQ, "--name", f"lcr_{CONCEPT}", "--seed", str(seed)],
              [best(f"lcr_{CONCEPT}")]),
        Stage("unlearn:uce", "src.methods.uce",
              [*ds, *loc, *gpu, "--concept", CONCEPT, "--trans_name", TRANS, "--res_name", RES,
               "--name", f"uce_{CONCEPT}", "--seed", str(seed)],
              [best(f"uce_{CONCEPT}"), best(f"uce_{CONCEPT}_res")]),
        Stage("unlearn:rece", "src.methods.rece",
              [*ds, *loc, *gpu, "--concept", CONCEPT, "--trans_name", TRANS, "--res_name", RES,
               "--name", f"rece_{CONCEPT}", "--seed", str(seed)],
              [best(f"rece_{CONCEPT}"), best(f"rece_{CONCEPT}_res")]),
        Stage("unlearn:finetune", "src.methods.finetune",
              [*ds, *loc, *gpu, "--concept", CONCEPT, "--trans_name", TRANS, "--res_name", RES,
               "--name", f"finetune_{CONCEPT}", "--seed", str(seed), *ep(1)],
              [best(f"finetune_{CONCEPT}")]),
        Stage("unlearn:retrain", "src.methods.retrain",
              [*ds, *loc, *gpu, "--concept", CONCEPT, "--name", f"retrain_{CONCEPT}", "--like_vq", VQ,
               "--like_trans", TRANS, "--like_res", RES, "--seed", str(seed),
               *(["--", "--max_epoch", "1"] if fast else [])],
              [best(f"retrain_{CONCEPT}"), best(f"retrain_{CONCEPT}_res"), best(f"retrain_{CONCEPT}_vq")]),
        evaluate("original", TRANS, RES, VQ),
        evaluate("lcr", TRANS, RES, f"lcr_{CONCEPT}"),
        evaluate("uce", f"uce_{CONCEPT}", f"uce_{CONCEPT}_res", VQ),
        evaluate("rece", f"rece_{CONCEPT}", f"rece_{CONCEPT}_res", VQ),
        evaluate("finetune", f"finetune_{CONCEPT}", RES, VQ),
        evaluate("retrain", f"retrain_{CONCEPT}", f"retrain_{CONCEPT}_res", f"retrain_{CONCEPT}_vq"),
        Stage("report", "src.report", [str(out), *gpu, *([] if settings.video else ["--no_video"]), "--still",
                                       "--force"],
              [out / "report" / "report.md"], "tables, plots, animations"),
    ]
    return stages


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m src.quickstart", description=__doc__.split("\n")[0])
    p.add_argument("--fast", action="store_true", help="small smoke-test run (400 motions, one epoch per model)")
    p.add_argument("--force", action="store_true", help="redo every stage, overwriting its outputs")
    p.add_argument("--run_name", default=None, help="results/<run_name>/ (default: quickstart or quickstart_fast)")
    p.add_argument("--seed", type=int, default=0, help="seed of every stage (default 0)")
    p.add_argument("--only", default=None, help="comma-separated stage names (or prefixes like 'train') to run")
    p.add_argument("--list", action="store_true", help="print the stages and whether each is done, then exit")
    p.add_argument("--gpu_id", type=int, default=-1, help="GPU index, -1 for CPU (default)")
    p.add_argument("--checkpoints_dir", default=None, help="checkpoints root (default: ./checkpoints)")
    p.add_argument("--dataset_dir", default=None, help="datasets root (default: ./dataset)")
    p.add_argument("--results_dir", default=None, help="results root (default: ./results)")
    return p


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from src.common.paths import REPO_ROOT, Paths

    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir,
                          results_dir=args.results_dir)
    settings = FAST if args.fast else FULL
    run = args.run_name or ("quickstart_fast" if args.fast else "quickstart")
    ckpt, data, results = paths.checkpoints_dir, paths.dataset_dir, paths.results_dir
    if args.fast:
        # The smoke run keeps its data and models apart from the full run's.
        ckpt, data = ckpt / "_fast", data / "_fast"
    stages = plan(run=run, settings=settings, seed=args.seed, gpu=["--gpu_id", str(args.gpu_id)], ckpt=ckpt,
                  data=data, results=results, fast=args.fast)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = [w for w in wanted if not any(s.name == w or s.name.startswith(w + ":") or s.name.startswith(w)
                                                for s in stages)]
        if unknown:
            raise HmuError(f"--only: unknown stage(s) {', '.join(unknown)} (stages: {', '.join(s.name for s in stages)})")
        stages = [s for s in stages if any(s.name == w or s.name.startswith(w) for w in wanted)]
    if args.list:
        for s in stages:
            print(f"{'done' if s.done() else 'todo'}  {s.name:18s} python -m {s.module} {' '.join(s.argv)}")
        return 0

    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    record_path = results / run / "stages.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    t_all = time.time()
    print(f"[hmu] quickstart{' --fast' if args.fast else ''}: {len(stages)} stages -> {results / run}")
    for i, s in enumerate(stages, 1):
        head = f"[{i:2d}/{len(stages)}] {s.name}"
        if s.done() and not args.force:
            print(f"{head}: done, skipped")
            continue
        argv = [sys.executable, "-m", s.module, *s.argv]
        if args.force and s.module != "src.report":
            argv.append("--force")
        elif s.resume is not None and s.resume.exists():
            argv.append("--is_continue")
        print(f"{head}: python -m {s.module} {' '.join(s.argv)}", flush=True)
        t0 = time.time()
        proc = subprocess.run(argv, cwd=REPO_ROOT, env={**env, **s.env})
        dt = time.time() - t0
        if proc.returncode != 0:
            raise HmuError(f"stage '{s.name}' failed (exit {proc.returncode}) after {dt:.0f} s; its message is above. "
                           f"Fix it and rerun: finished stages are skipped")
        missing = [str(p) for p in s.outputs if not p.exists()]
        if missing:
            raise HmuError(f"stage '{s.name}' finished but did not write {missing[0]}")
        record[s.name] = {"seconds": round(dt, 2), "command": f"python -m {s.module} {' '.join(s.argv)}"}
        from src.common.io import atomic_write_json

        atomic_write_json(record_path, record)
        print(f"{head}: {dt:.1f} s", flush=True)
    total = time.time() - t_all
    report = results / run / "report" / "report.md"
    print(f"[hmu] quickstart finished in {total:.0f} s. Report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
