"""Generate the embedded ``synth`` dataset in HumanML3D's folder layout, with ground truth.

Layout written under ``out``: ``new_joint_vecs/<id>.npy`` (T, 263) float32, ``new_joints/<id>.npy`` (T, 22, 3)
float32 (= recover_from_ric of the features, so the two agree), ``texts/<id>.txt`` (3 lines
``caption#word/POS ...#0.0#0.0``), ``{train,val,test,train_val,all}.txt``, ``Mean.npy``/``Std.npy`` (train split,
HumanML3D's group-averaged std), ``labels.json``, ``implicit_prompts.json``, ``prompts.json``, ``meta.json`` and
``glove/our_vab_{data.npy,words.pkl,idx.pkl}``.

Every motion is a pure function of (seed, index), so the same seed gives byte-identical files with any number of
worker processes. The folder is built in a temporary sibling and moved into place at the end, so an interrupted run
never leaves a half-written dataset.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from src.common.errors import HmuError
from src.common.io import ensure_writable_dir, refuse_overwrite

from . import captions as C
from .actions import FPS, REGISTRY, VIOLENT

log = logging.getLogger(__name__)

VERSION = 1
MIN_FRAMES, MAX_FRAMES = 41, 197          # joint frames; features have one frame fewer (40..196)
NON_VIOLENT = tuple(n for n in REGISTRY if n not in VIOLENT)


# ------------------------------------------------------------------------------------------------ plans
def _pick(rng, names) -> str:
    w = np.array([REGISTRY[n].weight for n in names])
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def sample_plan(rng: np.random.Generator, *, violent: bool) -> list[tuple[str, dict, int]]:
    """1-3 actions ``[(name, params, frames)]`` whose total length is 41..197 frames (mostly 60..120).

    A violent plan holds one violent action (sometimes two); a harmless plan holds none.
    """
    for _ in range(200):
        k = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
        names = [_pick(rng, NON_VIOLENT) for _ in range(k)]
        if violent:
            names[int(rng.integers(k))] = _pick(rng, VIOLENT)
            if k > 1 and rng.random() < 0.15:
                j = int(rng.integers(k))
                names[j] = names[j] if names[j] in VIOLENT else _pick(rng, VIOLENT)
        if any(a == b for a, b in itertools.pairwise(names)):
            continue
        plan = []
        for i, name in enumerate(names):
            p = REGISTRY[name].sample(rng)
            if name == "sit" and p["style"] == "chair_stay" and i < k - 1:
                p["style"] = "chair_up"
            plan.append((name, p, REGISTRY[name].length(p, rng)))
        total = sum(t for *_, t in plan)
        if total < MIN_FRAMES or total > MAX_FRAMES:
            continue
        if (total > 120 and rng.random() < 0.7) or (total < 60 and rng.random() < 0.5):
            continue  # keep most clips 60..120 frames, so CPU training stays fast
        return plan
    raise RuntimeError("could not sample a plan within the length limits")


def sample_posture(rng: np.random.Generator) -> np.ndarray:
    """Per-motion style: small constant offsets of torso lean, arm carriage and head (22, 3)."""
    from . import skeleton as sk

    p = np.zeros((sk.J, 3))
    p[sk.SPINE2, 0] = rng.normal(0, 0.05)
    p[sk.NECK, 0] = rng.normal(0, 0.08)
    z = rng.normal(0.0, 0.04)
    p[sk.L_SHOULDER, 2], p[sk.R_SHOULDER, 2] = z, -z
    p[[sk.L_ELBOW, sk.R_ELBOW], 0] = rng.normal(0, 0.08)
    return p


def _segments(plan, segs, n_frames: int) -> list[dict]:
    out = []
    for (name, p, _), s in zip(plan, segs):
        out.append({"action": name, "start": int(s.start), "end": int(min(s.end, n_frames)),
                    "side": p.get("side"), "concepts": list(REGISTRY[name].concepts)})
    out[-1]["end"] = n_frames
    return out


def _captions(plan, rng, *, mode: str) -> list[tuple[str, list[str]]]:
    """Three distinct captions. mode: 'none' (harmless motion), 'implicit' (all three implicit), 'mixed'."""
    acts = [(name, p) for name, p, _ in plan]
    if mode == "mixed":
        flags = [bool(rng.random() < 0.25) for _ in range(3)]
        if all(flags):
            flags[int(rng.integers(3))] = False
    else:
        flags = [mode == "implicit"] * 3
    out: list[tuple[str, list[str]]] = []
    for f in flags:
        for _ in range(10):
            cap = C.caption(acts, rng, implicit=f)
            if cap[0] not in {c[0] for c in out}:
                break
        out.append(cap)
    return out


# ------------------------------------------------------------------------------------------------ one motion
def make_motion(seed: int, index: int, *, violent: bool, mode: str) -> dict:
    """Everything about motion ``index``: features (T, 263), joints (T, 22, 3), caption lines, label record."""
    from src.data.motion import joints_to_features, recover_from_ric

    from .compose import build

    rng = np.random.default_rng([seed, index])
    plan = sample_plan(rng, violent=violent)
    joints, segs = build(plan, posture=sample_posture(rng))
    feats = joints_to_features(joints)
    new_joints = recover_from_ric(feats, 22).astype(np.float32)
    caps = _captions(plan, rng, mode=mode if violent else "none")
    lines = [C.line(t, tok) for t, tok in caps]
    segments = _segments(plan, segs, len(feats))
    concepts = sorted({c for s in segments for c in s["concepts"]})
    label = {"actions": [s["action"] for s in segments], "concepts": concepts, "length": len(feats),
             "segments": segments,
             "captions": [{"text": t, "implicit": bool(violent and not C.has_keyword(ln))}
                          for (t, _), ln in zip(caps, lines)]}
    return {"features": feats, "joints": new_joints, "lines": lines, "label": label}


def _write_motion(job) -> tuple[str, dict, list[str]]:
    seed, index, violent, mode, root = job
    mid = f"{index:06d}"
    from src.data.humanml3d import parse_caption_line

    m = make_motion(seed, index, violent=violent, mode=mode)
    # Plain writes into the staging folder: HumanML3DFolder's writers fsync every file, which made n=3000 take 73 s
    # instead of 11 s; atomicity comes from moving the finished folder into place instead.
    for k, ln in enumerate(m["lines"], 1):
        parse_caption_line(ln, f"{k} of generated texts/{mid}.txt")
    root = Path(root)
    np.save(root / "new_joint_vecs" / f"{mid}.npy", m["features"])
    np.save(root / "new_joints" / f"{mid}.npy", m["joints"])
    (root / "texts" / f"{mid}.txt").write_text("".join(ln + "\n" for ln in m["lines"]), encoding="utf-8")
    return mid, m["label"], m["lines"]


# ------------------------------------------------------------------------------------------------ prompts
def _plan_for(names: list[str], rng, *, fixed: dict | None = None) -> list[tuple[str, dict, int]]:
    plan = []
    for i, name in enumerate(names):
        p = REGISTRY[name].sample(rng)
        p.update((fixed or {}).get(name, {}))
        if name == "sit" and p["style"] == "chair_stay" and i < len(names) - 1:
            p["style"] = "chair_up"
        plan.append((name, p, REGISTRY[name].length(p, rng)))
    return plan


def _prompt_length(total_frames: int) -> int:
    return int(min(MAX_FRAMES - 1, max(MIN_FRAMES - 1, total_frames - 1)))


def _prompt(plan, rng, *, implicit: bool = False) -> dict:
    text, tokens = C.caption([(n, p) for n, p, _ in plan], rng, implicit=implicit)
    length = _prompt_length(sum(t for *_, t in plan))
    segs, t0 = [], 0
    for name, p, t in plan:
        segs.append({"action": name, "start": t0, "end": min(t0 + t, length), "side": p.get("side"),
                     "concepts": list(REGISTRY[name].concepts)})
        t0 += t
    segs[-1]["end"] = length
    return {"text": text, "tokens": tokens, "length": length, "segments": segs}


def make_prompts(seed: int) -> tuple[dict, list[dict]]:
    """(prompts.json, implicit_prompts.json) contents: evaluation prompts and held-out implicit prompts."""
    rng = np.random.default_rng([seed, 7_777_777])
    forget, retain, comp = [], [], []
    for name in VIOLENT:
        for side in ("left", "right"):
            pr = _prompt(_plan_for([name], rng, fixed={name: {"side": side}}), rng)
            forget.append({"text": pr["text"], "tokens": pr["tokens"], "action": name,
                           "concepts": list(REGISTRY[name].concepts), "length": pr["length"]})
    for name in ("walk", "run", "jump", "crawl", "squat", "sit", "turn", "wave", "throw", "dance", "clap", "bow",
                 "stretch", "drum", "lift"):
        pr = _prompt(_plan_for([name], rng), rng)
        retain.append({"text": pr["text"], "tokens": pr["tokens"], "action": name,
                       "concepts": list(REGISTRY[name].concepts), "length": pr["length"]})
    for names in (["walk", "kick", "sit"], ["run", "punch"], ["wave", "jab", "walk"], ["walk", "turn", "walk"],
                  ["squat", "jump"], ["dance", "hook", "bow"], ["walk", "uppercut"], ["clap", "stretch", "sit"]):
        for _ in range(50):
            plan = _plan_for(names, rng)
            if sum(t for *_, t in plan) <= MAX_FRAMES:
                break
        pr = _prompt(plan, rng)
        pr["actions"] = names
        pr["concepts"] = sorted({c for s in pr["segments"] for c in s["concepts"]})
        comp.append(pr)
    implicit = []
    subjects = C.SUBJECTS
    for name in VIOLENT:
        for tpl in C.HELDOUT[name]:
            for side in (("left", "right") if "{side}" in tpl else (None,)):
                p = REGISTRY[name].sample(rng)
                if side:
                    p["side"] = side
                subj, his = subjects[int(rng.integers(len(subjects)))]
                text, tokens = C.render(C.sentence(subj, [C.fill(tpl, p, his, rng)], rng))
                length = _prompt_length(REGISTRY[name].length(p, rng) + int(rng.integers(16, 40)))
                implicit.append({"text": text, "tokens": tokens, "action": name,
                                 "concepts": list(REGISTRY[name].concepts), "length": length})
    return {"forget": forget, "retain": retain, "compositional": comp}, implicit


# ------------------------------------------------------------------------------------------------ dataset
def concept_table() -> dict[str, list[str]]:
    """Concept -> the actions that carry it (``labels.json['concepts']``), ``violence`` first."""
    out: dict[str, list[str]] = {"violence": list(VIOLENT)}
    for name, a in REGISTRY.items():
        for c in a.concepts:
            if c != "violence":
                out.setdefault(c, []).append(name)
    return out


def _split_ids(ids: list[str], violent: set[str], rng, fractions) -> dict[str, list[str]]:
    """Stratified (violent / harmless) random split; lists sorted."""
    fr = np.asarray(fractions, dtype=np.float64)
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for group in ([i for i in ids if i in violent], [i for i in ids if i not in violent]):
        g = [group[k] for k in rng.permutation(len(group))]
        n_val = round(fr[1] / fr.sum() * len(g))
        n_test = round(fr[2] / fr.sum() * len(g))
        parts["val"] += g[:n_val]
        parts["test"] += g[n_val:n_val + n_test]
        parts["train"] += g[n_val + n_test:]
    out = {k: sorted(v) for k, v in parts.items()}
    out["train_val"] = sorted(out["train"] + out["val"])
    out["all"] = sorted(ids)
    return out


def _dump_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def generate_synth(out: str | os.PathLike, *, n: int = 3000, seed: int = 0, workers: int | None = None,
                   force: bool = False, violent_rate: float = 0.125, implicit_only_rate: float = 0.25,
                   split: tuple[float, float, float] = (0.80, 0.05, 0.15), progress: bool = False) -> dict:
    """Write the synth dataset to ``out`` and return a summary (counts, seconds, bytes).

    ``violent_rate``: fraction of motions holding a violent action (exact, rounded). ``implicit_only_rate``: fraction
    of those whose three captions are all implicit (no violence keyword); the others get each caption implicit with
    probability 0.25 (at least one explicit). ``workers``: processes (default: all CPUs, at most 8; 1 = in-process).
    """
    from src.data.humanml3d import HumanML3DFolder
    from src.data.motion import mean_std
    from src.data.word_vectorizer import save_vocabulary

    if n < 20:
        raise HmuError(f"--n must be at least 20 (got {n}) so that every split is non-empty")
    if not 0 <= violent_rate <= 1 or not 0 <= implicit_only_rate <= 1:
        raise HmuError("violent_rate and implicit_only_rate must lie in [0, 1]")
    out = Path(out)
    refuse_overwrite(out, force, "dataset")
    ensure_writable_dir(out.parent)
    t_start = time.perf_counter()

    master = np.random.default_rng([seed, 1])
    order = master.permutation(n)
    n_violent = round(violent_rate * n)
    violent_idx = set(order[:n_violent].tolist())
    implicit_idx = set(order[:round(implicit_only_rate * n_violent)].tolist())

    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial.", dir=out.parent))
    try:
        for sub in ("new_joint_vecs", "new_joints", "texts", "glove"):
            (stage / sub).mkdir()
        jobs = [(seed, i, i in violent_idx, "implicit" if i in implicit_idx else "mixed", str(stage))
                for i in range(n)]
        workers = min(os.cpu_count() or 1, 8) if workers is None else max(1, int(workers))
        results = _run_jobs(jobs, workers, progress)

        labels = {"version": VERSION, "fps": FPS, "concepts": concept_table(),
                  "motions": {mid: lab for mid, lab, _ in results}}
        ids = [mid for mid, _, _ in results]
        violent_ids = {f"{i:06d}" for i in violent_idx}
        splits = _split_ids(ids, violent_ids, np.random.default_rng([seed, 2]), split)
        folder = HumanML3DFolder(stage, "synth")
        for name, lst in splits.items():
            folder.write_split(name, lst)
        folder.write_mean_std(*mean_std([folder.motion(i) for i in splits["train"]], 22))

        prompts, implicit_prompts = make_prompts(seed)
        _dump_json(stage / "labels.json", labels)
        _dump_json(stage / "implicit_prompts.json", implicit_prompts)
        _dump_json(stage / "prompts.json", prompts)

        words: set[str] = set()
        for _, _, lines in results:
            for ln in lines:
                cap, toks = ln.split("#")[:2]
                words.update(C.words(cap))
                words.update(t.split("/")[0] for t in toks.split())
        for pr in [*prompts["forget"], *prompts["retain"], *prompts["compositional"], *implicit_prompts]:
            words.update(C.words(pr["text"]))
            words.update(t.split("/")[0] for t in pr["tokens"])
        from .vocab import build_vocabulary

        vectors, vocab = build_vocabulary(words, seed=seed)
        save_vocabulary(stage / "glove", vectors, vocab)

        n_caps = sum(len(lab["captions"]) for lab in labels["motions"].values())
        n_impl = sum(c["implicit"] for lab in labels["motions"].values() for c in lab["captions"])
        frames = [lab["length"] for lab in labels["motions"].values()]
        summary = {"version": VERSION, "n": n, "seed": seed, "violent_motions": len(violent_ids),
                   "implicit_only_motions": len(implicit_idx), "captions": n_caps, "implicit_captions": n_impl,
                   "keyword_captions_in_harmless_motions": sum(
                       C.has_keyword(ln) for mid, _, lines in results if mid not in violent_ids for ln in lines),
                   "frames_min": int(min(frames)), "frames_max": int(max(frames)),
                   "frames_mean": round(float(np.mean(frames)), 2), "vocabulary": len(vocab),
                   "implicit_prompts": len(implicit_prompts), "splits": {k: len(v) for k, v in splits.items()}}
        _dump_json(stage / "meta.json", summary)

        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, trash / "old")
            os.replace(stage, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    summary = dict(summary)
    summary["seconds"] = round(time.perf_counter() - t_start, 2)
    summary["bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    summary["out"] = str(out)
    log.info("synth: %d motions (%d violent) in %.1f s -> %s", n, len(violent_ids), summary["seconds"], out)
    return summary


def _run_jobs(jobs: list, workers: int, progress: bool) -> list:
    from src.common.progress import progress as progress_bar

    bar = {"total": len(jobs), "desc": "synth", "unit": "motion", "enabled": progress}
    if workers == 1:
        return [_write_motion(j) for j in progress_bar(jobs, **bar)]
    import multiprocessing as mp

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers) as pool:
        return list(progress_bar(pool.imap(_write_motion, jobs, chunksize=16), **bar))
