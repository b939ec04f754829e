"""Benchmark: our evaluation loop vs an upstream-style loop, 20 repeats on synth's forget and retain test sets.

    python bench/eval.py [--repeats 20] [--concept violence]

Both sides use the same evaluator, the same data and the same fake generator (ground truth + Gaussian noise, so the
generation cost is negligible and equal). The upstream-style loop does what hmu's ``eval_t2m_unlearn`` does: per repeat, load the
word vectors, vectorise every caption token by token (the dataset's ``__getitem__``),
re-encode the ground-truth motions (zero-padded to 196 frames) and captions in batches of 32, encode the generated
motions the same way, and compute FID with scipy's ``sqrtm``. Ours encodes the ground truth once (cache; cold = first
call of the process including that encoding and the vocabulary load), the generated motions with the movement
convolutions once per distinct length and one packed GRU pass, and FID from the cached ground-truth statistics via
``eigvalsh``. MultiModality and MM-Safe are off on both sides.

Timing under load: both sides run with the same torch and BLAS thread count (``--threads``, default 1), and the two sides
alternate set by set (upstream first on the forget set, ours first on the retain set) so that a change of machine load
during the run falls on both.

Evaluator: ``checkpoints/synth/text_mot_match`` when trained, else a random one at the same default sizes (speed does
not depend on the weights). Keyword splits: ``kw_splits/test-{w,wo}-<concept>.txt`` when present, else computed here.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/ itself, also under python -m bench.x
from _threads import pin_threads, threads_from_argv  # noqa: E402

if __name__ == "__main__":  # numpy's BLAS reads these at import: the same thread count as torch, on both sides
    pin_threads()

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.common.paths import Paths
from src.data.word_vectorizer import clear_cache, load_word_vectorizer
from src.eval import cache as eval_cache
from src.eval.loop import NO_MM, LoopOptions, evaluate
from src.eval.sets import load_eval_set
from src.metrics import t2m as M
from src.models.evaluator import Evaluator, EvaluatorConfig
from src.models.t2m_evaluator import T2MEvaluator


def fake_generator(eval_sets, scale: float = 0.1):
    """Caption -> the ground-truth motion of an item with that caption, cropped/padded to the length, + noise."""
    by_text = {}
    for es in eval_sets:
        for it in es.items:
            for c in it.captions:
                by_text.setdefault(c.text, it.motion)

    def generate(captions, lengths, *, generator):
        out = []
        for c, n in zip(captions, lengths):
            m = torch.as_tensor(by_text[c])
            m = m[:n] if len(m) >= n else torch.cat([m, m[-1:].expand(n - len(m), -1)])
            out.append((m + scale * torch.randn(m.shape, generator=generator)).numpy())
        return out
    return generate


def upstream_style(generate, es, ev: T2MEvaluator, glove: Path, *, repeats: int, seed: int) -> list[dict]:
    """hmu-style: per repeat, vocabulary reload, per-token vectorising, GT re-encoded in batches of 32 (drop_last).

    As Mamiglia/hmu ``src/eval/t2m_unlearn.py`` + ``eval_fn_t2m.py``: the loader (built once per command) yields
    batches of 32; for each, the generated motions go through ``get_motion_embeddings`` and the ground truth through
    ``get_co_embeddings`` (text and motion), every repeat.
    """
    model, cfg = ev.model, ev.model.config
    out = []
    clear_cache()
    for r in range(repeats):
        # hmu's eval_t2m_unlearn (called once per repeat) builds its WordVectorizer each time
        words = load_word_vectorizer(glove, cache=False)
        rng = np.random.default_rng([seed, r])
        perm = rng.permutation(len(es.items))
        gt_m, pred_m, text_e = [], [], []
        hits, n = np.zeros(3), 0
        for s in range(0, len(perm) - 31, 32):                     # DataLoader(batch_size=32, drop_last=True)
            rows = []
            for i in perm[s:s + 32]:                               # Dataset.__getitem__
                it = es.items[i]
                cap = it.captions[int(rng.integers(len(it.captions)))]
                from src.data.word_vectorizer import wrap_caption
                toks, sent_len = wrap_caption(cap.tokens, max_text_len=cfg.max_text_len)
                pos, we = [], []
                for t in toks:
                    v, p = words[t]
                    we.append(v[None, :])
                    pos.append(p[None, :])
                motion = np.zeros((cfg.max_motion_length, cfg.dim_pose), np.float32)
                motion[:it.length] = (it.motion - ev.mean) / ev.std
                rows.append((np.concatenate(we), np.concatenate(pos), sent_len, cap.text, motion, it.length))
            rows.sort(key=lambda x: x[2], reverse=True)            # collate_fn sorts by caption length
            we = torch.as_tensor(np.stack([x[0] for x in rows])).float()
            pos = torch.as_tensor(np.stack([x[1] for x in rows])).float()
            cl = torch.as_tensor([x[2] for x in rows])
            mot = torch.as_tensor(np.stack([x[4] for x in rows]))
            ml = torch.as_tensor([x[5] for x in rows])
            et, em, order = model.get_co_embeddings(we, pos, cl, mot, ml)
            gen = generate([rows[i][3] for i in order], [int(ml[i]) for i in order], generator=torch.Generator())
            gm = np.zeros((len(gen), cfg.max_motion_length, cfg.dim_pose), np.float32)
            for i, g in enumerate(gen):
                gm[i, :len(g)] = (g - ev.mean) / ev.std
            em_pred = model.encode_motion(gm, ml[order])
            et, em, em_pred = et.numpy(), em.numpy(), em_pred.numpy()
            hits += M.r_precision_counts(et, em_pred, 3)
            n += len(et)
            gt_m.append(em)
            pred_m.append(em_pred)
            text_e.append(et)
        gt, pred, te = np.concatenate(gt_m), np.concatenate(pred_m), np.concatenate(text_e)
        out.append({"FID": M.fid(gt, pred), "Diversity": M.diversity(pred, min(300, len(pred)), rng=rng),
                    "R_precision": hits / n, "MM_Dist": M.matching_score(te, pred)})
    return out


def load_or_random_evaluator(paths: Paths, root: Path, glove: Path) -> tuple[T2MEvaluator, str]:
    """synth's trained evaluator, else a random one at the default trained sizes (speed does not depend on weights)."""
    try:
        return (T2MEvaluator.load(checkpoints_dir=paths.checkpoints_dir, dataset_name="synth", glove_dir=glove),
                "trained")
    except Exception:  # noqa: BLE001 - no trained evaluator: same sizes, random weights
        torch.manual_seed(0)
        words = load_word_vectorizer(glove)
        cfg = EvaluatorConfig.for_dataset("synth", dim_word=words.dim_word, dim_text_hidden=128, dim_coemb_hidden=128,
                                          dim_motion_hidden=256, dim_movement_enc_hidden=128, dim_movement_latent=128)
        mean, std = np.load(root / "Mean.npy"), np.load(root / "Std.npy")
        return T2MEvaluator(model=Evaluator(cfg), mean=mean, std=std, words=words), "random (default trained sizes)"


