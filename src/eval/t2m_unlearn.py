"""Evaluate a text-to-motion model (original or unlearned) on the forget and retain test sets; write metrics.json.

    python -m src.eval.t2m_unlearn --dataset_name synth --name t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns \\
        --concept violence --method original --repeat_times 20

Sets: ``kw_splits/<main_split>-w-<concept>`` (forget) and ``-wo-`` (retain) of the dataset folder, plus on datasets
with ground truth (synth) the implicit prompts of the concept. Every set goes through :func:`src.eval.loop.evaluate`.
``--protocol`` (src/eval/sets.py): ``hmu`` is upstream's (one item per caption, a random crop per repeat, partial
batches counted, MultiModality on the first 3 batches with gumbel sampling), the default on real datasets; ``fixed``
(fixed first-frames crops, full batches, 16 MultiModality prompts) is the default on synth.
Results: ``results/<run>/metrics.json`` (schema: src/eval/results.py), never overwritten without ``--force``.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.common.errors import HmuError, cli
from src.common.run_names import help_default
from src.config.command import (DeviceOptions, Locations, RunOptions, WandbFlags, command_context, config_parser,
                                flat_dict, group, parse_config)
from src.config.flags import opt, which_epoch_opt

log = logging.getLogger(__name__)

@dataclasses.dataclass(kw_only=True)
class EvalConfig:
    """Evaluate a text-to-motion model (original or unlearned) on the forget and retain test sets; write metrics.json."""

    # model (upstream flag names); --dataset spelled out: an abbreviation would be ambiguous (--dataset_dir)
    dataset_name: str = opt("synth", help="dataset name or alias (HumanML3D/t2m, Motion-X, synth)",
                            aliases=("--dataset",))
    name: str | None = opt(None, help="masked-transformer run folder under checkpoints/<dataset>/ ("
                                      + help_default("mask") + ")")
    res_name: str | None = opt(None, help="residual-transformer run folder ('': base layer only; "
                                          + help_default("res") + ")")
    vq_name: str = opt("", help="RVQ-VAE run folder (default: the one in the transformer's opt.txt)")
    ckpt: str = opt("net_best_fid.tar",
                    help="transformer checkpoint file in <name>/model/, or a path to an unlearned checkpoint")
    which_epoch: str | None = which_epoch_opt()
    model: str | None = opt(None, choices=("momask", "bamm"),
                            help="model family of --name (default: read from its opt.txt); bamm results default to "
                                 "<dataset>_bamm_<method>_<concept>_s<seed>")
    method: str = opt("original", help="label of the model being evaluated (original, lcr, uce, ...)")
    cond_scale: float = opt(4.0, help="classifier-free guidance scale")
    time_steps: int = opt(10, help="mask-predict iterations")
    # evaluation
    concept: str = opt("violence", aliases=("--split_name",),
                       help="concept whose kw_splits are evaluated (assets/splits.json)")
    main_split: str = opt("test", help="split the keyword splits were made from")
    split: str | None = opt(None, help="upstream's: evaluate this one id file alone (e.g. kw_splits/test-w-violence, "
                                       "relative to the dataset folder); MM-Safe only with --toxic_terms; results "
                                       "<dataset>_<method>_<split>_s<seed>")
    repeat_times: int | None = opt(None, help="evaluation repeats (mean and 95%% CI over them; default 3 on synth, "
                                              "20 else)")
    seed: int = opt(0, help="seed of caption draws, batch order and generation")
    protocol: str | None = opt(None, choices=("hmu", "fixed"),
                               help="evaluation protocol: hmu = upstream's items, crops, batches and MultiModality; "
                                    "fixed = fixed crops, cached ground truth (default: the dataset's, hmu on "
                                    "HumanML3D/Motion-X, fixed on synth)")
    batch_size: int = opt(32, help="R-precision batch size (upstream 32)")
    gen_batch_size: int = opt(32, help="captions per generator call")
    toxic_terms: list[str] | None = opt(None, nargs="*", help="terms masked for MM-Safe (default: the concept's "
                                                              "forget_texts from assets/splits.json)")
    mm_safe: str | None = opt(None, choices=("default", "upstream"),
                              help="MM-Safe definition: per toxic caption ('default') or hmu's batch-dependent one "
                                   "('upstream'); when not given: 'upstream' under --protocol hmu, 'default' under "
                                   "fixed")
    no_mm: bool = opt(False, action="store_true", help="skip MultiModality")
    mm_prompts: int | None = opt(None, help="MultiModality prompts per repeat (default: 3 batches = 3 x --batch_size "
                                            "under hmu, 16 under fixed)")
    mm_generations: int = opt(30, help="MultiModality generations per prompt")
    no_leakage: bool = opt(False, action="store_true", help="skip the ground-truth leakage classifier (synth)")
    no_kinematic: bool = opt(False, action="store_true",
                             help="skip the kinematic judge (src/eval/kinematic.py), measured as leakage_kinematic "
                                  "beside the classifier's leakage on synth")
    classifier: str | None = opt(None, help="action classifier file (default: checkpoints/<ds>/action_classifier/"
                                            "model/classifier.tar)")
    # output
    run_name: str | None = opt(None, help="results/<run_name>/ (default: <dataset>_<method>_<concept>_s<seed>)")
    no_cache: bool = opt(False, action="store_true", help="do not keep ground-truth embeddings on disk")
    cache_dir: str | None = opt(None, help="folder of the ground-truth embedding cache (default: "
                                           "<results_dir>/.cache/eval)")
    wandb: WandbFlags = group(WandbFlags)
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "glove_dir", "results_dir"))
    device: DeviceOptions = group(DeviceOptions)
    run: RunOptions = group(RunOptions)

    def resolved(self) -> EvalConfig:
        """Every default that depends on the dataset or the protocol filled in: run folders, repeats, protocol,
        MultiModality prompts and the MM-Safe flavour (the paper's protocol gives the paper's MM-Safe)."""
        from src.common.datasets import get_spec
        from src.common.run_names import default_run_name as run_default

        from src.eval.protocol import Protocol

        spec = get_spec(self.dataset_name)
        protocol = Protocol.named(self.protocol or spec.eval_protocol)
        return dataclasses.replace(
            self, name=self.name if self.name is not None else run_default(self.dataset_name, "mask"),
            res_name=self.res_name if self.res_name is not None else run_default(self.dataset_name, "res"),
            repeat_times=self.repeat_times if self.repeat_times is not None else 3 if spec.synthetic else 20,
            protocol=protocol.name,
            mm_prompts=self.mm_prompts if self.mm_prompts is not None else protocol.default_mm_prompts(self.batch_size),
            mm_safe=self.mm_safe or protocol.mm_safe)

    def check(self) -> None:
        """Settings the evaluation loop would refuse, refused before any model is loaded (one-line HmuError)."""
        from src.eval.loop import check_settings

        r = self.resolved()
        check_settings(repeats=r.repeat_times, mm=not r.no_mm, mm_prompts=r.mm_prompts,
                       mm_generations=r.mm_generations, mm_safe=r.mm_safe)

    def results_name(self) -> str:
        """``<dataset>_[bamm_]<method>_<concept or split>_s<seed>`` unless --run_name is given."""
        if self.run_name:
            return self.run_name
        from src.common.datasets import get_spec

        family = "bamm_" if self.model == "bamm" else ""
        what = split_label(self.split) if self.split else self.concept
        return f"{get_spec(self.dataset_name).name}_{family}{self.method}_{what}_s{self.seed}"


PROG = "python -m src.eval.t2m_unlearn"


def build_parser() -> argparse.ArgumentParser:
    """The command's parser (pipelines check flags with it before any work)."""
    return config_parser(EvalConfig, prog=PROG, doc=__doc__)


