"""Method then evaluation, the sequencing behind scripts/eval/{lcr,rece_uce,finetune,retrain,taskvec,esd}.sh.

    python -m src.methods.pipeline lcr violence synth --vq_name rvq --trans_name mtrans --res_name rtrans [flags]

Flags this module knows (sources, output name, evaluation) are used here; every other flag joins the method's typed
config (e.g. ``--code_prune 8 --select upstream`` for LCR, ``--max_epoch 3`` for fine-tuning), which is checked before
any step runs and handed to the method's command. Evaluation is
``python -m src.eval.t2m_unlearn`` on the forget and retain TEST keyword splits, once per edited model.

LCR only: ``--code_prune_sweep 32 8 16 64`` runs the edit and its evaluation once per value (upstream's ``lcr.sh``
loop, in its order), as runs ``lcr<k>_<dataset>_<concept>`` (or ``<--out_name><k>``) evaluated as method ``lcr<k>``; the
method flag ``--combined`` (upstream's ``lcr_combined.sh``) names the run ``lcr_combined_<concept>``.

taskvec (src/methods/taskvec.py, ``--mode static|gated``) and esd (src/methods/esd.py) edit the masked transformer
only: the run ``<method>_<concept>`` is evaluated with the original residual transformer and VQ (MoMask runs only).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from src.common.errors import HmuError, cli
from src.common.run_names import help_default, with_run_defaults
from src.config.command import DeviceOptions, Locations, WandbFlags, group, opt

PROG = "python -m src.methods.pipeline"
METHODS = ("lcr", "rece_uce", "finetune", "retrain", "taskvec", "esd")
MASK_ONLY = ("taskvec", "esd")   # methods that write a new masked-transformer run and keep the rest


@dataclasses.dataclass(kw_only=True)
class PipelineConfig:
    """Method then evaluation, the sequencing behind scripts/eval/{lcr,rece_uce,finetune,retrain,taskvec,esd}.sh."""

    method: str = opt(None, flag="method", choices=METHODS, help="which method to run")
    concept: str = opt(None, flag="concept", help="concept in assets/splits.json, e.g. violence")
    dataset: str = opt("HumanML3D", flag="dataset", nargs="?", help="dataset (HumanML3D, Motion-X, synth)")
    vq_name: str | None = opt(None, help="original VQ run (" + help_default("vq") + ")")
    trans_name: str | None = opt(None, help="original masked-transformer (or BAMM) run (" + help_default("mask")
                                            + ")")
    res_name: str | None = opt(None, help="original residual run (" + help_default("res") + ")")
    model: str = opt("momask", choices=("momask", "bamm"), help="model family")
    out_name: str | None = opt(None, help="output run name (default <method>_<concept>; LCR: upstream's "
                                          "lcr<code_prune>_<dataset>_<concept>)")
    force: bool = opt(False, help="overwrite output runs and results")
    seed: int = opt(0, help="seed of the method and of the evaluation")
    code_prune_sweep: list[int] | None = opt(None, metavar="K", help="lcr: one edit + evaluation per --code_prune "
                                                                     "value (upstream lcr.sh: 32 8 16 64)")
    # evaluation
    repeat_times: int | None = opt(None, help="evaluation repeats (default 3 on synth, 20 else)")
    no_mm: bool = opt(False, help="skip MultiModality")
    no_eval: bool = opt(False, help="run the method only")
    device: DeviceOptions = group(DeviceOptions, only=("gpu_id",))
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "results_dir"))
    wandb: WandbFlags = group(WandbFlags)  # to the evaluation, and to the training of finetune and retrain


CONFIG = PipelineConfig


def parse_pipeline(argv: Sequence[str] | None) -> tuple[PipelineConfig, list[str]]:
    """argv -> (the pipeline's config, the flags it leaves to the method's command)."""
    from src.config.command import parse_known_config

    return parse_known_config(PipelineConfig, argv, prog=PROG, doc=__doc__)


def method_config(module: str, argv: Sequence[str]):
    """A method step's argv -> its command's checked config (a bad method flag stops the pipeline before any step)."""
    import importlib

    from src.config.command import parse_config

    if module in ("src.methods.uce", "src.methods.rece"):
        from src.methods.text_edit import CONFIGS

        cls = CONFIGS[module.rsplit(".", 1)[1]]
    else:
        cls = importlib.import_module(_entry(module)).CONFIG
    return parse_config(cls, list(argv), prog=f"python -m {module}")


def plan(cfg: PipelineConfig, method_args: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The commands in order: [(module, argv), ...] (pure; tested). A method step is its command's config, built
    from the pipeline's flags and ``method_args`` and checked before any step runs, written back as flags."""
    from src.common.datasets import get_spec
    from src.config.command import to_argv

    ds = get_spec(cfg.dataset).name
    cfg = with_run_defaults(cfg, ds, vq_name="vq", trans_name="mask", res_name="res")
    if cfg.model != "momask" and cfg.method in ("finetune", "retrain", *MASK_ONLY):
        raise HmuError(f"--model {cfg.model}: {cfg.method} trains MoMask transformers only (use lcr or rece_uce)")
    family = "" if cfg.model == "momask" else f"{cfg.model}_"  # BAMM runs never take MoMask's default names
    out = cfg.out_name or f"{family}{cfg.method}_{cfg.concept}"
    common = ["--dataset_name", ds, "--concept", cfg.concept, "--seed", str(cfg.seed), "--gpu_id",
              str(cfg.device.gpu_id)]
    for flag, value in (("--checkpoints_dir", cfg.where.checkpoints_dir), ("--dataset_dir", cfg.where.dataset_dir)):
        if value:
            common += [flag, value]
    force = ["--force"] if cfg.force else []
    rest = list(method_args)
    wandb = cfg.wandb.options().argv()
    methods: list[tuple[str, Any]] = []  # (module, its checked config)
    evals: list[tuple[str, str, str, str]] = []  # (label, mask run, res run, vq run)
    if cfg.code_prune_sweep and cfg.method != "lcr":
        raise HmuError("--code_prune_sweep: lcr only, without --code_prune and --combined")
    if cfg.method == "lcr":
        # one LCR config from the pipeline's flags and the method's; the runs differ by name (and k in a sweep)
        lcr = method_config("src.methods.lcr", [*common, "--vq_name", cfg.vq_name, "--name", "-", *force, *rest])
        if cfg.code_prune_sweep and (lcr.combined or "--code_prune" in rest):
            raise HmuError("--code_prune_sweep: lcr only, without --code_prune and --combined")
        if lcr.combined:
            runs = [("lcr_combined", cfg.out_name or f"{family}lcr_combined_{cfg.concept}", lcr.code_prune)]
        elif cfg.code_prune_sweep:
            runs = [(f"lcr{k}", f"{cfg.out_name}{k}" if cfg.out_name else f"{family}lcr{k}_{ds}_{cfg.concept}", k)
                    for k in cfg.code_prune_sweep]
        else:
            # upstream's lcr.sh names the edit lcr<k>_<dataset>_<concept>, and its README evaluates it by that name
            runs = [("lcr", cfg.out_name or f"{family}lcr{lcr.code_prune}_{ds}_{cfg.concept}", lcr.code_prune)]
        for label, name, k in runs:
            methods.append(("src.methods.lcr", dataclasses.replace(lcr, name=name, code_prune=k)))
            evals.append((label, cfg.trans_name, cfg.res_name, name))
    elif cfg.method == "rece_uce":
        for m in ("uce", "rece"):
            name = f"{out}_{m}" if cfg.out_name else f"{family}{m}_{cfg.concept}"
            methods.append((f"src.methods.{m}", method_config(f"src.methods.{m}", [
                *common, "--model", cfg.model, "--trans_name", cfg.trans_name, "--res_name", cfg.res_name, "--name",
                name, *force, *rest])))
            evals.append((m, name, f"{name}_res", cfg.vq_name))
    elif cfg.method == "finetune":
        from src.methods.finetune import with_preset

        ft = method_config("src.methods.finetune", [*common, "--trans_name", cfg.trans_name, "--res_name",
                                                    cfg.res_name, "--name", out, *force, *wandb, *rest])
        methods.append(("src.methods.finetune", ft))
        trains_res = "res" in with_preset(ft).train_parts.split(",")
        evals.append(("finetune", out, f"{out}_res" if trains_res else cfg.res_name, cfg.vq_name))
    elif cfg.method in MASK_ONLY:
        module = f"src.methods.{cfg.method}"
        conf = method_config(module, [*common, "--trans_name", cfg.trans_name, "--name", out, *force, *rest])
        methods.append((module, conf))
        label = f"taskvec_{conf.mode}" if cfg.method == "taskvec" and conf.mode != "static" else cfg.method
        evals.append((label, out, cfg.res_name, cfg.vq_name))
    elif cfg.method == "retrain":
        methods.append(("src.methods.retrain", method_config("src.methods.retrain", [
            *common, "--name", out, "--like_vq", cfg.vq_name, "--like_trans", cfg.trans_name, "--like_res",
            cfg.res_name, *force, *wandb, *rest])))
        evals.append(("retrain", out, f"{out}_res", f"{out}_vq"))
    steps = [(module, to_argv(config)) for module, config in methods]
    if not cfg.no_eval:
        repeats = cfg.repeat_times or (3 if get_spec(ds).synthetic else 20)
        for label, mask, res, vq in evals:
            argv = [*common, "--method", label, "--name", mask, "--res_name", res, "--vq_name", vq,
                    "--ckpt", "net_best_fid.tar", "--repeat_times", str(repeats), *force, *wandb]
            if cfg.no_mm:
                argv.append("--no_mm")
            if cfg.where.results_dir:
                argv += ["--results_dir", cfg.where.results_dir]
            if cfg.model != "momask":
                argv += ["--model", cfg.model]
            steps.append(("src.eval.t2m_unlearn", argv))
    return steps


