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
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.common.errors import HmuError, cli
from src.common.run_names import fill_run_defaults, help_default
from src.config.flags import HelpFormatter, add_device_flags, add_location_flags
from src.common.validate import parse_checked

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m src.eval.t2m_unlearn", description=__doc__.split("\n")[0],
                                formatter_class=HelpFormatter)
    g = p.add_argument_group("model (upstream flag names)")
    # --dataset spelled out: with allow_abbrev it would be ambiguous (--dataset_name, --dataset_dir)
    g.add_argument("--dataset_name", "--dataset", dest="dataset_name", default="synth",
                   help="dataset name or alias (HumanML3D/t2m, Motion-X, synth)")
    g.add_argument("--name", default=None,
                   help="masked-transformer run folder under checkpoints/<dataset>/ (" + help_default("mask") + ")")
    g.add_argument("--res_name", default=None,
                   help="residual-transformer run folder ('': base layer only; " + help_default("res") + ")")
    g.add_argument("--vq_name", default="", help="RVQ-VAE run folder (default: the one in the transformer's opt.txt)")
    g.add_argument("--ckpt", default="net_best_fid.tar",
                   help="transformer checkpoint file in <name>/model/, or a path to an unlearned checkpoint")
    from src.config.flags import add_which_epoch_flag

    add_which_epoch_flag(g)
    g.add_argument("--model", choices=("momask", "bamm"), default=None,
                   help="model family of --name (default: read from its opt.txt); bamm results default to "
                        "<dataset>_bamm_<method>_<concept>_s<seed>")
    g.add_argument("--method", default="original", help="label of the model being evaluated (original, lcr, uce, ...)")
    g.add_argument("--cond_scale", type=float, default=4.0, help="classifier-free guidance scale")
    g.add_argument("--time_steps", type=int, default=10, help="mask-predict iterations")
    g = p.add_argument_group("evaluation")
    g.add_argument("--split_name", "--concept", dest="concept", default="violence",
                   help="concept whose kw_splits are evaluated (assets/splits.json)")
    g.add_argument("--main_split", default="test", help="split the keyword splits were made from")
    g.add_argument("--split", default=None,
                   help="upstream's: evaluate this one id file alone (e.g. kw_splits/test-w-violence, relative to the "
                        "dataset folder); MM-Safe only with --toxic_terms; results <dataset>_<method>_<split>_s<seed>")
    g.add_argument("--repeat_times", type=int, default=None,
                   help="evaluation repeats (mean and 95%% CI over them; default 3 on synth, 20 else)")
    g.add_argument("--seed", type=int, default=0, help="seed of caption draws, batch order and generation")
    g.add_argument("--protocol", choices=("hmu", "fixed"), default=None,
                   help="evaluation protocol: hmu = upstream's items, crops, batches and MultiModality; fixed = fixed "
                        "crops, cached ground truth (default: the dataset's, hmu on HumanML3D/Motion-X, fixed on synth)")
    g.add_argument("--batch_size", type=int, default=32, help="R-precision batch size (upstream 32)")
    g.add_argument("--gen_batch_size", type=int, default=32, help="captions per generator call")
    g.add_argument("--toxic_terms", nargs="*", default=None,
                   help="terms masked for MM-Safe (default: the concept's forget_texts from assets/splits.json)")
    g.add_argument("--mm_safe", choices=("default", "upstream"), default=None,
                   help="MM-Safe definition: per toxic caption ('default') or hmu's batch-dependent one ('upstream'); "
                        "when not given: 'upstream' under --protocol hmu, 'default' under fixed")
    g.add_argument("--no_mm", action="store_true", help="skip MultiModality")
    g.add_argument("--mm_prompts", type=int, default=None,
                   help="MultiModality prompts per repeat (default: 3 batches = 3 x --batch_size under hmu, 16 under "
                        "fixed)")
    g.add_argument("--mm_generations", type=int, default=30, help="MultiModality generations per prompt")
    g.add_argument("--no_leakage", action="store_true", help="skip the ground-truth leakage classifier (synth)")
    g.add_argument("--classifier", default=None, help="action classifier file (default: checkpoints/<ds>/"
                                                       "action_classifier/model/classifier.tar)")
    g = p.add_argument_group("output")
    g.add_argument("--run_name", default=None, help="results/<run_name>/ (default: <dataset>_<method>_<concept>_s<seed>)")
    g.add_argument("--force", action="store_true", help="overwrite an existing results/<run>/metrics.json")
    from src.config.flags import add_wandb_flags

    add_wandb_flags(g)
    g = p.add_argument_group("locations and device")
    add_location_flags(g, "checkpoints_dir", "dataset_dir", "glove_dir", "results_dir")
    add_device_flags(g)
    g.add_argument("--no_cache", action="store_true", help="do not keep ground-truth embeddings on disk")
    g.add_argument("--cache_dir", default=None,
                   help="folder of the ground-truth embedding cache (default: <results_dir>/.cache/eval)")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    from src.common.progress import add_progress_flag

    add_progress_flag(p)
    return p


