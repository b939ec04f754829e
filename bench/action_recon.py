"""Per-action reconstruction of a trained VQ-VAE on held-out synth motions: MPJPE, highest ankle, wrist reach.

    python bench/action_recon.py --vq_name rvq_tiny [--checkpoints_dir DIR] [--dataset_dir DIR] [--split test]
                                 [--actions kick,punch,walk] [--json OUT.json]

Every motion of the split is encoded and decoded with all of the VQ's quantizer layers; each labelled action segment
(labels.json) gives one row, and the table prints each action's median over its segments: MPJPE (mm, global joints),
the highest ankle above the floor and the farthest wrist reach from the chest (m, ``src.data.action_figures``), for
the ground truth and the reconstruction. The issue-30 target: a kick's median highest ankle reconstructed within
0.1 m of the ground truth's.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vq_name", default="rvq_tiny")
    p.add_argument("--checkpoints_dir", default=None)
    p.add_argument("--dataset_dir", default=None)
    p.add_argument("--ckpt", default="net_best_fid.tar")
    p.add_argument("--split", default="test")
    p.add_argument("--actions", default="", help="comma-separated actions to print (default: all)")
    p.add_argument("--json", default=None, help="also write the table as JSON here")
    a = p.parse_args(argv)

    import numpy as np

    from src.common.paths import Paths
    from src.data.action_figures import format_table
    from src.data.synth.truth import read_labels
    from src.models.checkpoint import load_vq
    from src.train import feed
    from src.train.vq import _motions, _segments, action_reconstruction

    paths = Paths.default(checkpoints_dir=a.checkpoints_dir, dataset_dir=a.dataset_dir)
    model, cfg, run = load_vq(paths, "synth", a.vq_name, ckpt=a.ckpt)
    folder = feed.open_folder(paths, "synth")
    mean = np.load(run / "meta" / "mean.npy") if (run / "meta" / "mean.npy").is_file() else folder.mean_std()[0]
    std = np.load(run / "meta" / "std.npy") if (run / "meta" / "std.npy").is_file() else folder.mean_std()[1]
    ids, motions = _motions(folder, a.split, 40)
    summary = action_reconstruction(model, motions, _segments(read_labels(folder.root), ids), mean=mean, std=std,
                                    joints_num=22)
    keep = [x for x in a.actions.split(",") if x]
    if keep:
        summary = {k: v for k, v in summary.items() if k in keep}
    print(f"{a.vq_name} ({run}), split {a.split}, {len(motions)} motions")
    print(format_table(summary))
    if a.json:
        Path(a.json).write_text(json.dumps({"vq_name": a.vq_name, "split": a.split, "actions": summary}, indent=1)
                                + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
