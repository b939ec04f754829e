"""``bash scripts/eval/t2m_unlearn.sh``: the evaluation wrapper, in upstream's flags or in hmu's.

Called with ``--dataset`` (upstream's wrapper spelling) and without ``--dataset_name``, it is upstream's wrapper:

    bash scripts/eval/t2m_unlearn.sh --dataset HumanML3D --split_name violence --ckpt lcr16_HumanML3D_violence.tar \\
        --method LCR --name LCR16

``--name`` is then the results label (not a model run): the forget and retain test sets of ``--split_name`` are
evaluated into ``results/<name>_<dataset>_<split_name>/metrics.json`` and qualitative motions (one per line of
``assets/qualitatives_<dataset>.txt``, with videos, by ``python -m src.momask_codes.gen_t2m``) are generated into ``generation/<name>_<dataset>_<split_name>/``,
as upstream's script does. ``--ckpt`` names what is evaluated, as upstream meant it: ``base.tar`` is the released
model; ``X.tar`` is the edit upstream wrote as ``model/X.tar`` and hmu writes as the run ``X`` (an LCR VQ run, or a
UCE/RECE/fine-tuned masked transformer with ``X_res``), used in place of the part it edited and said so on stdout;
otherwise the file ``model/X.tar`` of the released runs (missing: one line naming it). Any other flag goes to
``python -m src.eval.t2m_unlearn`` (e.g. ``--repeat_times 3 --gpu_id 0 --seed 1``).

Any other call is ``python -m src.eval.t2m_unlearn`` with the same flags (see its ``--help``).
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from src.config.flags import RawDescriptionHelpFormatter
from src.common.errors import HmuError, cli

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bash scripts/eval/t2m_unlearn.sh", description=__doc__,
                                epilog="Other flags go to python -m src.eval.t2m_unlearn (see its --help).",
                                formatter_class=RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--dataset", default="HumanML3D", help="dataset (HumanML3D, Motion-X, synth)")
    p.add_argument("--split_name", default="violence", help="concept whose test kw_splits are evaluated")
    p.add_argument("--ckpt", default="base.tar", help="what is evaluated: base.tar or an edit X.tar (see above)")
    p.add_argument("--method", default="unnamed", help="method label recorded in metrics.json")
    p.add_argument("--name", default=None, help="results label (default: --method)")
    p.add_argument("--model_name", choices=("momask", "bamm"), default="momask", help="model family")
    p.add_argument("--trans_name", default=None, help="original masked-transformer (or BAMM) run "
                                                      "(default: src.eval.t2m_unlearn's)")
    p.add_argument("--res_name", default=None, help="original residual run (default: src.eval.t2m_unlearn's)")
    p.add_argument("--max_rank", type=int, default=None, help="upstream's (disabled) NCS retrieval depth; unused")
    p.add_argument("--no_qualitatives", action="store_true", help="skip the qualitative generation")
    return p


def is_upstream_call(argv: Sequence[str]) -> bool:
    flags = {a.split("=", 1)[0] for a in argv}
    return "--dataset" in flags and "--dataset_name" not in flags


def resolve_ckpt(paths, dataset_name: str, ckpt: str, *, trans: str, res: str) -> tuple[dict[str, str], str]:
    """Upstream's ``--ckpt`` -> (model flags for src.eval.t2m_unlearn, a sentence saying what was chosen)."""
    from src.config.opt_txt import read_opt_file
    from src.models.checkpoint import run_dir_candidates

    plain = {"--name": trans, "--res_name": res, "--ckpt": ckpt}
    stem = ckpt.removesuffix(".tar")
    if ckpt == "base.tar" or stem == ckpt:
        return plain, f"--ckpt {ckpt}: the released runs {trans}, {res}"
    edit = next((d for d in run_dir_candidates(paths, dataset_name, stem) if (d / "opt.txt").is_file()), None)
    if edit is None:
        return plain, f"--ckpt {ckpt}: model/{ckpt} of {trans} and {res}"
    opt = read_opt_file(edit / "opt.txt")
    if "nb_code" in opt and "latent_dim" not in opt:  # a VQ run (a transformer's opt.txt has latent_dim): LCR's edit
        return ({"--name": trans, "--res_name": res, "--vq_name": stem, "--ckpt": "base.tar"},
                f"--ckpt {ckpt}: hmu run {edit} (edited VQ) with the released transformers {trans}, {res}")
    res_edit = next((d for d in run_dir_candidates(paths, dataset_name, f"{stem}_res") if d.is_dir()), None)
    flags = {"--name": stem, "--res_name": f"{stem}_res" if res_edit else res, "--ckpt": "net_best_fid.tar"}
    return flags, (f"--ckpt {ckpt}: hmu run {edit} (edited masked transformer) with residual "
                   f"{flags['--res_name']}")


@cli
def main(argv: Sequence[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    from src.eval import t2m_unlearn

    if not is_upstream_call(argv):
        if {"-h", "--help"} & set(argv) and "--dataset_name" not in argv:
            build_parser().print_help()
            print("\nWithout --dataset: every flag goes to python -m src.eval.t2m_unlearn:\n")
        return t2m_unlearn.main(argv)
    args, rest = build_parser().parse_known_args(argv)
    from src.common.paths import REPO_ROOT, Paths
    from src.common.datasets import get_spec

    spec = get_spec(args.dataset)
    label = args.name or args.method
    ext = f"{label}_{args.dataset}_{args.split_name}"
    ev = t2m_unlearn.build_parser().parse_args(rest)  # flag errors before any work
    paths = Paths.default(checkpoints_dir=ev.checkpoints_dir, dataset_dir=ev.dataset_dir)
    prompts = REPO_ROOT / "assets" / f"qualitatives_{args.dataset}.txt"
    if not args.no_qualitatives and not prompts.is_file():
        raise HmuError(f"qualitative prompts not found: {prompts} (write one prompt a line, or --no_qualitatives)")
    from src.common.run_names import default_run_name

    models, said = resolve_ckpt(paths, spec.name, args.ckpt,
                                trans=args.trans_name or ev.name or default_run_name(spec.name, "mask"),
                                res=args.res_name or ev.res_name or default_run_name(spec.name, "res"))
    print(f">>> {said}", flush=True)
    family = ["--model", "bamm"] if args.model_name == "bamm" else []
    model_flags = [x for kv in models.items() for x in kv]
    print(f">>> Evaluating {ext} on {args.dataset}/{args.split_name}", flush=True)
    rc = t2m_unlearn.main(["--dataset_name", spec.name, "--concept", args.split_name, "--method", args.method,
                           "--run_name", ext, *model_flags, *family, *rest])
    if rc or args.no_qualitatives:
        return rc
    print(f">>> Generating qualitatives on {args.dataset}", flush=True)
    from src.momask_codes import gen_t2m

    gen_flags = [x for kv in models.items() for x in kv]
    passed = []
    for flag in ("--seed", "--checkpoints_dir", "--dataset_dir", "--gpu_id", "--device", "--glove_dir"):
        value = getattr(ev, flag[2:])
        if value is not None:
            passed += [flag, str(value)]
    if ev.force:
        passed.append("--force")
    return gen_t2m.main(["--dataset_name", spec.name, "--run_name", ext, "--text_path", str(prompts),
                         "--repeat_times", "1", *gen_flags, *(["--model_name", "bamm"] if family else []), *passed])


if __name__ == "__main__":
    raise SystemExit(main())