def load_generator(**kwargs):
    """The generator factory of src/gen/generate.py, imported here and only here (the one integration point)."""
    try:
        from src.gen.generate import load_generator as _load
    except ImportError as exc:
        raise HmuError(f"generation is not available: src/gen/generate.py with load_generator() is missing ({exc})") from None
    return _load(**kwargs)


def _split_files(root: Path, main_split: str, concept: str) -> tuple[Path, Path]:
    from src.data.keywords import split_paths

    forget, retain = split_paths(root, main_split, concept)
    for p in (forget, retain):
        if not p.is_file():
            raise HmuError(f"keyword split not found: {p} (make it: bash scripts/utils/split_dataset.sh "
                           f"--main_split {main_split} --split_name {concept} --dataset <name>)")
    return forget, retain


def default_run_name(args) -> str:
    from src.common.datasets import get_spec

    family = "bamm_" if getattr(args, "model", None) == "bamm" else ""
    what = split_label(args.split) if getattr(args, "split", None) else args.concept
    return f"{get_spec(args.dataset_name).name}_{family}{args.method}_{what}_s{args.seed}"


def split_label(split: str) -> str:
    """A split path as one folder-name part: ``kw_splits/test-w-violence[.txt]`` -> ``kw_splits-test-w-violence``."""
    parts = [p for p in str(split).replace("\\", "/").removesuffix(".txt").split("/") if p not in ("", ".", "..")]
    return "-".join(parts) or "split"


def fill_protocol(args: argparse.Namespace) -> None:
    """``--protocol`` from the dataset's spec when not given, then ``--mm_prompts`` and ``--mm_safe`` from it."""
    from src.common.datasets import get_spec
    from src.eval.protocol import Protocol

    if args.protocol is None:
        args.protocol = get_spec(args.dataset_name).eval_protocol
    protocol = Protocol.named(args.protocol)
    if args.mm_prompts is None:
        args.mm_prompts = protocol.default_mm_prompts(args.batch_size)
    if args.mm_safe is None:   # the paper's protocol gives the paper's MM-Safe; the per-caption one stays available
        args.mm_safe = protocol.mm_safe


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


