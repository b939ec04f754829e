"""LCR speed: code counting + selection + codebook replacement + save, ours vs an upstream-style baseline.

Sizes as released: RVQ with 6 codebooks of 512 x 512 (rvq_nq6_dc512_nc512), code arrays of upstream's size
(24,844 train_val motions x 20 repeats = 496,880 rows of 49 base-layer codes, random ints). Both run in this process
on the same arrays; the baseline is written here after upstream's ``count_codes`` (per-row ``np.unique``),
``topk_codes`` and the replacement block of ``main`` (Mamiglia/hmu ``src/methods/lcr.py``).

    python -m bench.lcr [--rows 24844] [--repeats 20] [--forget_frac 0.05] [--part all|select|collect]

Code collection (``--part collect``): src.methods.collect (each motion encoded once per crop, batched by length) against
an upstream-style loop written here after Mamiglia/hmu ``collect_codes`` (one caption line at a time, batch of one,
padded to 196 frames, repeated ``--repeats`` times), on ``--collect_motions`` synth motions (``--dataset_dir`` or a
small synth generated in a temporary folder) with the released VQ sizes (random weights). The baseline is linear in
repeats, so it is timed for ``--baseline_repeats`` and scaled; both are extrapolated to HumanML3D train_val (24,844).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def build_vq(*, num_quantizers: int, nb_code: int, code_dim: int, seed: int):
    """The released RVQ-VAE configuration if src.models.momask is importable, else a stand-in with only codebooks."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    try:
        from src.models.momask.vq import RVQVAE

        vq = RVQVAE(input_width=263, nb_code=nb_code, code_dim=code_dim, down_t=2, stride_t=2, width=512, depth=3,
                    dilation_growth_rate=3, activation="relu", norm=None, num_quantizers=num_quantizers)
        kind = "RVQVAE (src.models.momask.vq)"
    except ImportError:
        vq = nn.Module()
        vq.quantizer = nn.Module()
        vq.quantizer.layers = nn.ModuleList()
        for _ in range(num_quantizers):
            layer = nn.Module()
            layer.register_buffer("codebook", torch.zeros(nb_code, code_dim))
            vq.quantizer.layers.append(layer)
        kind = "stand-in (codebooks only)"
    with torch.no_grad():
        for layer in vq.quantizer.layers:
            layer.codebook.copy_(torch.randn(nb_code, code_dim, generator=g))
    return vq.eval(), kind


# ---------------------------------------------------------------- upstream-style baseline (for comparison only)

def upstream_count_codes(codes, nb_code):
    import numpy as np

    return np.bincount(np.concatenate([np.unique(c) for c in codes]), minlength=nb_code)


def upstream_topk_codes(kick, rest, k):
    import numpy as np

    freqs = kick / (rest + 1e-8)
    ratios = (kick / (kick.sum() + 1e-8)) / (rest / (rest.sum() + 1e-8) + 1e-8)
    return np.unique(np.concatenate([np.argsort(-freqs)[:k], np.argsort(-ratios)[:k]])).tolist()


def upstream_replace(net, censor_codes, *, dest_code_idx=0, alpha=1.0):
    import numpy as np
    import torch

    target_code_idx = dest_code_idx
    while target_code_idx in censor_codes[0]:
        target_code_idx = np.random.randint(net.quantizer.layers[0].codebook.shape[0])
    codebooks = torch.stack([l.codebook for l in net.quantizer.layers])
    target_code = codebooks[:, target_code_idx].clone()
    std = codebooks.std(dim=(1, 2))
    for i, codes in enumerate(censor_codes):
        codebook = net.quantizer.layers[i].codebook.clone()
        codebook[codes] = target_code[i]
        codebook[codes] += torch.randn_like(codebook[codes]) * std[i] * alpha
        net.quantizer.layers[i].codebook = codebook


# ---------------------------------------------------------------- runs