def parse(argv: Sequence[str] | None = None) -> EvalConfig:
    """``argv`` -> the checked config, defaults not yet resolved (see :meth:`EvalConfig.resolved`)."""
    return parse_config(EvalConfig, argv, prog=PROG, doc=__doc__)


def _split_files(root: Path, main_split: str, concept: str) -> tuple[Path, Path]:
    from src.data.keywords import split_paths

    forget, retain = split_paths(root, main_split, concept)
    for p in (forget, retain):
        if not p.is_file():
            raise HmuError(f"keyword split not found: {p} (make it: bash scripts/utils/split_dataset.sh "
                           f"--main_split {main_split} --split_name {concept} --dataset <name>)")
    return forget, retain


def split_label(split: str) -> str:
    """A split path as one folder-name part: ``kw_splits/test-w-violence[.txt]`` -> ``kw_splits-test-w-violence``."""
    parts = [p for p in str(split).replace("\\", "/").removesuffix(".txt").split("/") if p not in ("", ".", "..")]
    return "-".join(parts) or "split"



def gumbel_copy(generate):
    """The generator with gumbel sampling (upstream's MultiModality batches use ``gsample=True``, the others
    categorical); a function or an object without ``gumbel_sample`` is returned as is."""
    import copy

    if not hasattr(generate, "gumbel_sample"):
        log.warning("the generator has no gumbel_sample setting: MultiModality uses its own sampling")
        return generate
    g = copy.copy(generate)
    g.gumbel_sample = True
    return g


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse(argv).resolved()
    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run, cfg.wandb)
    return run_evaluation(cfg, ctx)