def synth_paths(checkpoints_dir: str | None, dataset_dir: str | None) -> tuple[Paths, Path | None, Path | None]:
    """-> (paths, the synth dataset root, its word vectors); root and vectors None (after an error line on stderr)
    when the dataset is not there."""
    paths = Paths.default(checkpoints_dir=checkpoints_dir, dataset_dir=dataset_dir)
    root = paths.data_root("synth")
    if not (root / "test.txt").is_file():
        print(f"error: synth not found at {root} (python -m src.data.synth)", file=sys.stderr)
        return paths, None, None
    return paths, root, paths.glove("synth")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--concept", default="violence")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=int(threads_from_argv()),
                    help="torch intra-op and BLAS threads for BOTH sides (default: $OMP_NUM_THREADS or 1)")
    ap.add_argument("--checkpoints_dir", default=None, help="checkpoints root (default ./checkpoints)")
    ap.add_argument("--dataset_dir", default=None, help="datasets root (default ./dataset)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, args.threads))
    paths, root, glove = synth_paths(args.checkpoints_dir, args.dataset_dir)
    if root is None:
        return 2
    kw = root / "kw_splits"
    forget_p, retain_p = kw / f"test-w-{args.concept}.txt", kw / f"test-wo-{args.concept}.txt"
    if forget_p.is_file() and retain_p.is_file():
        splits = {"forget": forget_p, "retain": retain_p}
    else:
        from src.data.humanml3d import read_split as read_id_list
        from src.data.keywords import forget_keywords, keyword_split

        ks = keyword_split(read_id_list(root / "test.txt"), root / "texts", forget_keywords("synth", args.concept))
        splits = {"forget": ks.forget, "retain": ks.retain}
    sets = {k: load_eval_set(root, v, name=k) for k, v in splits.items()}
    ev, which = load_or_random_evaluator(paths, root, glove)
    fake = fake_generator(sets.values())
    t_gen = {"up": 0.0, "ours": 0.0}
    side = ["up"]

    def gen(captions, lengths, *, generator):  # timed: "evaluation alone" leaves the (equal) generation cost out
        t0 = time.perf_counter()
        out = fake(captions, lengths, generator=generator)
        t_gen[side[0]] += time.perf_counter() - t0
        return out
    print(f"synth test sets: forget {len(sets['forget'])} items, retain {len(sets['retain'])} items; "
          f"{args.repeats} repeats; evaluator {which}; torch threads {torch.get_num_threads()}")

    def run_upstream(name):
        side[0] = "up"
        t0 = time.perf_counter()
        upstream_style(gen, sets[name], ev, glove, repeats=args.repeats, seed=args.seed)
        return time.perf_counter() - t0

    def run_ours(name, tmp):
        side[0] = "ours"
        t0 = time.perf_counter()
        if name not in t_cold:  # cold: vocabulary load and ground-truth encoding included
            ev.words = load_word_vectorizer(glove)
        evaluate(gen, sets[name], ev, repeats=args.repeats, seed=args.seed, mm=NO_MM,
                 run=LoopOptions(cache_dir=tmp, progress=False))
        return time.perf_counter() - t0

    t_up, t_cold, t_warm = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        clear_cache()
        eval_cache.clear_memo()
        for i, name in enumerate(sets):          # alternate which side goes first
            if i % 2 == 0:
                t_up[name] = run_upstream(name)
                t_cold[name] = run_ours(name, tmp)
                t_warm[name] = run_ours(name, tmp)
            else:
                t_cold[name] = run_ours(name, tmp)
                t_warm[name] = run_ours(name, tmp)
                t_up[name] = run_upstream(name)

    for name in sets:
        print(f"{name:<7} upstream-style {t_up[name]:7.2f} s | ours cold {t_cold[name]:6.2f} s "
              f"(x{t_up[name] / t_cold[name]:.1f}) | ours cached {t_warm[name]:6.2f} s "
              f"(x{t_up[name] / t_warm[name]:.1f})")
    up, cold, warm = sum(t_up.values()), sum(t_cold.values()), sum(t_warm.values())
    print(f"total   upstream-style {up:7.2f} s | ours cold {cold:6.2f} s | ours cached {warm:6.2f} s")
    print(f"ratio (upstream-style / ours, cold): {up / cold:.1f}x; with the ground-truth cache warm: {up / warm:.1f}x")
    g_up, g_ours = t_gen["up"], t_gen["ours"] / 2  # ours ran twice (cold and cached): per-run generation time
    print(f"evaluation alone (the fake generator's time, {g_up:.2f} s upstream-style / {g_ours:.2f} s ours per run, "
          f"left out): cold {(up - g_up) / (cold - g_ours):.1f}x; cached {(up - g_up) / (warm - g_ours):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