def run_ours(vq, codes, forget, *, nb_code, k, rule, out: Path):
    import torch

    from src.common.io import atomic_torch_save
    from src.methods.lcr.edit import count_codes, lcr_checkpoint, replace_codes, select_codes

    t = {}
    c0 = time.process_time()
    t0 = time.perf_counter()
    fc = count_codes(codes[forget], nb_code=nb_code)
    rc = count_codes(codes, nb_code=nb_code) - fc  # all rows minus forget rows: no copy of the large retain block
    t["count"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    sel = select_codes(fc, rc, rule=rule, k=k, n_forget=int(forget.sum()), n_retain=int((~forget).sum()))
    if sel.size == 0:  # random codes carry no concept: fall back to upstream's rule so the edit still runs
        sel = select_codes(fc, rc, rule="upstream", k=k)
    t["select"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    new = replace_codes(vq, {0: sel.tolist()}, generator=torch.Generator().manual_seed(0))
    t["replace"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    atomic_torch_save(lcr_checkpoint(new, {0: sel.tolist()}, select=rule, code_prune=k), out)  # temp + fsync + rename
    t["save"] = time.perf_counter() - t3
    t["total"] = time.perf_counter() - t0
    t["cpu"] = time.process_time() - c0
    return t, sel


def run_upstream(vq, codes, forget, *, nb_code, k, out: Path):
    import copy

    import torch

    t = {}
    c0 = time.process_time()
    t0 = time.perf_counter()
    kick = upstream_count_codes(codes[forget], nb_code)
    rest = upstream_count_codes(codes[~forget], nb_code)
    t["count"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    censor = [upstream_topk_codes(kick, rest, k)]
    t["select"] = time.perf_counter() - t1
    c_copy = time.process_time()
    net = copy.deepcopy(vq)  # upstream edits its freshly loaded model in place (no copy is timed for it)
    c_copy = time.process_time() - c_copy
    t2 = time.perf_counter()
    upstream_replace(net, censor)
    t["replace"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    torch.save({"ep": -1, "vq_model": net.state_dict(), "removed_codes": censor}, out)
    t["save"] = time.perf_counter() - t3
    t["total"] = sum(t.values())
    t["cpu"] = time.process_time() - c0 - c_copy
    return t, censor[0]


# ---------------------------------------------------------------- code collection

def upstream_collect(vq, motions, captions_per_motion, *, repeats: int, max_len: int = 196, unit: int = 4, seed=0):
    """Upstream-style: per repeat, per motion, per caption line: random crop, pad to max_len, encode one sample."""
    import numpy as np
    import torch

    rng = np.random.RandomState(seed)
    rows = []
    with torch.no_grad():
        for _ in range(repeats):
            for m, n_caps in zip(motions, captions_per_motion):
                for _ in range(n_caps):
                    length = min(len(m), max_len) // unit * unit
                    if rng.choice(["single", "single", "double"]) == "double":
                        length -= unit
                    start = rng.randint(0, len(m) - length + 1)
                    x = np.zeros((max_len, m.shape[1]), np.float32)
                    x[:length] = m[start:start + length]
                    codes, _ = vq.encode(torch.from_numpy(x)[None])
                    rows.append(codes[0].numpy())
    return rows


class _ListFolder:
    """Motions already in memory, behind the two HumanML3DFolder methods collect_codes uses."""

    def __init__(self, folder, ids):
        self.ids = ids
        self._m = {i: folder.motion(i) for i in ids}
        self._c = {i: folder.captions(i) for i in ids}
        self.root = folder.root
        self._folder = folder

    def motion(self, mid):
        return self._m[mid]

    def captions(self, mid):
        return self._c[mid]

    def motion_path(self, mid):
        return self._folder.motion_path(mid)


def bench_collect(args) -> None:
    import torch

    from src.data.humanml3d import HumanML3DFolder
    from src.methods.collect import CropSettings, collect_codes

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.dataset_dir) / "synth" if args.dataset_dir else None
        if root is None or not root.is_dir():
            from src.data.synth import generate_synth

            root = Path(tmp) / "synth"
            generate_synth(root, n=max(args.collect_motions * 100 // 85, 20), seed=args.seed, workers=1)
        folder = HumanML3DFolder(root, "synth")
        ids = folder.ids("train_val" if (root / "train_val.txt").is_file() else "all")[:args.collect_motions]
        mem = _ListFolder(folder, ids)  # both sides read from memory: the encoding is what is compared
        mean, std = folder.mean_std()
        motions = [(mem.motion(i) - mean) / std for i in ids]
        caps = [len(mem.captions(i)) for i in ids]
        vq, kind = build_vq(num_quantizers=args.num_quantizers, nb_code=args.nb_code, code_dim=args.code_dim,
                            seed=args.seed)
        print(f"\ncode collection: {len(ids)} synth motions ({sum(caps)} caption lines, frames "
              f"{min(map(len, motions))}..{max(map(len, motions))}), VQ {kind}, {torch.get_num_threads()} threads")
        upstream_collect(vq, motions[:4], caps[:4], repeats=1)  # warm-up
        t0 = time.perf_counter()
        upstream_collect(vq, motions, caps, repeats=args.baseline_repeats, seed=args.seed)
        base_one = (time.perf_counter() - t0) / args.baseline_repeats  # one repeat over every caption line
        res = {}
        for label, settings in (("default (1 crop, whole motion)", CropSettings(seed=args.seed)),
                                (f"upstream ({args.repeats} crops, per caption)",
                                 CropSettings.upstream(seed=args.seed, n_crops=args.repeats))):
            t0 = time.perf_counter()
            table, _ = collect_codes(vq, mem, ids, mean=mean, std=std, settings=settings, batch_size=args.batch_size)
            res[label] = (time.perf_counter() - t0, table.num_rows)
        with tempfile.TemporaryDirectory() as cache:
            collect_codes(vq, mem, ids, mean=mean, std=std, batch_size=args.batch_size, cache_dir=cache)
            t0 = time.perf_counter()
            _, hit = collect_codes(vq, mem, ids, mean=mean, std=std, batch_size=args.batch_size, cache_dir=cache)
            t_hit = time.perf_counter() - t0
    base = base_one * args.repeats
    scale = 24844 / len(ids)
    print(f"upstream-style: {base_one:.2f}s per repeat ({1000 * base_one / sum(caps):.1f} ms per caption line), "
          f"x{args.repeats} repeats = {base:.1f}s (timed {args.baseline_repeats} repeat(s), scaled)")
    print(f"{'ours':<36}{'time':>9}{'rows':>8}{'vs upstream-style':>19}{'train_val est.':>16}  target")
    for (label, (t, n)), target in zip(res.items(), (20, 3)):
        print(f"{label:<36}{t:>8.2f}s{n:>8}{base / t:>18.1f}x{t * scale / 60:>14.1f}min  >= {target}x "
              f"{'met' if base / t >= target else 'NOT met'}")
    print(f"upstream-style on train_val (24,844 motions): {base * scale / 3600:.2f} h; cached re-run: {t_hit:.3f}s "
          f"(hit={hit})")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=24844, help="motions (train_val of HumanML3D: 24,844)")
    p.add_argument("--repeats", type=int, default=20, help="random crops per motion (upstream lcr.sh: 20)")
    p.add_argument("--seq_len", type=int, default=49, help="base-layer codes per row")
    p.add_argument("--nb_code", type=int, default=512)
    p.add_argument("--code_dim", type=int, default=512)
    p.add_argument("--num_quantizers", type=int, default=6)
    p.add_argument("--code_prune", type=int, default=16)
    p.add_argument("--select", choices=["ratio", "upstream"], default="ratio", help="our selection rule to time")
    p.add_argument("--forget_frac", type=float, default=0.05, help="share of rows in the forget set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=3, help="timed runs per side (medians are printed)")
    p.add_argument("--part", choices=("all", "select", "collect"), default="all", help="which benchmark to run")
    p.add_argument("--collect_motions", type=int, default=200, help="motions for the collection benchmark")
    p.add_argument("--baseline_repeats", type=int, default=1, help="repeats actually timed for the baseline")
    p.add_argument("--batch_size", type=int, default=256, help="our encoder batch size")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for the collection benchmark")
    p.add_argument("--dataset_dir", default=None, help="folder holding synth/ (default: generate a small one)")
    args = p.parse_args(argv)
    if args.part in ("all", "collect"):
        bench_collect(args)
    if args.part == "collect":
        return 0

    import numpy as np

    rng = np.random.default_rng(args.seed)
    n = args.rows * args.repeats
    codes = rng.integers(0, args.nb_code, (n, args.seq_len))
    forget = np.repeat(rng.random(args.rows) < args.forget_frac, args.repeats)  # all crops of a motion together
    vq, kind = build_vq(num_quantizers=args.num_quantizers, nb_code=args.nb_code, code_dim=args.code_dim,
                        seed=args.seed)
    print(f"codes {codes.shape} ({forget.sum()} forget rows), VQ: {kind}, "
          f"{args.num_quantizers}x{args.nb_code}x{args.code_dim} codebooks")
    runs_ours, runs_base, runs_up = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up of our path on a small slice (imports, allocator), then alternating timed runs
        run_ours(vq, codes[:1000], forget[:1000] | (np.arange(1000) < 50), nb_code=args.nb_code, k=args.code_prune,
                 rule=args.select, out=Path(tmp) / "warm.tar")
        for r in range(args.runs):
            t, sel = run_ours(vq, codes, forget, nb_code=args.nb_code, k=args.code_prune, rule=args.select,
                              out=Path(tmp) / f"ours{r}.tar")
            runs_ours.append(t)
            t, censor = run_upstream(vq, codes, forget, nb_code=args.nb_code, k=args.code_prune,
                                     out=Path(tmp) / f"upstream{r}.tar")
            runs_base.append(t)
            if args.select != "upstream":  # our implementation of upstream's rule: same codes as the baseline
                t, sel_up = run_ours(vq, codes, forget, nb_code=args.nb_code, k=args.code_prune, rule="upstream",
                                     out=Path(tmp) / f"ours_up{r}.tar")
                assert sorted(sel_up.tolist()) == sorted(censor), "our upstream rule must match the baseline"
                runs_up.append(t)
        size = (Path(tmp) / "ours0.tar").stat().st_size / 2**20

    def median(runs):
        return {k: float(np.median([t[k] for t in runs])) for k in runs[0]}

    ours, base = median(runs_ours), median(runs_base)
    ours_up = median(runs_up) if runs_up else None
    print(f"median of {args.runs} runs; ours saves atomically (temp file + fsync + rename), upstream plain torch.save")
    print(f"{'step':<14}{'upstream-style':>16}{'ours':>10}{'ratio':>9}")
    for key in ("count", "select", "replace", "save", "total"):
        print(f"{key:<14}{base[key]:>15.3f}s{ours[key]:>9.3f}s{base[key] / max(ours[key], 1e-9):>8.1f}x")
    cs_base, cs_ours = base["count"] + base["select"], ours["count"] + ours["select"]
    print(f"{'count+select':<14}{cs_base:>15.3f}s{cs_ours:>9.3f}s{cs_base / cs_ours:>8.1f}x")
    # On a shared machine wall time includes waiting for a core; process CPU time does not (it excludes the
    # fsync wait too), so it is what one uncontended core would take.
    print(f"{'total CPU':<14}{base['cpu']:>15.3f}s{ours['cpu']:>9.3f}s{base['cpu'] / ours['cpu']:>8.1f}x"
          f"   (process CPU time; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if ours_up is not None:
        print(f"ours with --select upstream: total {ours_up['total']:.3f}s "
              f"({base['total'] / ours_up['total']:.1f}x), same codes as the baseline")
    def verdict(b, o):
        return "met" if o < 0.5 and b / o >= 10 else "NOT met"

    print(f"selected ({args.select}): {len(sel)} codes; checkpoint {size:.1f} MiB; target: ours < 0.5 s total and "
          f">= 10x -> wall {verdict(base['total'], ours['total'])}, CPU {verdict(base['cpu'], ours['cpu'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