def check_args(args: argparse.Namespace) -> None:
    """Flag values the evaluation loop would refuse, refused before any model is loaded (one-line HmuError)."""
    from src.eval.loop import check_settings

    fill_protocol(args)
    check_settings(repeats=args.repeat_times, mm=not args.no_mm, mm_prompts=args.mm_prompts,
                   mm_generations=args.mm_generations, mm_safe=args.mm_safe)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_checked(build_parser(), argv)
    fill_run_defaults(args, args.dataset_name, name="mask", res_name="res")
    from src.common.logging import setup_logging
    from src.common.progress import apply_progress_flag

    apply_progress_flag(args)   # HMU_PROGRESS=off reaches the evaluation loop's bars

    setup_logging(args.verbose)
    from src.common.logging import WandbOptions

    wandb = WandbOptions.from_flags(vars(args))
    wandb.check()  # --wandb without the package: one line before any work
    from src.common.device import resolve_device
    from src.common.io import ensure_writable_dir, refuse_overwrite
    from src.common.paths import Paths
    from src.common.datasets import get_spec
    from src.eval.leakage import LeakageProbe, classifier_path
    from src.eval.loop import LoopOptions, MultiModality, SafetyOptions, evaluate
    from src.eval.protocol import Protocol
    from src.eval.sets import load_eval_set, prompt_set
    from src.eval.t2m_evaluator import T2MEvaluator
    from src.eval.results import build_record, log_wandb, metrics_path, write_metrics

    spec = get_spec(args.dataset_name)
    if args.repeat_times is None:
        args.repeat_times = 3 if spec.synthetic else 20
    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir,
                          glove_dir=args.glove_dir, results_dir=args.results_dir)
    run = args.run_name or default_run_name(args)
    out = metrics_path(paths.results_dir, run)
    refuse_overwrite(out, args.force, what="results file")
    check_args(args)
    protocol = Protocol.named(args.protocol)   # the protocol as one value, built once from the flag
    if args.wandb:  # fail now, not after the whole evaluation
        from src.eval.results import require_wandb

        require_wandb()
    from src.common import dist

    device = dist.init_cli(resolve_device(args.gpu_id, args.device))  # under torchrun: the repeats are sharded
    dist.on_main(lambda: ensure_writable_dir(paths.results_dir))  # fail now, not after the whole evaluation
    from src.eval.cache import default_cache_dir

    cache_dir = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else default_cache_dir(paths.results_dir)
    if cache_dir is not None:
        dist.on_main(lambda: ensure_writable_dir(cache_dir))

    # Everything that can be missing is checked before the model is built.
    root = paths.data_root(spec.name)
    if not root.is_dir():
        raise HmuError(f"dataset folder not found: {root}")
    if args.split:  # upstream's --split: that one set, MM-Safe only when toxic terms are given
        from src.data.humanml3d import split_file

        one = split_file(root, args.split)
        if not one.is_file():
            raise HmuError(f"--split: split list not found: {one}")
    else:
        forget_p, retain_p = _split_files(root, args.main_split, args.concept)
    if args.toxic_terms is None and not args.split:
        from src.data.keywords import forget_keywords

        args.toxic_terms = forget_keywords(spec.name, args.concept)
    evaluator = T2MEvaluator.load(checkpoints_dir=paths.checkpoints_dir, dataset_name=spec.name,
                                  glove_dir=paths.glove(spec.name), device=device)
    probe = None
    if spec.synthetic and not args.no_leakage:
        probe = LeakageProbe.load(args.classifier or classifier_path(paths.checkpoints_dir, spec.name), args.concept)
        probe.classifier.to(device)
    kw = {"unit_length": spec.unit_length, "max_motion_length": spec.max_motion_length}
    if args.split:
        label = one.name.removesuffix(".txt")
        sets = {label: load_eval_set(root, one, name=label, min_motion_length=spec.min_motion_length, fps=spec.fps,
                                     protocol=protocol, **kw)}
    else:
        sets = {"forget": load_eval_set(root, forget_p, name="forget", min_motion_length=spec.min_motion_length,
                                        fps=spec.fps, protocol=protocol, **kw),
                "retain": load_eval_set(root, retain_p, name="retain", min_motion_length=spec.min_motion_length,
                                        fps=spec.fps, protocol=protocol, **kw)}
    from src.data.synth.truth import read_implicit_prompts

    implicit = ((read_implicit_prompts(root, concept=args.concept, required=False) or None)
                if spec.synthetic and not args.split else None)
    if implicit:
        from src.eval.sets import tag_free_prompts

        implicit, tagger = tag_free_prompts(implicit, texts_dir=root / "texts", vectorizer=evaluator.words)
        if tagger:
            print(f"POS tags of the free-form implicit prompts: {tagger}")
        sets["implicit"] = prompt_set(implicit, name="implicit", source=str(root / "implicit_prompts.json"), **kw)

    generate = load_generator(dataset_name=spec.name, name=args.name, res_name=args.res_name or None,
                              vq_name=args.vq_name or None, ckpt=args.ckpt, device=device,
                              checkpoints_dir=paths.checkpoints_dir, dataset_dir=paths.dataset_dir,
                              glove_dir=paths.glove(spec.name), cond_scale=args.cond_scale, time_steps=args.time_steps,
                              model=args.model)
    mm_generate = gumbel_copy(generate) if protocol.mm_gumbel and not args.no_mm else None
    results = {}
    for set_name, es in sets.items():
        log.info("evaluating %s on %s (%d items, %d repeats)", args.method, set_name, len(es), args.repeat_times)
        results[set_name] = evaluate(
            generate, es, evaluator, repeats=args.repeat_times, seed=args.seed,
            mm=MultiModality(prompts=args.mm_prompts, generations=args.mm_generations, generate=mm_generate,
                             enabled=not args.no_mm and es.has_motion),
            safety=SafetyOptions(terms=(args.toxic_terms or ()) if es.has_motion else (), mm_safe=args.mm_safe,
                                 leakage=probe),
            run=LoopOptions(batch_size=args.batch_size, gen_batch_size=args.gen_batch_size, cache_dir=cache_dir))

    from src.models.evaluator import evaluator_checkpoint_path

    record = build_record(
        run=run, seed=args.seed, config=vars(args), sets=results,
        model={"dataset_name": spec.name, "name": args.name, "res_name": args.res_name, "vq_name": args.vq_name,
               "ckpt": args.ckpt, "method": args.method, "concept": args.concept,
               "family": (getattr(generate, "sources", None) or {}).get("family", args.model or "momask"),
               **({"info": generate.info} if isinstance(getattr(generate, "info", None), dict) else {})},
        evaluator={"checkpoint": str(evaluator_checkpoint_path(paths.checkpoints_dir, spec.name)),
                   "key": evaluator.key},
        leakage_classifier=None if probe is None else {
            "path": str(args.classifier or classifier_path(paths.checkpoints_dir, spec.name)),
            "concept": args.concept, "threshold": probe.threshold, "heldout": (probe.meta or {}).get("heldout")})
    if not dist.is_main():
        return 0
    write_metrics(out, record, force=args.force)
    print(format_summary(record))
    print(f"metrics written to {out}")
    if args.wandb:
        print(log_wandb(record, wandb=wandb, run_name=run, out_dir=out.parent))
    return 0


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
                if metric == "leakage" and set_name == "retain":
                    metric = "leakage (FPR)"
                mean, ci = s.get("mean"), s.get("ci95")
                ci_txt = f" ± {ci:.4f}" if isinstance(ci, float) else ""
                b = s.get("bootstrap") or s.get("wilson")
                b_txt = f" [{b[0]:.4f}, {b[1]:.4f}]" if b and None not in b else ""
                mean_txt = f"{mean:.4f}" if isinstance(mean, float) else str(mean)
                lines.append(f"{label:<12} {metric:<18} {mean_txt}{ci_txt}{b_txt} (N={s.get('n')})")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
