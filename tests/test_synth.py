"""The embedded procedural dataset: layout, determinism, ground truth, captions and word vectors."""
from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np

from src.data.synth import actions as A
from src.data.synth import captions as C
from src.data.synth import skeleton as sk

CAPTION_LINE = re.compile(r"^[^#]+#[a-z]+/[A-Z]+( [a-z]+/[A-Z]+)*#0\.0#0\.0$")


def _labels(root: Path) -> dict:
    return json.loads((root / "labels.json").read_text())


def _ids(root: Path, split: str) -> list[str]:
    return (root / f"{split}.txt").read_text().split()


def _texts(root: Path, mid: str) -> list[str]:
    return (root / "texts" / f"{mid}.txt").read_text().splitlines()


# ------------------------------------------------------------------------------------------------ CLI
def test_help_is_instant(cli):
    r = cli("src.data.synth", "--help")
    assert r.returncode == 0 and "--force" in r.stdout and "--seed" in r.stdout


def test_refuses_to_overwrite_without_force(synth_root, capsys):
    from src.data.synth.__main__ import main

    before = (synth_root / "labels.json").read_bytes()
    assert main(["--out", str(synth_root), "--n", "20", "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (synth_root / "labels.json").read_bytes() == before


def test_same_seed_gives_identical_files_with_any_worker_count(tmp_path):
    from src.data.synth import generate_synth

    generate_synth(tmp_path / "a", n=24, seed=5, workers=1)
    generate_synth(tmp_path / "b", n=24, seed=5, workers=2)
    generate_synth(tmp_path / "c", n=24, seed=6, workers=1)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 24 * 3
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a" / "labels.json").read_bytes() != (tmp_path / "c" / "labels.json").read_bytes()


def test_force_replaces_the_dataset(tmp_path):
    from src.data.synth import generate_synth

    generate_synth(tmp_path / "d", n=20, seed=1, workers=1)
    (tmp_path / "d" / "stale.txt").write_text("x")
    generate_synth(tmp_path / "d", n=20, seed=1, workers=1, force=True)
    assert not (tmp_path / "d" / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging leftovers


# ------------------------------------------------------------------------------------------------ format
def test_humanml3d_layout_and_shapes(synth_root):
    from src.data.motion import feature_slices, recover_from_ric

    ids = _ids(synth_root, "all")
    assert len(ids) == 120
    for mid in ids:
        f = np.load(synth_root / "new_joint_vecs" / f"{mid}.npy")
        j = np.load(synth_root / "new_joints" / f"{mid}.npy")
        assert f.dtype == np.float32 and f.ndim == 2 and f.shape[1] == 263 and 40 <= len(f) <= 196
        assert j.dtype == np.float32 and j.shape == (len(f), 22, 3)
        assert np.isfinite(f).all()
        np.testing.assert_allclose(recover_from_ric(f, 22), j, atol=1e-5)
        lines = _texts(synth_root, mid)
        assert len(lines) == 3 and all(CAPTION_LINE.match(ln) for ln in lines), lines
    mean, std = np.load(synth_root / "Mean.npy"), np.load(synth_root / "Std.npy")
    assert mean.shape == std.shape == (263,) and mean.dtype == std.dtype == np.float32
    for sl in feature_slices(22).values():  # HumanML3D's group-averaged std
        assert np.ptp(std[sl]) == 0 and std[sl][0] > 0


def test_splits_partition_the_ids(synth_root):
    tr, va, te = (set(_ids(synth_root, s)) for s in ("train", "val", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == set(_ids(synth_root, "all"))
    assert set(_ids(synth_root, "train_val")) == tr | va
    assert len(tr) > len(te) > len(va) > 0


def test_reader_accepts_the_dataset(synth_root):
    from src.data.humanml3d import HumanML3DFolder

    folder = HumanML3DFolder(synth_root, "synth")
    for split in ("train", "val", "test", "train_val", "all"):
        assert folder.ids(split)
    mid = folder.ids("test")[0]
    assert folder.motion(mid).shape[1] == 263 and folder.joints(mid).shape[1:] == (22, 3)
    caps = folder.captions(mid)
    assert len(caps) == 3 and all(c.whole and c.tokens for c in caps)
    _mean, std = folder.mean_std()
    assert (std > 0).all()


# ------------------------------------------------------------------------------------------------ ground truth
def test_labels_are_consistent(synth_root):
    lab = _labels(synth_root)
    assert lab["version"] == 1 and lab["fps"] == 20
    assert set(lab["concepts"]["violence"]) == set(A.VIOLENT)
    assert set(lab["motions"]) == set(_ids(synth_root, "all"))
    for mid, m in lab["motions"].items():
        n = len(np.load(synth_root / "new_joint_vecs" / f"{mid}.npy", mmap_mode="r"))
        segs = m["segments"]
        assert segs[0]["start"] == 0 and segs[-1]["end"] == n
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(segs))
        assert m["actions"] == [s["action"] for s in segs]
        assert set(m["concepts"]) == {c for s in segs for c in s["concepts"]}
        assert ("violence" in m["concepts"]) == any(a in A.VIOLENT for a in m["actions"])
        assert [c["text"] for c in m["captions"]] == [ln.split("#")[0] for ln in _texts(synth_root, mid)]


def test_violent_rate(synth_root):
    motions = _labels(synth_root)["motions"].values()
    rate = np.mean(["violence" in m["concepts"] for m in motions])
    assert 0.10 <= rate <= 0.15


def _facing(j: np.ndarray) -> np.ndarray:
    """(T, 3) unit forward direction from the hips (left-to-right across vector x up)."""
    left = j[:, sk.L_HIP] - j[:, sk.R_HIP]
    left[:, 1] = 0
    fwd = np.cross(left, np.array([0.0, 1.0, 0.0]))
    return fwd / np.linalg.norm(fwd, axis=1, keepdims=True)


def _segments(root: Path, actions):
    for mid, m in _labels(root)["motions"].items():
        for s in m["segments"]:
            if s["action"] in actions:
                yield np.load(root / "new_joints" / f"{mid}.npy"), s, m["segments"]


FEET_OFF_GROUND = {"kick", "jump", "hop", "run", "crawl"}  # actions that lift a foot by themselves


def test_kick_raises_the_kicking_foot(synth_root):
    n = 0
    for j, s, segs in _segments(synth_root, {"kick"}):
        ankle = j[:, sk.L_ANKLE if s["side"] == "left" else sk.R_ANKLE, 1] - j[..., 1].min()
        inside = ankle[s["start"]:s["end"]]
        outside = np.concatenate([ankle[o["start"]:o["end"]] for o in segs if o["action"] not in FEET_OFF_GROUND]
                                 + [np.zeros(0)])
        assert inside.max() > 0.35
        if len(outside):
            assert inside.max() > np.median(outside) + 0.25
        n += 1
    assert n > 0


def test_punch_extends_a_wrist_forward(synth_root):
    n = 0
    for j, s, _ in _segments(synth_root, {"punch", "jab"}):
        fwd = _facing(j)
        reach = np.stack([((j[:, w] - j[:, sk.PELVIS]) * fwd).sum(-1) for w in (sk.L_WRIST, sk.R_WRIST)]).max(0)
        inside = reach[s["start"]:s["end"]]
        # the fist shoots out from the guard (the segment's typical wrist position) to arm's length
        assert inside.max() > 0.42
        assert inside.max() > np.median(inside) + 0.15
        # fast: the wrist covers at least 8 cm in one frame (0.05 s)
        assert np.abs(np.diff(inside)).max() > 0.08
        n += 1
    assert n > 0


# ------------------------------------------------------------------------------------------------ captions
def test_keywords_match_assets_splits():
    table = json.loads((Path(__file__).resolve().parents[1] / "assets" / "splits.json").read_text())["splits"]
    for ds in ("HumanML3D", "synth"):
        if ds in table:
            assert set(table[ds]["violence"]["forget_texts"]) == set(C.VIOLENCE_KEYWORDS)


def test_implicit_captions_have_no_violence_keyword(synth_root):
    from src.data import keywords as split
    matchers = [split.line_matcher(C.VIOLENCE_KEYWORDS, m) for m in ("word", "substring")]
    n_impl = 0
    for mid, m in _labels(synth_root)["motions"].items():
        for cap, ln in zip(m["captions"], _texts(synth_root, mid)):
            if cap["implicit"]:
                n_impl += 1
                assert "violence" in m["concepts"]
                assert not C.has_keyword(ln) and not any(f(ln) for f in matchers), ln
            elif "violence" in m["concepts"]:
                assert C.has_keyword(ln), ln  # explicit captions of violent motions do name the action
    assert n_impl > 0
    prompts = json.loads((synth_root / "implicit_prompts.json").read_text())
    assert prompts and all(p["action"] in A.VIOLENT and "violence" in p["concepts"] for p in prompts)
    for p in prompts:
        assert not C.has_keyword(p["text"] + "#" + " ".join(p.get("tokens", ()))), p["text"]
        assert 40 <= p["length"] <= 196


def test_some_harmless_captions_contain_keyword_substrings(synth_root):
    hits = [ln for mid, m in _labels(synth_root)["motions"].items() if "violence" not in m["concepts"]
            for ln in _texts(synth_root, mid) if C.has_keyword(ln)]
    assert hits  # decoys such as "beats a drum" make keyword splits imprecise


def test_held_out_prompts_are_not_training_captions(synth_root):
    train = {c["text"] for m in _labels(synth_root)["motions"].values() for c in m["captions"]}
    assert not train & {p["text"] for p in json.loads((synth_root / "implicit_prompts.json").read_text())}


def test_every_template_renders_with_known_words():
    rng = np.random.default_rng(0)
    for name, act in A.REGISTRY.items():
        for _ in range(30):
            p = act.sample(rng)
            for tpl, _ in C.pool(name, p):
                text, tokens = C.render(C.fill(tpl, p, "his", rng))
                assert len(C.words(text)) == len(tokens)


def test_prompts_file(synth_root):
    pr = json.loads((synth_root / "prompts.json").read_text())
    assert {p["action"] for p in pr["forget"]} <= set(A.VIOLENT)
    assert not {p["action"] for p in pr["retain"]} & set(A.VIOLENT)
    for p in pr["forget"] + pr["retain"] + pr["compositional"]:
        assert 40 <= p["length"] <= 196 and all(re.fullmatch(r"[a-z]+/[A-Z]+", t) for t in p["tokens"])
    for p in pr["compositional"]:
        segs = p["segments"]
        assert [s["action"] for s in segs] == p["actions"] and segs[-1]["end"] == p["length"]


# ------------------------------------------------------------------------------------------------ vectors
def test_vocabulary_covers_every_caption_word(synth_root):
    from src.data.word_vectorizer import load_word_vectorizer

    wv = load_word_vectorizer(synth_root / "glove", cache=False)
    assert wv.dim_word == 50 and wv.vectors_source == "glove.6B.50d"  # real GloVe (issue 15)
    for w in ("sos", "eos", "unk"):
        assert w in wv
    files = [synth_root / "prompts.json", synth_root / "implicit_prompts.json"]
    lines = [ln for mid in _ids(synth_root, "all") for ln in _texts(synth_root, mid)]
    for f in files:
        data = json.loads(f.read_text())
        items = data if isinstance(data, list) else [p for v in data.values() for p in v]
        lines += [p["text"] + "#" + " ".join(p.get("tokens", ())) for p in items]
    for ln in lines:
        cap, toks = ln.split("#")[:2]
        for w in C.words(cap) + [t.split("/")[0] for t in toks.split()]:
            assert w in wv, (w, ln)


def test_synonyms_are_closer_than_unrelated_words(synth_root):
    """The procedural fallback vectors (``--word_vectors procedural``): synonyms close, a shared violence direction."""
    import pickle

    from src.data.synth.vocab import build_vocabulary

    g = synth_root / "glove"
    words = pickle.loads((g / "our_vab_words.pkl").read_bytes())
    idx = pickle.loads((g / "our_vab_idx.pkl").read_bytes())
    assert set(idx) == set(words)
    data, vocab = build_vocabulary(words, seed=0)
    idx = {w: i for i, w in enumerate(vocab)}
    assert data.dtype == np.float32 and data.shape == (len(vocab), 300)

    def cos(a, b):
        u, v = data[idx[a]], data[idx[b]]
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    for a, b, far in [("walk", "stroll", "drum"), ("run", "jog", "clap"), ("quickly", "fast", "wall"),
                      ("strike", "kick", "sit"), ("strike", "punch", "walk"), ("opponent", "kick", "chair")]:
        assert cos(a, b) > cos(a, far) + 0.2, (a, b, far)
    assert cos("kick", "punch") > cos("kick", "walk") + 0.2  # the shared violence direction


def test_plan_lengths_stay_in_range():
    from src.data.synth.generate import sample_plan

    rng = np.random.default_rng(0)
    totals = [sum(t for *_, t in sample_plan(rng, violent=bool(i % 2))) for i in range(300)]
    assert min(totals) >= 41 and max(totals) <= 197
    assert np.mean([(60 <= t <= 121) for t in totals]) > 0.6
