"""Method then evaluation, the sequencing behind scripts/eval/{lcr,rece_uce,finetune,retrain}.sh.

    python -m src.methods.pipeline lcr violence synth --vq_name rvq --trans_name mtrans --res_name rtrans [flags]

Flags this module knows (sources, output name, evaluation) are used here; every other flag goes to the method's CLI
unchanged (e.g. ``--code_prune 8 --select upstream`` for LCR, ``--max_epoch 3`` for fine-tuning). Evaluation is
``python -m src.eval.t2m_unlearn`` on the forget and retain TEST keyword splits, once per edited model.

LCR only: ``--code_prune_sweep 32 8 16 64`` runs the edit and its evaluation once per value (upstream's ``lcr.sh``
loop, in its order), as runs ``lcr<k>_<dataset>_<concept>`` (or ``<--out_name><k>``) evaluated as method ``lcr<k>``; the
method flag ``--combined`` (upstream's ``lcr_combined.sh``) names the run ``lcr_combined_<concept>``.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from src.common.errors import HmuError, cli
from src.common.run_names import fill_run_defaults, help_default
from src.common.validate import check_args

METHODS = ("lcr", "rece_uce", "finetune", "retrain")


def build_parser() -> argparse.ArgumentParser:
    from src.config.flags import add_device_flags, add_location_flags

    from src.config.flags import HelpFormatter

    p = argparse.ArgumentParser(prog="python -m src.methods.pipeline", description=__doc__.split("\n")[0],
                                formatter_class=HelpFormatter,
                                allow_abbrev=False)  # method flags pass through whole (--code_prune vs --code_prune_sweep)
    p.add_argument("method", choices=METHODS, help="which method to run")
    p.add_argument("concept", help="concept in assets/splits.json, e.g. violence")
    p.add_argument("dataset", nargs="?", default="HumanML3D", help="dataset (HumanML3D, Motion-X, synth)")
    p.add_argument("--vq_name", default=None, help="original VQ run (" + help_default("vq") + ")")
    p.add_argument("--trans_name", default=None,
                   help="original masked-transformer (or BAMM) run (" + help_default("mask") + ")")
    p.add_argument("--res_name", default=None, help="original residual run (" + help_default("res") + ")")
    p.add_argument("--model", choices=("momask", "bamm"), default="momask", help="model family")
    p.add_argument("--out_name", default=None, help="output run name (default <method>_<concept>; LCR: upstream's "
                                                    "lcr<code_prune>_<dataset>_<concept>)")
    p.add_argument("--force", action="store_true", help="overwrite output runs and results")
    p.add_argument("--seed", type=int, default=0, help="seed of the method and of the evaluation")
    add_device_flags(p, device=False)
    add_location_flags(p, "checkpoints_dir", "dataset_dir")
    p.add_argument("--code_prune_sweep", type=int, nargs="+", default=None, metavar="K",
                   help="lcr: one edit + evaluation per --code_prune value (upstream lcr.sh: 32 8 16 64)")
    g = p.add_argument_group("evaluation")
    g.add_argument("--repeat_times", type=int, default=None, help="evaluation repeats (default 3 on synth, 20 else)")
    g.add_argument("--no_mm", action="store_true", help="skip MultiModality")
    add_location_flags(g, "results_dir")
    g.add_argument("--no_eval", action="store_true", help="run the method only")
    from src.config.flags import add_wandb_flags

    add_wandb_flags(g)  # to the evaluation, and to the training of finetune and retrain
    return p


def flag_value(argv: Sequence[str], flag: str, default: str) -> str:
    """The last value given to ``flag`` in ``argv`` (``--flag v`` or ``--flag=v``), else ``default``."""
    value = default
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
    return value


def plan(args, method_args: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The CLI calls in order: [(module, argv), ...] (pure; tested)."""
    from src.common.datasets import get_spec

    ds = get_spec(args.dataset).name
    fill_run_defaults(args, ds, vq_name="vq", trans_name="mask", res_name="res")
    if args.model != "momask" and args.method in ("finetune", "retrain"):
        raise HmuError(f"--model {args.model}: {args.method} trains MoMask transformers only (use lcr or rece_uce)")
    family = "" if args.model == "momask" else f"{args.model}_"  # BAMM runs never take MoMask's default names
    out = args.out_name or f"{family}{args.method}_{args.concept}"
    if args.method == "lcr" and not args.out_name:
        # upstream's lcr.sh names the edit lcr<k>_<dataset>_<concept>, and its README evaluates it by that name
        out = f"{family}lcr{flag_value(method_args, '--code_prune', '16')}_{ds}_{args.concept}"
    common = ["--dataset_name", ds, "--concept", args.concept, "--seed", str(args.seed), "--gpu_id", str(args.gpu_id)]
    for flag in ("checkpoints_dir", "dataset_dir"):
        if getattr(args, flag):
            common += [f"--{flag}", getattr(args, flag)]
    force = ["--force"] if args.force else []
    rest = list(method_args)
    from src.common.logging import WandbOptions

    wandb = WandbOptions.from_flags(vars(args)).argv()
    steps: list[tuple[str, list[str]]] = []
    evals: list[tuple[str, str, str, str]] = []  # (label, mask run, res run, vq run)
    if args.code_prune_sweep and (args.method != "lcr" or "--code_prune" in rest or "--combined" in rest):
        raise HmuError("--code_prune_sweep: lcr only, without --code_prune and --combined")
    if args.method == "lcr" and args.code_prune_sweep:
        for k in args.code_prune_sweep:
            name = f"{args.out_name}{k}" if args.out_name else f"{family}lcr{k}_{ds}_{args.concept}"
            steps.append(("src.methods.lcr", [*common, "--vq_name", args.vq_name, "--name", name, "--code_prune",
                                              str(k), *force, *rest]))
            evals.append((f"lcr{k}", args.trans_name, args.res_name, name))
    elif args.method == "lcr":
        label = "lcr_combined" if "--combined" in rest else "lcr"
        if "--combined" in rest:
            out = args.out_name or f"{family}{label}_{args.concept}"
        steps.append(("src.methods.lcr", [*common, "--vq_name", args.vq_name, "--name", out, *force, *rest]))
        evals.append((label, args.trans_name, args.res_name, out))
    elif args.method == "rece_uce":
        for m in ("uce", "rece"):
            name = f"{out}_{m}" if args.out_name else f"{family}{m}_{args.concept}"
            steps.append((f"src.methods.{m}", [*common, "--model", args.model, "--trans_name", args.trans_name,
                                                "--res_name", args.res_name, "--name", name, *force, *rest]))
            evals.append((m, name, f"{name}_res", args.vq_name))
    elif args.method == "finetune":
        steps.append(("src.methods.finetune", [*common, "--trans_name", args.trans_name, "--res_name", args.res_name,
                                               "--name", out, *force, *wandb, *rest]))
        from src.methods.finetune import build_parser as ft_parser
        from src.methods.finetune import apply_preset

        ft, _ = ft_parser().parse_known_args(["--name", out, *rest])  # the parts as finetune will read them
        apply_preset(ft)
        trains_res = "res" in ft.train_parts.split(",")
        evals.append(("finetune", out, f"{out}_res" if trains_res else args.res_name, args.vq_name))
    elif args.method == "retrain":
        steps.append(("src.methods.retrain", [*common, "--name", out, "--like_vq", args.vq_name, "--like_trans",
                                              args.trans_name, "--like_res", args.res_name, *force, *wandb, *rest]))
        evals.append(("retrain", out, f"{out}_res", f"{out}_vq"))
    if not args.no_eval:
        repeats = args.repeat_times or (3 if get_spec(ds).synthetic else 20)
        for label, mask, res, vq in evals:
            argv = [*common, "--method", label, "--name", mask, "--res_name", res, "--vq_name", vq,
                    "--ckpt", "net_best_fid.tar", "--repeat_times", str(repeats), *force, *wandb]
            if args.no_mm:
                argv.append("--no_mm")
            if args.results_dir:
                argv += ["--results_dir", args.results_dir]
            if args.model != "momask":
                argv += ["--model", args.model]
            steps.append(("src.eval.t2m_unlearn", argv))
    return steps


