"""Benchmark: generation + evaluation together, as a user waits for ``python -m src.eval``, vs an upstream-style run.

    python bench/gen_eval.py [--repeats 2] [--items 32] [--sizes default|small] [--threads 1]

One MoMask generator (VQ + masked + residual transformer at our config's default sizes, or ``--sizes small``; random
weights: speed does not depend on them) and the synth evaluator (trained if present, else random at the default
sizes, as bench/eval.py) on the first ``--items`` items of synth's forget test set.

- upstream-style: classifier-free guidance as two forwards per step (``cfg_batch=False``, upstream's
  ``forward_with_cond_scale``), and bench/eval.py's upstream-style evaluation loop (per batch of 32: captions
  vectorised token by token, ground truth and generations encoded zero-padded to 196 frames, scipy FID).
- ours: ``cfg_batch=True`` (one doubled-batch forward) and ``src.eval.loop.evaluate`` (ground truth encoded once,
  generations in one packed, length-grouped call per repeat, folded GRU input projection), cold: the
  ground-truth cache starts empty.

Printed: generation alone, evaluation alone (total minus generation, each side timing its own generate calls) and
the two together, as upstream-style / ours ratios. Torch and BLAS threads are fixed (``--threads``) for both
sides, and the sides alternate (``--rounds``, the order swapped each round) so that load on a shared machine falls
on both. MultiModality is off on both sides.
"""
from __future__ import annotations

import os
import sys


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/ itself, also under python -m bench.x
from _threads import pin_threads, threads_from_argv  # noqa: E402

if __name__ == "__main__":  # BLAS reads these at import: fix them before numpy loads
    pin_threads()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _bench_eval():
    spec = importlib.util.spec_from_file_location("bench_eval", ROOT / "bench" / "eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SMALL = {"latent_dim": 128, "n_heads": 4, "n_layers": 2, "ff_size": 256}


def build_generator(root: Path, glove: Path, *, sizes: str, motions):
    from src.config import MaskTransConfig, VQConfig
    from src.config.momask import ResTransConfig
    from src.gen.generate import MotionGenerator
    from src.models.momask import RVQVAE, MaskTransformer, ResidualTransformer
    from src.models.text_encoders import EmbeddedTextEncoder

    torch.manual_seed(0)
    mean, std = np.load(root / "Mean.npy"), np.load(root / "Std.npy")
    vq_cfg = VQConfig()
    extra = SMALL if sizes == "small" else {}
    mcfg, rcfg = MaskTransConfig(text_encoder="embedded", **extra), ResTransConfig(text_encoder="embedded", **extra)
    vq = RVQVAE(**vq_cfg.model_kwargs(input_width=len(mean)))
    vq.train()
    with torch.no_grad():  # codebooks from data (a random VQ would map everything to one code)
        x = np.stack([(m[:64] - mean) / std for m in motions if len(m) >= 64][:16]).astype(np.float32)
        vq(torch.from_numpy(x))
    mask = MaskTransformer(**mcfg.model_kwargs(vq_cfg))
    res = ResidualTransformer(**rcfg.model_kwargs(vq_cfg))
    text = EmbeddedTextEncoder(glove, dim=mcfg.clip_dim)
    return MotionGenerator(vq=vq.eval(), mask=mask.eval(), res=res.eval(), text_encoder=text, mean=mean, std=std,
                           batch_size=32)


class Timed:
    """A generate function that adds its wall time to ``seconds``."""

    def __init__(self, gen):
        self.gen, self.seconds = gen, 0.0

    def __call__(self, captions, lengths, *, generator):
        t0 = time.perf_counter()
        out = self.gen.generate(captions, lengths, generator=generator)
        self.seconds += time.perf_counter() - t0
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--items", type=int, default=32, help="first N items of the forget test set (default 32)")
    ap.add_argument("--sizes", choices=("default", "small"), default="default",
                    help="transformer sizes: our config's defaults, or small (latent 128, 2 layers)")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the two sides (default 2)")
    ap.add_argument("--concept", default="violence")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=int(threads_from_argv()),
                    help="torch and BLAS threads for BOTH sides (default: $OMP_NUM_THREADS or 1)")
    ap.add_argument("--checkpoints_dir", default=None)
    ap.add_argument("--dataset_dir", default=None)
    args = ap.parse_args()
    torch.set_num_threads(max(1, args.threads))

    from src.data.word_vectorizer import clear_cache, load_word_vectorizer
    from src.eval import cache as eval_cache
    from src.eval.loop import NO_MM, LoopOptions, evaluate
    from src.eval.sets import load_eval_set

    be = _bench_eval()
    paths, root, glove = be.synth_paths(args.checkpoints_dir, args.dataset_dir)
    if root is None:
        return 2
    forget = root / "kw_splits" / f"test-w-{args.concept}.txt"
    if not forget.is_file():
        print(f"error: {forget} not found (python -m src.data.keywords ...)", file=sys.stderr)
        return 2
    es = load_eval_set(root, forget, name="forget")
    es = replace(es, items=tuple(es.items[:args.items]))
    ev, which = be.load_or_random_evaluator(paths, root, glove)
    gen = build_generator(root, glove, sizes=args.sizes, motions=[it.motion for it in es.items])
    print(f"synth forget set: {len(es)} items; {args.repeats} repeats x {args.rounds} rounds; transformer sizes "
          f"{args.sizes}; evaluator {which}; torch threads {torch.get_num_threads()}, BLAS threads "
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}")

    tot = {"up": {"gen": 0.0, "all": 0.0}, "ours": {"gen": 0.0, "all": 0.0}}

    def run_upstream():
        gen.cfg_batch = False
        fn = Timed(gen)
        t0 = time.perf_counter()
        be.upstream_style(fn, es, ev, glove, repeats=args.repeats, seed=args.seed)
        tot["up"]["all"] += time.perf_counter() - t0
        tot["up"]["gen"] += fn.seconds

    def run_ours():
        gen.cfg_batch = True
        fn = Timed(gen)
        clear_cache()
        eval_cache.clear_memo()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            ev.words = load_word_vectorizer(glove)
            evaluate(fn, es, ev, repeats=args.repeats, seed=args.seed, mm=NO_MM,
                     run=LoopOptions(cache_dir=tmp, progress=False))
            tot["ours"]["all"] += time.perf_counter() - t0
        tot["ours"]["gen"] += fn.seconds

    for r in range(args.rounds):
        for side in ((run_upstream, run_ours) if r % 2 == 0 else (run_ours, run_upstream)):
            side()
    up, ours = tot["up"], tot["ours"]
    ue, oe = up["all"] - up["gen"], ours["all"] - ours["gen"]
    print(f"generation   upstream-style {up['gen']:8.2f} s | ours {ours['gen']:8.2f} s | x{up['gen'] / ours['gen']:.2f}")
    print(f"evaluation   upstream-style {ue:8.2f} s | ours {oe:8.2f} s | x{ue / oe:.2f}")
    print(f"together     upstream-style {up['all']:8.2f} s | ours {ours['all']:8.2f} s | x{up['all'] / ours['all']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
