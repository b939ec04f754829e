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

import dataclasses
import logging
from collections.abc import Sequence

from src.common.errors import HmuError, cli
from src.config.command import DeviceOptions, Locations, group, opt

log = logging.getLogger(__name__)

PROG = "bash scripts/eval/t2m_unlearn.sh"
EPILOG = "Other flags go to python -m src.eval.t2m_unlearn (see its --help)."


@dataclasses.dataclass(kw_only=True)
class UpstreamEvalConfig:
    """Upstream's evaluation wrapper: its own flags (every other flag goes to python -m src.eval.t2m_unlearn)."""

    dataset: str = opt("HumanML3D", help="dataset (HumanML3D, Motion-X, synth)")
    split_name: str = opt("violence", help="concept whose test kw_splits are evaluated")
    ckpt: str = opt("base.tar", help="what is evaluated: base.tar or an edit X.tar (see above)")
    method: str = opt("unnamed", help="method label recorded in metrics.json")
    name: str | None = opt(None, help="results label (default: --method)")
    model_name: str = opt("momask", choices=("momask", "bamm"), help="model family")
    trans_name: str | None = opt(None, help="original masked-transformer (or BAMM) run (default: "
                                            "src.eval.t2m_unlearn's)")
    res_name: str | None = opt(None, help="original residual run (default: src.eval.t2m_unlearn's)")
    max_rank: int | None = opt(None, help="upstream's (disabled) NCS retrieval depth; unused")
    no_qualitatives: bool = opt(False, help="skip the qualitative generation")


@dataclasses.dataclass(kw_only=True)
class PassedOn:
    """The evaluation's flags this wrapper also reads: the models evaluated, and what the qualitatives share."""

    name: str | None = opt(None, help="masked-transformer run")
    res_name: str | None = opt(None, help="residual run")
    seed: int | None = opt(None, help="seed")
    force: bool = opt(False, help="replace existing outputs")
    device: DeviceOptions = group(DeviceOptions, gpu_id=None)
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "glove_dir"))

    def argv(self) -> list[str]:
        """The flags the qualitative generation gets (the same seed, locations, device and overwrite policy)."""
        from src.config.command import to_argv

        return to_argv(dataclasses.replace(self, name=None, res_name=None))



CONFIG = UpstreamEvalConfig


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
            from src.config.command import config_parser

            config_parser(UpstreamEvalConfig, prog=PROG, doc=__doc__, raw_description=True, epilog=EPILOG).print_help()
            print("\nWithout --dataset: every flag goes to python -m src.eval.t2m_unlearn:\n")
        return t2m_unlearn.main(argv)
    from src.config.command import parse_known_config

    cfg, rest = parse_known_config(UpstreamEvalConfig, argv, prog=PROG, doc=__doc__, raw_description=True,
                                   epilog=EPILOG)
    ev, _ = parse_known_config(PassedOn, rest, prog=PROG)
    return upstream_eval(cfg, ev, rest)


def upstream_eval(cfg: UpstreamEvalConfig, ev: PassedOn, rest: Sequence[str]) -> int:
    """Upstream's wrapper: the forget/retain evaluation of what ``--ckpt`` names, then its qualitative motions."""
    from src.common.datasets import get_spec
    from src.common.paths import REPO_ROOT
    from src.common.run_names import default_run_name
    from src.eval import t2m_unlearn

    spec = get_spec(cfg.dataset)
    ext = f"{cfg.name or cfg.method}_{cfg.dataset}_{cfg.split_name}"
    paths = ev.where.paths()
    prompts = REPO_ROOT / "assets" / f"qualitatives_{cfg.dataset}.txt"
    if not cfg.no_qualitatives and not prompts.is_file():
        raise HmuError(f"qualitative prompts not found: {prompts} (write one prompt a line, or --no_qualitatives)")
    models, said = resolve_ckpt(paths, spec.name, cfg.ckpt,
                                trans=cfg.trans_name or ev.name or default_run_name(spec.name, "mask"),
                                res=cfg.res_name or ev.res_name or default_run_name(spec.name, "res"))
    print(f">>> {said}", flush=True)
    family = ["--model", "bamm"] if cfg.model_name == "bamm" else []
    model_flags = [x for kv in models.items() for x in kv]
    print(f">>> Evaluating {ext} on {cfg.dataset}/{cfg.split_name}", flush=True)
    rc = t2m_unlearn.main(["--dataset_name", spec.name, "--concept", cfg.split_name, "--method", cfg.method,
                           "--run_name", ext, *model_flags, *family, *rest])
    if rc or cfg.no_qualitatives:
        return rc
    print(f">>> Generating qualitatives on {cfg.dataset}", flush=True)
    from src.momask_codes import gen_t2m

    return gen_t2m.main(["--dataset_name", spec.name, "--run_name", ext, "--text_path", str(prompts),
                         "--repeat_times", "1", *model_flags, *(["--model_name", "bamm"] if family else []),
                         *ev.argv()])


if __name__ == "__main__":
    raise SystemExit(main())