# Steps that run under torchrun themselves (every rank takes part); any other step runs on rank 0 alone.
DISTRIBUTED = ("src.methods.finetune", "src.methods.retrain", "src.eval.t2m_unlearn")


def _device_of(argv: Sequence[str]):
    """The device a step's ``--gpu_id``/``--device`` flags name."""
    import argparse

    from src.common.device import resolve_device

    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--gpu_id", type=int, default=-1)
    p.add_argument("--device", default=None)
    known, _ = p.parse_known_args(list(argv))
    return resolve_device(known.gpu_id, known.device)


def _entry(module: str) -> str:
    """The module whose ``main`` ``python -m module`` runs: a package's ``__main__``, else the module itself."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    return f"{module}.__main__" if spec is not None and spec.submodule_search_locations is not None else module


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args, method_args = build_parser().parse_known_args(argv)
    check_args(args)
    from src.common.logging import WandbOptions

    WandbOptions.from_flags(vars(args)).check()  # --wandb without the package: one line before any work
    import importlib
    import time

    from src.common import dist

    steps = plan(args, method_args)
    if dist.env_world_size() > 1:  # under torchrun: one process group for every step, on the steps' device
        dist.init_cli(_device_of(steps[0][1] + (method_args or [])))
    for module, step_argv in steps:
        mod = importlib.import_module(_entry(module))
        fn = mod.main
        print(f">>> python -m {module} {' '.join(step_argv)}", flush=True)
        t0 = time.perf_counter()
        if module in DISTRIBUTED or dist.world_size() == 1:
            rc = fn(step_argv)
        else:  # an edit (LCR, UCE, RECE) takes seconds: rank 0 makes it and writes it, the others wait
            rc = dist.on_main(lambda: fn(step_argv))
        print(f">>> {module}: exit {rc}, {time.perf_counter() - t0:.1f}s", flush=True)
        if rc:
            raise HmuError(f"step python -m {module} failed (exit status {rc})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