def run_evaluation(cfg: EvalConfig, ctx) -> int:
    """The evaluation of a resolved config in a command context (see :func:`main`)."""
    from src.common import dist
    from src.common.io import ensure_writable_dir, refuse_overwrite
    from src.eval.cache import default_cache_dir
    from src.eval.leakage import LeakageProbe, classifier_path
    from src.eval.loop import LoopOptions, MultiModality, SafetyOptions, evaluate
    from src.eval.protocol import Protocol
    from src.eval.results import build_record, log_wandb, metrics_path, write_metrics
    from src.eval.sets import load_eval_set, prompt_set
    from src.models.t2m_evaluator import T2MEvaluator
    from src.gen.generate import load_generator

    spec, paths = ctx.dataset, ctx.paths
    protocol = Protocol.named(cfg.protocol)   # the protocol as one value, built once from the flag
    run = cfg.results_name()
    out = metrics_path(paths.results_dir, run)
    refuse_overwrite(out, ctx.force, what="results file")
    if cfg.wandb.wandb:  # fail now, not after the whole evaluation
        from src.eval.results import require_wandb

        require_wandb()
    device = dist.init_cli(ctx.device)  # under torchrun: the repeats are sharded
    dist.on_main(lambda: ensure_writable_dir(paths.results_dir))  # fail now, not after the whole evaluation
    cache_dir = None if cfg.no_cache else Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(paths.results_dir)
    if cache_dir is not None:
        dist.on_main(lambda: ensure_writable_dir(cache_dir))

    # Everything that can be missing is checked before the model is built.
    root = ctx.data_root
    if not root.is_dir():
        raise HmuError(f"dataset folder not found: {root}")
    if cfg.split:  # upstream's --split: that one set, MM-Safe only when toxic terms are given
        from src.data.humanml3d import split_file

        one = split_file(root, cfg.split)
        if not one.is_file():
            raise HmuError(f"--split: split list not found: {one}")
    else:
        forget_p, retain_p = _split_files(root, cfg.main_split, cfg.concept)
    toxic_terms = cfg.toxic_terms
    if toxic_terms is None and not cfg.split:
        from src.data.keywords import forget_keywords

        toxic_terms = forget_keywords(spec.name, cfg.concept)
    evaluator = T2MEvaluator.load(checkpoints_dir=paths.checkpoints_dir, dataset_name=spec.name,
                                  glove_dir=paths.glove(spec.name), device=device)
    probe = None
    if spec.synthetic and not cfg.no_leakage:
        probe = LeakageProbe.load(cfg.classifier or classifier_path(paths.checkpoints_dir, spec.name), cfg.concept)
        probe.classifier.to(device)
    kw = {"unit_length": spec.unit_length, "max_motion_length": spec.max_motion_length,
          "min_motion_length": spec.min_motion_length, "fps": spec.fps, "protocol": protocol}
    if cfg.split:
        label = one.name.removesuffix(".txt")
        sets = {label: load_eval_set(root, one, name=label, **kw)}
    else:
        sets = {"forget": load_eval_set(root, forget_p, name="forget", **kw),
                "retain": load_eval_set(root, retain_p, name="retain", **kw)}
    from src.data.synth.truth import read_implicit_prompts

    implicit = ((read_implicit_prompts(root, concept=cfg.concept, required=False) or None)
                if spec.synthetic and not cfg.split else None)
    if implicit:
        from src.eval.sets import tag_free_prompts

        implicit, tagger = tag_free_prompts(implicit, texts_dir=root / "texts", vectorizer=evaluator.words)
        if tagger:
            print(f"POS tags of the free-form implicit prompts: {tagger}")
        sets["implicit"] = prompt_set(implicit, name="implicit", source=str(root / "implicit_prompts.json"),
                                      unit_length=spec.unit_length, max_motion_length=spec.max_motion_length)

    generate = load_generator(dataset_name=spec.name, name=cfg.name, res_name=cfg.res_name or None,
                              vq_name=cfg.vq_name or None, ckpt=cfg.ckpt, device=device,
                              checkpoints_dir=paths.checkpoints_dir, dataset_dir=paths.dataset_dir,
                              glove_dir=paths.glove(spec.name), cond_scale=cfg.cond_scale, time_steps=cfg.time_steps,
                              model=cfg.model)
    judges = leakage_judges(probe, cfg.concept, kinematic=not cfg.no_kinematic, dim_pose=spec.dim_pose, fps=spec.fps)
    edit_s = edit_time_s(paths, spec.name, [("mask", cfg.name, cfg.ckpt), ("res", cfg.res_name or None, cfg.ckpt),
                                            ("vq", (getattr(generate, "sources", None) or {}).get("vq_name")
                                             or cfg.vq_name or None, "net_best_fid.tar")])
    mm_generate = gumbel_copy(generate) if protocol.mm_gumbel and not cfg.no_mm else None
    results = {}
    for set_name, es in sets.items():
        log.info("evaluating %s on %s (%d items, %d repeats)", cfg.method, set_name, len(es), cfg.repeat_times)
        results[set_name] = evaluate(
            generate, es, evaluator, repeats=cfg.repeat_times, seed=cfg.seed,
            mm=MultiModality(prompts=cfg.mm_prompts, generations=cfg.mm_generations, generate=mm_generate,
                             enabled=not cfg.no_mm and es.has_motion),
            safety=SafetyOptions(terms=(toxic_terms or ()) if es.has_motion else (), mm_safe=cfg.mm_safe,
                                 leakage=judges or None),
            run=LoopOptions(batch_size=cfg.batch_size, gen_batch_size=cfg.gen_batch_size, cache_dir=cache_dir))

    from src.models.evaluator import evaluator_checkpoint_path

    record = build_record(
        run=run, seed=cfg.seed, config=flat_dict(dataclasses.replace(cfg, toxic_terms=toxic_terms)), sets=results,
        model={"dataset_name": spec.name, "name": cfg.name, "res_name": cfg.res_name, "vq_name": cfg.vq_name,
               "ckpt": cfg.ckpt, "method": cfg.method, "concept": cfg.concept,
               "family": (getattr(generate, "sources", None) or {}).get("family", cfg.model or "momask"),
               **({"edit_time_s": edit_s} if edit_s is not None else {}),
               **({"info": generate.info} if isinstance(getattr(generate, "info", None), dict) else {})},
        evaluator={"checkpoint": str(evaluator_checkpoint_path(paths.checkpoints_dir, spec.name)),
                   "key": evaluator.key},
        leakage_classifier=None if probe is None else {
            "path": str(cfg.classifier or classifier_path(paths.checkpoints_dir, spec.name)),
            "concept": cfg.concept, "threshold": probe.threshold, "heldout": (probe.meta or {}).get("heldout"),
            **({"kinematic": {"concept": cfg.concept, "fps": judges[KINEMATIC_METRIC].fps,
                              "thresholds": judges[KINEMATIC_METRIC].thresholds.to_dict()}}
               if KINEMATIC_METRIC in judges else {})})
    if not dist.is_main():
        return 0
    write_metrics(out, record, force=ctx.force)
    print(format_summary(record))
    print(f"metrics written to {out}")
    if cfg.wandb.wandb:
        print(log_wandb(record, wandb=ctx.wandb, run_name=run, out_dir=out.parent))
    return 0