# Steps that run under torchrun themselves (every rank takes part); any other step runs on rank 0 alone.
DISTRIBUTED = ("src.methods.finetune", "src.methods.retrain", "src.eval.t2m_unlearn")


def _device_of(argv: Sequence[str]):
    """The device a step's ``--gpu_id``/``--device`` flags name."""
    from src.config.command import parse_known_config

    return parse_known_config(DeviceOptions, list(argv), prog=PROG)[0].resolve()


def _entry(module: str) -> str:
    """The module whose ``main`` ``python -m module`` runs: a package's ``__main__``, else the module itself."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    return f"{module}.__main__" if spec is not None and spec.submodule_search_locations is not None else module


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.config.command import command_context

    cfg, method_args = parse_pipeline(argv)
    command_context(None, where=cfg.where, wandb=cfg.wandb, needs_device=False)  # --wandb checked before any work
    return run_steps(plan(cfg, method_args), method_args)


def run_steps(steps: Sequence[tuple[str, list[str]]], method_args: Sequence[str] = ()) -> int:
    """Each step's command in this process, in order; the first failure stops the pipeline (one line)."""
    import importlib
    import time

    from src.common import dist

    if dist.env_world_size() > 1:  # under torchrun: one process group for every step, on the steps' device
        dist.init_cli(_device_of([*steps[0][1], *method_args]))
    for module, step_argv in steps:
        fn = importlib.import_module(_entry(module)).main
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
