"""Method then evaluation, the sequencing behind scripts/eval/{lcr,rece_uce,finetune,retrain}.sh.

    python -m src.methods.pipeline lcr violence synth --vq_name rvq --trans_name mtrans --res_name rtrans [flags]

Flags this module knows (sources, output name, evaluation) are used here; every other flag goes to the method's CLI
unchanged (e.g. ``--code_prune 8 --select upstream`` for LCR, ``--max_epoch 3`` for fine-tuning). Evaluation is
``python -m src.eval.t2m_unlearn`` on the forget and retain TEST keyword splits, once per edited model.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from src.common.errors import HmuError, cli
from src.common.run_names import fill_run_defaults, help_default

METHODS = ("lcr", "rece_uce", "finetune", "retrain")


def build_parser() -> argparse.ArgumentParser:
    from src.config.flags import add_device_flags, add_location_flags

    p = argparse.ArgumentParser(prog="python -m src.methods.pipeline", description=__doc__.split("\n")[0])
    p.add_argument("method", choices=METHODS, help="which method to run")
    p.add_argument("concept", help="concept in assets/splits.json, e.g. violence")
    p.add_argument("dataset", nargs="?", default="HumanML3D", help="dataset (HumanML3D, Motion-X, synth)")
    p.add_argument("--vq_name", default=None, help="original VQ run (" + help_default("vq") + ")")
    p.add_argument("--trans_name", default=None,
                   help="original masked-transformer (or BAMM) run (" + help_default("mask") + ")")
    p.add_argument("--res_name", default=None, help="original residual run (" + help_default("res") + ")")
    p.add_argument("--model", choices=("momask", "bamm"), default="momask", help="model family")
    p.add_argument("--out_name", default=None, help="output run name (default <method>_<concept>)")
    p.add_argument("--force", action="store_true", help="overwrite output runs and results")
    p.add_argument("--seed", type=int, default=0, help="seed of the method and of the evaluation")
    add_device_flags(p, device=False)
    add_location_flags(p, "checkpoints_dir", "dataset_dir")
    g = p.add_argument_group("evaluation")
    g.add_argument("--repeat_times", type=int, default=None, help="evaluation repeats (default 3 on synth, 20 else)")
    g.add_argument("--no_mm", action="store_true", help="skip MultiModality")
    add_location_flags(g, "results_dir")
    g.add_argument("--no_eval", action="store_true", help="run the method only")
    return p


def plan(args, method_args: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The CLI calls in order: [(module, argv), ...] (pure; tested)."""
    from src.common.datasets import get_spec

    ds = get_spec(args.dataset).name
    fill_run_defaults(args, ds, vq_name="vq", trans_name="mask", res_name="res")
    if args.model != "momask" and args.method in ("finetune", "retrain"):
        raise HmuError(f"--model {args.model}: {args.method} trains MoMask transformers only (use lcr or rece_uce)")
    family = "" if args.model == "momask" else f"{args.model}_"  # BAMM runs never take MoMask's default names
    out = args.out_name or f"{family}{args.method}_{args.concept}"
    common = ["--dataset_name", ds, "--concept", args.concept, "--seed", str(args.seed), "--gpu_id", str(args.gpu_id)]
    for flag in ("checkpoints_dir", "dataset_dir"):
        if getattr(args, flag):
            common += [f"--{flag}", getattr(args, flag)]
    force = ["--force"] if args.force else []
    rest = list(method_args)
    steps: list[tuple[str, list[str]]] = []
    evals: list[tuple[str, str, str, str]] = []  # (label, mask run, res run, vq run)
    if args.method == "lcr":
        steps.append(("src.methods.lcr", [*common, "--vq_name", args.vq_name, "--name", out, *force, *rest]))
        evals.append(("lcr", args.trans_name, args.res_name, out))
    elif args.method == "rece_uce":
        for m in ("uce", "rece"):
            name = f"{out}_{m}" if args.out_name else f"{family}{m}_{args.concept}"
            steps.append((f"src.methods.{m}", [*common, "--model", args.model, "--trans_name", args.trans_name,
                                                "--res_name", args.res_name, "--name", name, *force, *rest]))
            evals.append((m, name, f"{name}_res", args.vq_name))
    elif args.method == "finetune":
        steps.append(("src.methods.finetune", [*common, "--trans_name", args.trans_name, "--res_name", args.res_name,
                                               "--name", out, *force, *rest]))
        trains_res = any("res" in a for i, a in enumerate(rest) if i and rest[i - 1] == "--train_parts")
        evals.append(("finetune", out, f"{out}_res" if trains_res else args.res_name, args.vq_name))
    elif args.method == "retrain":
        steps.append(("src.methods.retrain", [*common, "--name", out, "--like_vq", args.vq_name, "--like_trans",
                                              args.trans_name, "--like_res", args.res_name, *force, *rest]))
        evals.append(("retrain", out, f"{out}_res", f"{out}_vq"))
    if not args.no_eval:
        repeats = args.repeat_times or (3 if get_spec(ds).synthetic else 20)
        for label, mask, res, vq in evals:
            argv = [*common, "--method", label, "--name", mask, "--res_name", res, "--vq_name", vq,
                    "--ckpt", "net_best_fid.tar", "--repeat_times", str(repeats), *force]
            if args.no_mm:
                argv.append("--no_mm")
            if args.results_dir:
                argv += ["--results_dir", args.results_dir]
            if args.model != "momask":
                argv += ["--model", args.model]
            steps.append(("src.eval.t2m_unlearn", argv))
    return steps


def _entry(module: str) -> str:
    """The module whose ``main`` ``python -m module`` runs: a package's ``__main__``, else the module itself."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    return f"{module}.__main__" if spec is not None and spec.submodule_search_locations is not None else module


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args, method_args = build_parser().parse_known_args(argv)
    import importlib
    import time

    for module, step_argv in plan(args, method_args):
        mod = importlib.import_module(_entry(module))
        fn = mod.main
        print(f">>> python -m {module} {' '.join(step_argv)}", flush=True)
        t0 = time.perf_counter()
        rc = fn(step_argv)
        print(f">>> {module}: exit {rc}, {time.perf_counter() - t0:.1f}s", flush=True)
        if rc:
            raise HmuError(f"step python -m {module} failed (exit status {rc})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
