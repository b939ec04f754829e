"""``python -m src.momask_codes.gen_t2m``: upstream's text-prompt generation, a thin alias of ``python -m src.gen``
that writes into ``generation/<run_name>/`` and renders one video per motion.

    python -m src.momask_codes.gen_t2m --dataset_name synth --name t2m_tiny --res_name tres_tiny \\
        --run_name qualitative --text_path assets/qualitatives_synth.txt --repeat_times 3

Output: what ``src.gen`` writes, in ``generation/<run_name>/``: ``{features,joints}/p<k>_r<r>.npy``,
``videos/p<k>_r<r>.mp4`` (``--skip_viz``: none) and ``prompts.json``. Flags of this alias: ``--run_name``,
``--skip_viz``, ``--model_name`` (checked against the run's opt.txt), ``--generation_dir``; every other flag is
``src.gen``'s (see ``python -m src.gen --help``), e.g. ``--ckpt base.tar``, ``--seed``, ``--force``.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from src.config.flags import HelpFormatter
from src.common.errors import HmuError, cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m src.momask_codes.gen_t2m", description=__doc__.split("\n")[0],
                                epilog="Every other flag goes to python -m src.gen (see its --help).",
                                formatter_class=HelpFormatter)
    p.add_argument("--run_name", default="t2m_gen", help="output folder generation/<run_name>/")
    p.add_argument("--skip_viz", action="store_true", help="no videos")
    p.add_argument("--model_name", choices=("momask", "bamm"), default=None,
                   help="model family of --name (checked against its opt.txt)")
    p.add_argument("--generation_dir", default=None, help="output root (env HMU_GENERATION; default <repo>/generation)")
    return p


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    if "-h" in rest or "--help" in rest:
        build_parser().print_help()
        return 0
    if "--out" in rest or any(a.startswith("--out=") for a in rest):
        raise HmuError("--out: the output folder is generation/<run_name>/ (use --run_name / --generation_dir)")
    from src.methods.gen_t2m_batch import check_run_name, generation_root

    check_run_name(args.run_name)
    out = generation_root(args.generation_dir) / args.run_name
    import src.gen.__main__ as gen
    from src.gen.generate import run_family

    gen_args = gen.build_parser().parse_args(rest)  # flag errors before any work
    if args.model_name:
        from src.common.paths import Paths
        from src.models.checkpoint import find_run_dir

        paths = Paths.default(checkpoints_dir=gen_args.checkpoints_dir, dataset_dir=gen_args.dataset_dir)
        family = run_family(find_run_dir(paths, gen_args.dataset_name, gen_args.name) / "opt.txt")
        if family != args.model_name:
            raise HmuError(f"--model_name {args.model_name}: run '{gen_args.name}' is a {family} run")
    return gen.main([*rest, "--out", str(out), *(["--no_animate"] if args.skip_viz else [])])


if __name__ == "__main__":
    raise SystemExit(main())
