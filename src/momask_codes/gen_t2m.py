"""``python -m src.momask_codes.gen_t2m``: upstream's text-prompt generation under its own name; the same command as
``python -m src.gen`` (same flags, same output layout), plus upstream HMU's spellings.

    python -m src.momask_codes.gen_t2m --dataset_name synth --name t2m_tiny --res_name tres_tiny \\
        --ext exp1 --text_path prompts.txt --repeat_times 3

Output (MoMask's ``./generation/<ext>/``): ``joints/<k>/sample<k>_repeat<r>_len<L>.npy``, ``features/<k>/...npy``,
``animations/<k>/...mp4`` (``--skip_viz``: none), with ``--bvh`` ``animations/<k>/...bvh``, and ``prompts.json``;
see ``python -m src.gen --help``. Prompt files take MoMask's lines: ``text``, ``text#frames``, ``text#NA``. Flags of
this alias: ``--run_name`` (upstream HMU's name for ``--ext``), ``--skip_viz``, ``--model_name`` (checked against
the run's opt.txt).
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
    """Upstream's text-prompt generation: src.gen's flags and layout, writing into generation/<ext>/."""

    run_name: str | None = opt(None, help="upstream HMU's name for --ext: output folder generation/<run_name>/")
    skip_viz: bool = opt(False, action="store_true", help="no videos")
    model_name: str | None = opt(None, choices=("momask", "bamm"),
                                 help="model family of --name (checked against its opt.txt)")
    gen: GenConfig = group(GenConfig, title="generation (python -m src.gen's flags)")

    def check(self) -> None:
        ext_default = GenConfig.__dataclass_fields__["ext"].default
        if self.run_name is not None and self.gen.ext not in (ext_default, self.run_name):
            raise HmuError(f"--run_name {self.run_name} and --ext {self.gen.ext} name two folders; give one")

    def resolved(self) -> GenConfig:
        """src.gen's config: --run_name as --ext, --skip_viz as --no_animate."""
        return dataclasses.replace(self.gen, ext=self.run_name if self.run_name is not None else self.gen.ext,
                                   animate=self.gen.animate and not self.skip_viz)


def build_parser() -> argparse.ArgumentParser:
    return config_parser(GenT2MConfig, prog=PROG, doc=__doc__)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(GenT2MConfig, argv, prog=PROG, doc=__doc__)
    from src.config.command import command_context
    from src.gen.__main__ import generate_files

    gen = cfg.resolved()
    gen.check()
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
