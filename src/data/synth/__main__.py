"""CLI: ``python -m src.data.synth --out dataset/synth --n 3000 --seed 0 [--force]``."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from src.common.errors import cli


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m src.data.synth",
        description="Generate the embedded procedural motion dataset 'synth' in HumanML3D's layout, with action "
                    "labels, implicit-violence captions and its own word vectors.")
    ap.add_argument("--out", type=str, default=None,
                    help="output folder (default: <dataset_dir>/synth, i.e. dataset/synth or $HMU_DATASET/synth)")
    ap.add_argument("--n", type=int, default=3000, help="number of motions (default: 3000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives byte-identical files")
    ap.add_argument("--workers", type=int, default=None,
                    help="worker processes (default: CPU count, at most 8; 1 = no multiprocessing)")
    ap.add_argument("--violent_rate", type=float, default=0.125,
                    help="fraction of motions that contain a violent action (default: 0.125)")
    ap.add_argument("--force", action="store_true", help="overwrite an existing dataset folder")
    ap.add_argument("--quiet", "--no_progress", dest="quiet", action="store_true", help="no progress bar")
    return ap


@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from src.common.logging import setup_logging
    from src.common.paths import Paths

    from .generate import generate_synth

    setup_logging()
    out = args.out or Paths.default().data_root("synth")
    s = generate_synth(out, n=args.n, seed=args.seed, workers=args.workers, force=args.force,
                       violent_rate=args.violent_rate, progress=not args.quiet)
    print(f"synth: {s['n']} motions in {s['seconds']:.1f} s -> {s['out']} ({s['bytes'] / 2**20:.1f} MiB)")
    print(f"  violent motions {s['violent_motions']} ({s['violent_motions'] / s['n']:.1%}), all-implicit "
          f"{s['implicit_only_motions']}; implicit captions {s['implicit_captions']} of {s['captions']}; "
          f"keyword captions in harmless motions {s['keyword_captions_in_harmless_motions']}")
    print(f"  frames {s['frames_min']}..{s['frames_max']} (mean {s['frames_mean']}); vocabulary {s['vocabulary']} "
          f"words; splits {s['splits']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
