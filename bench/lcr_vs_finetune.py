"""LCR wall time / fine-tuning wall time on synth (target <= 1/100), both through their CLIs, in this process.

    python -m bench.lcr_vs_finetune [--dataset_dir DIR] [--checkpoints_dir DIR --vq_name V --trans_name M]

Without trained runs, runs of the ``tiny`` preset's sizes with random weights are written to a temporary folder
(timing does not depend on the weights). With ``--checkpoints_dir`` (e.g. the quickstart's ``rvq_tiny``/``t2m_tiny``)
the two runs are COPIED into a temporary folder first, so the benchmark's outputs never land beside the originals. LCR: collection (uncached, then cached) + selection + replacement + save of
a new run, with the CLI's default selection. Fine-tuning: the masked transformer on the retain split, ``--ft_epochs``
epochs (default 5, the CLI's default); ``--timed_epochs`` of them (default: all) are run, and the time is scaled
linearly when fewer are (each epoch does the same work).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def tiny_runs(ck: Path, data_root: Path) -> tuple[str, str]:
    """Random-weight VQ + masked transformer at the tiny preset's sizes, saved as runs under ``ck/synth``."""
    import numpy as np
    import torch

    from src.config import MaskTransConfig, VQConfig
    from src.models.checkpoint import save_checkpoint
    from src.models.momask import build_mask_transformer, build_vq
    from src.train.presets import preset_values

    vq_kw = {k: v for k, v in preset_values("tiny", "vq").items() if k in VQConfig.typed_fields()}
    vq_cfg = VQConfig(name="rvq_bench", dataset_name="synth", **vq_kw)
    vq = build_vq(vq_cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in vq.quantizer.layers:
            layer.codebook.copy_(torch.randn(layer.codebook.shape, generator=g))
    d = ck / "synth" / "rvq_bench"
    (d / "meta").mkdir(parents=True)
    vq_cfg.save(d / "opt.txt")
    np.save(d / "meta" / "mean.npy", np.load(data_root / "Mean.npy"))
    np.save(d / "meta" / "std.npy", np.load(data_root / "Std.npy"))
    save_checkpoint(d / "model" / "net_best_fid.tar", kind="vq", model=vq, epoch=0)
    m_kw = {k: v for k, v in preset_values("tiny", "mask").items() if k in MaskTransConfig.typed_fields()}
    m_cfg = MaskTransConfig(name="mtrans_bench", dataset_name="synth", vq_name="rvq_bench", **m_kw)
    md = ck / "synth" / "mtrans_bench"
    (md / "model").mkdir(parents=True)
    m_cfg.save(md / "opt.txt")
    save_checkpoint(md / "model" / "net_best_fid.tar", kind="mask", model=build_mask_transformer(m_cfg, vq_cfg),
                    epoch=0)
    return "rvq_bench", "mtrans_bench"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset_dir", default=None, help="folder holding synth/ with kw_splits (default HMU_DATASET)")
    p.add_argument("--checkpoints_dir", default=None, help="runs to use (default: random tiny runs in a temp dir)")
    p.add_argument("--vq_name", default=None)
    p.add_argument("--trans_name", default=None)
    p.add_argument("--concept", default="violence")
    p.add_argument("--ft_epochs", type=int, default=5, help="fine-tuning epochs the comparison assumes")
    p.add_argument("--timed_epochs", type=int, default=None, help="fine-tuning epochs actually run (default all)")
    args = p.parse_args(argv)
    if args.checkpoints_dir and not (args.vq_name and args.trans_name):
        p.error("--checkpoints_dir needs --vq_name and --trans_name")
    args.timed_epochs = args.timed_epochs or args.ft_epochs

    from src.common.paths import Paths
    from src.methods import finetune
    from src.methods.lcr.__main__ import main as lcr_main

    paths = Paths.default(dataset_dir=args.dataset_dir)
    data = paths.data_root("synth")
    if not (data / "kw_splits").is_dir():
        print(f"needs {data}/kw_splits (python -m src.data.synth; python -m src.data.split synth {args.concept})")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        import shutil

        ck = Path(tmp) / "checkpoints"
        vq_name, trans_name = args.vq_name, args.trans_name
        if args.checkpoints_dir:
            for run in (vq_name, trans_name):
                shutil.copytree(Path(args.checkpoints_dir) / "synth" / run, ck / "synth" / run)
        else:
            vq_name, trans_name = tiny_runs(ck, data)
        common = ["--dataset_name", "synth", "--concept", args.concept, "--checkpoints_dir", str(ck),
                  "--dataset_dir", str(paths.dataset_dir)]
        lcr_argv = [*common, "--vq_name", vq_name, "--cache_dir", str(Path(tmp) / "cache"),
                    "--no_progress", "--force"]
        import torch  # noqa: F401 - imported before timing: the first import (~1.5 s) is neither method's cost

        times = []
        for i in range(2):  # uncached, then cached
            t0 = time.perf_counter()
            assert lcr_main([*lcr_argv, "--name", f"bench_lcr{i}"]) == 0
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert finetune.main([*common, "--trans_name", trans_name, "--name", "bench_ft", "--max_epoch",
                              str(args.timed_epochs), "--no_progress", "--force"]) == 0
        ft = (time.perf_counter() - t0) * args.ft_epochs / args.timed_epochs
    print(f"\nruns: {vq_name}, {trans_name} ({args.checkpoints_dir or 'random weights, tiny preset'})")
    print(f"LCR (new run, collection uncached): {times[0]:.2f}s; with the code cache: {times[1]:.2f}s")
    print(f"fine-tuning the masked transformer, {args.ft_epochs} epochs on the retain split: {ft:.1f}s "
          f"(timed {args.timed_epochs}, scaled)")
    for label, t in (("uncached", times[0]), ("cached", times[1])):
        r = t / ft
        print(f"LCR/fine-tuning ({label}): {r:.4f} = 1/{1 / r:.0f}  target <= 1/100 -> {'met' if r <= 0.01 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