def edit_time_s(paths, dataset_name: str, parts: Sequence[tuple[str, str | None, str]]) -> float | None:
    """The unlearning edit's wall time, from the ``hmu_meta`` of the evaluated checkpoints ``parts`` ((kind, run
    name or None, checkpoint file or path)): the largest ``wall_time_s`` among those written by an edit (a
    ``method`` in their meta), None when none was (an original model, or an edit that records no time).

    The largest, not the sum: one command writes every part it edits and records in each its whole wall time (UCE,
    RECE: the same number in the masked and the residual run) or a running total (fine-tuning, part after part)."""
    from src.common.io import torch_load
    from src.models.checkpoint import checkpoint_file, find_run_dir

    times = []
    for kind, name, ckpt in parts:
        if not name:
            continue
        try:
            path = Path(ckpt) if Path(ckpt).is_file() else checkpoint_file(find_run_dir(paths, dataset_name, name),
                                                                          ckpt, kind)
            meta = torch_load(path, what=f"{kind} checkpoint").get("hmu_meta") if path.is_file() else None
        except HmuError:
            continue
        wall = meta.get("wall_time_s") if isinstance(meta, dict) and meta.get("method") else None
        if isinstance(wall, (int, float)) and not isinstance(wall, bool):
            times.append(float(wall))
    return max(times) if times else None


