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
import dataclasses
from collections.abc import Sequence

from src.common.errors import HmuError, cli
from src.config.command import config_parser, group, parse_config
from src.config.flags import opt
from src.gen.__main__ import GenConfig

PROG = "python -m src.momask_codes.gen_t2m"


@dataclasses.dataclass(kw_only=True)
class GenT2MConfig:
    """Upstream's text-prompt generation: src.gen's flags, writing into generation/<run_name>/."""

    run_name: str = opt("t2m_gen", help="output folder generation/<run_name>/")
    skip_viz: bool = opt(False, action="store_true", help="no videos")
    model_name: str | None = opt(None, choices=("momask", "bamm"),
                                 help="model family of --name (checked against its opt.txt)")
    generation_dir: str | None = opt(None, help="output root (env HMU_GENERATION; default <repo>/generation)")
    gen: GenConfig = group(GenConfig, title="generation (python -m src.gen's flags)")

    def check(self) -> None:
        if self.gen.out is not None:
            raise HmuError("--out: the output folder is generation/<run_name>/ (use --run_name / --generation_dir)")


def build_parser() -> argparse.ArgumentParser:
    return config_parser(GenT2MConfig, prog=PROG, doc=__doc__)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(GenT2MConfig, argv, prog=PROG, doc=__doc__)
    from src.config.command import command_context
    from src.gen.__main__ import generate_files
    from src.methods.gen_t2m_batch import check_run_name, generation_root

    check_run_name(cfg.run_name)
    out = generation_root(cfg.generation_dir) / cfg.run_name
    gen = dataclasses.replace(cfg.gen, out=str(out), animate=cfg.gen.animate and not cfg.skip_viz)
    ctx = command_context(gen.dataset_name, gen.device, gen.where, gen.run)
    if cfg.model_name:
        from src.gen.generate import run_family
        from src.models.checkpoint import find_run_dir

        family = run_family(find_run_dir(ctx.paths, gen.dataset_name, gen.name) / "opt.txt")
        if family != cfg.model_name:
            raise HmuError(f"--model_name {cfg.model_name}: run '{gen.name}' is a {family} run")
    return generate_files(gen, ctx)


if __name__ == "__main__":
    raise SystemExit(main())