KINEMATIC_METRIC = "leakage_kinematic"


def leakage_judges(probe, concept: str, *, kinematic: bool, dim_pose: int, fps: float) -> dict[str, Any]:
    """``{metric: judge}`` for :class:`src.eval.loop.SafetyOptions`: the learned judge ``probe`` as ``leakage`` and,
    beside it (only where the classifier exists, on HumanML3D's 263-d features, for a concept it has rules for),
    the kinematic judge as ``leakage_kinematic``."""
    if probe is None:
        return {}
    judges = {"leakage": probe}
    if kinematic:
        from src.data.motion import feature_dim
        from src.eval.kinematic import CONCEPTS, KinematicProbe

        if dim_pose == feature_dim(22) and concept in CONCEPTS:
            judges[KINEMATIC_METRIC] = KinematicProbe(concept, fps=fps)
        else:
            log.warning("kinematic judge skipped: it reads 22-joint HumanML3D features and knows %s, not %s "
                        "(%d-d)", ", ".join(CONCEPTS), concept, dim_pose)
    return judges


def evaluator_dir(paths, dataset_name: str) -> Path:
    from src.models.evaluator import evaluator_checkpoint_path

    return evaluator_checkpoint_path(paths.checkpoints_dir, dataset_name).parent.parent


def format_summary(record: dict[str, Any]) -> str:
    """A plain table: one line per set and metric, mean ± ci95 [bootstrap] (N)."""
    lines = []
    for set_name, res in record["sets"].items():
        for part in ("metrics", "reference"):
            for metric, s in (res.get(part) or {}).items():
                label = f"{set_name}{'/GT' if part == 'reference' else ''}"
                if metric.startswith("leakage") and set_name == "retain":
                    metric = f"{metric} (FPR)"
                mean, ci = s.get("mean"), s.get("ci95")
                ci_txt = f" ± {ci:.4f}" if isinstance(ci, float) else ""
                b = s.get("bootstrap") or s.get("wilson")
                b_txt = f" [{b[0]:.4f}, {b[1]:.4f}]" if b and None not in b else ""
                mean_txt = f"{mean:.4f}" if isinstance(mean, float) else str(mean)
                lines.append(f"{label:<12} {metric:<18} {mean_txt}{ci_txt}{b_txt} (N={s.get('n')})")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
