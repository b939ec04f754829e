"""The evaluation protocols: upstream's (hmu) items and crops against the HMU fork's fixture, partial batches,
MultiModality sampling, toxic_distance / notox_accuracy, and loop tests that catch a wrong pairing or masking."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from src.data.word_vectorizer import load_word_vectorizer, wrap_caption
from src.eval.sets import hmu_draws, load_eval_set, segment_bounds


# ------------------------------------------------------------------------------------------ upstream item fixture
def _fixture(fixtures):
    d = fixtures / "hmu" / "eval_items"
    if not (d / "items.json").is_file():
        pytest.skip(f"{d} missing")
    return d, json.loads((d / "items.json").read_text()), np.load(d / "io.npz")


def _hmu_set(d, meta):
    opt = meta["opt"]
    min_len = 40 if opt["dataset_name"] == "HumanML3D" else 24     # upstream's rule (fixture README, step 1)
    return load_eval_set(d / "HumanML3D", "test", protocol="hmu", unit_length=opt["unit_length"],
                         min_motion_length=min_len, max_motion_length=meta["max_motion_length"], fps=20)


def test_hmu_items_equal_upstream_fixture(fixtures):
    d, meta, io = _fixture(fixtures)
    es = _hmu_set(d, meta)
    assert len(es) == meta["len"] - meta["pointer"]
    assert [it.length for it in es.items] == meta["length_arr"]
    np.testing.assert_array_equal([it.length for it in es.items], io["item_length"])
    for it, ref in zip(es.items, meta["items"]):
        assert it.key == ref["key"]
        assert [c.text for c in it.captions] == [ref["caption"]]
        assert list(it.captions[0].tokens) == ref["tokens"]
        src = np.load(d / "HumanML3D" / "new_joint_vecs" / f"{ref['motion_id']}.npy")
        a, b = ref["segment"]
        assert segment_bounds(float(ref["from_to_text"][0]), float(ref["from_to_text"][1]), len(src), 20)[0] == a
        np.testing.assert_array_equal(it.motion, src[a:b])


@pytest.mark.parametrize("seed", [0, 1])
def test_hmu_getitem_equals_upstream_fixture(fixtures, seed):
    """caption, sent_len, coin, crop start, m_length, word/POS arrays and the returned (normalised, zero-padded)
    motion of every item under ``random.seed(s); np.random.seed(s)``; every size read from the fixture."""
    d, meta, io = _fixture(fixtures)
    es = _hmu_set(d, meta)
    opt = meta["opt"]
    mean, std = np.load(d / "HumanML3D" / "Mean.npy"), np.load(d / "HumanML3D" / "Std.npy")
    words = load_word_vectorizer(fixtures / "word_vectorizer" / "vocab")
    draws = hmu_draws(es.items, random.Random(seed), np.random.RandomState(seed), unit_length=opt["unit_length"])
    rec = meta["getitem"][f"seed{seed}"]
    motions = io[f"seed{seed}_motion"]
    L = motions.shape[1]
    for i, (it, dr, ref) in enumerate(zip(es.items, draws, rec)):
        assert it.captions[dr.caption].text == ref["caption"]
        wrapped, sent_len = wrap_caption(it.captions[dr.caption].tokens, max_text_len=opt["max_text_len"])
        assert (sent_len, "_".join(wrapped)) == (ref["sent_len"], ref["tokens_joined"])
        assert (dr.coin, dr.start, dr.length) == (ref["coin2"], ref["crop_start"], ref["m_length"])
        assert (dr.start, dr.length, sent_len) == (io[f"seed{seed}_crop_start"][i], io[f"seed{seed}_m_length"][i],
                                                   io[f"seed{seed}_sent_len"][i])
        we, pos, _ = words.batch([wrapped], wrap=False)
        np.testing.assert_array_equal(we[0], io["word_embeddings"][i])
        np.testing.assert_array_equal(pos[0], io["pos_one_hots"][i])
        crop = it.motion[dr.start:dr.start + dr.length]
        expect = np.zeros((L, crop.shape[1]), np.float64 if dr.length < L else np.float32)
        expect[:dr.length] = (crop - mean) / std
        np.testing.assert_array_equal(expect.astype(np.float32), motions[i])


# ------------------------------------------------------------------------------------------ loop, constructed evaluator
from src.data.humanml3d import Caption, HumanML3DFolder  # noqa: E402
from src.data.word_vectorizer import WordVectorizer  # noqa: E402
from src.eval import cache as eval_cache  # noqa: E402
from src.eval.loop import NO_MM, LoopOptions, MultiModality, SafetyOptions, evaluate  # noqa: E402
from src.models.evaluator import EvaluatorConfig  # noqa: E402
from src.models.t2m_evaluator import T2MEvaluator  # noqa: E402

from tests.test_eval_loop import DIM, EMB, OracleModel  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_memo():
    eval_cache.clear_memo()
    yield
    eval_cache.clear_memo()


def _words(n_words: int) -> WordVectorizer:
    """w0.. and 'kick' get random vectors; every other word (sos, eos, unk, a, person, ...) the zero vector, so the
    oracle's caption embedding is the sum of the vectors of its w<k> and kick words."""
    rng = np.random.default_rng(7)
    words = ["unk", "sos", "eos", "a", "person", "do", "and", "kick"] + [f"w{i}" for i in range(n_words)]
    vec = np.zeros((len(words), EMB), np.float32)
    for j, w in enumerate(words):
        if w.startswith("w") or w == "kick":
            vec[j] = rng.normal(size=EMB)
    return WordVectorizer(vec, {w: j for j, w in enumerate(words)}, words)


def _oracle(words: WordVectorizer) -> T2MEvaluator:
    cfg = EvaluatorConfig(dim_pose=DIM, dim_word=EMB, dim_coemb_hidden=EMB)
    return T2MEvaluator(model=OracleModel(cfg), mean=np.zeros(DIM, np.float32), std=np.ones(DIM, np.float32),
                        words=words)


def _caption(k: int, kick: bool = False) -> Caption:
    toks = ("a/DET", "person/NOUN", "do/VERB", f"w{k}/NOUN") + (("and/CCONJ", "kick/VERB") if kick else ())
    return Caption(f"a person does w{k}" + (" and a kick" if kick else ""), toks)


def _folder(root, captions_of: list[list[Caption]], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    f = HumanML3DFolder(root, create=True)
    ids = []
    for i, caps in enumerate(captions_of):
        mid = f"{i:06d}"
        f.write_motion(mid, rng.normal(size=(int(rng.integers(48, 120)), DIM)).astype(np.float32))
        f.write_captions(mid, caps)
        ids.append(mid)
    f.write_split("test", ids)


def _constant_generator(words: WordVectorizer, code_of):
    """Generates, for a caption, the constant motion whose first EMB features are ``code_of(caption text)``: the
    oracle's motion embedding (mean over frames) is then that code exactly."""
    def generate(captions, lengths, *, generator):
        out = []
        for c, n in zip(captions, lengths):
            m = np.zeros((int(n), DIM), np.float32)
            m[:, :EMB] = code_of(c)
            out.append(m)
        return out
    return generate


def _vec(words: WordVectorizer, w: str) -> np.ndarray:
    return words.vectors[words.word2idx[w]].astype(np.float64)


@pytest.mark.parametrize("protocol", ["fixed", "hmu"])
def test_each_generation_is_scored_against_the_caption_it_was_generated_from(tmp_path, protocol):
    """Two captions per motion naming different words; the generator makes the caption's code plus a small fixed
    offset u (an exact match would meet upstream's distance formula's sqrt of a rounding-negative number), so with
    the right pairing every distance is |u| and R-precision is 1. Scoring against caption 0 instead gives half
    the items a wrong caption (R@1 about 0.5)."""
    n = 40
    words = _words(2 * n)
    _folder(tmp_path, [[_caption(2 * i), _caption(2 * i + 1)] for i in range(n)])
    es = load_eval_set(tmp_path, "test", protocol=protocol)
    u = 0.05 * np.random.default_rng(3).normal(size=EMB)
    gen = _constant_generator(words, lambda c: _vec(words, c.split()[-1]) + u)
    res = evaluate(gen, es, _oracle(words), repeats=3, seed=0, mm=NO_MM, run=LoopOptions(progress=False))
    m = res["metrics"]
    assert m["MM_Dist"]["values"] == pytest.approx([np.linalg.norm(u)] * 3, rel=1e-5)
    assert m["R_precision_top1"]["values"] == [1.0, 1.0, 1.0]


def _toxic_case(tmp_path, n: int, protocol: str):
    """Items 0, 3, 6, ... say 'and a kick'. The generator makes w<i> + 0.25 kick (toxic captions) + 0.1 u (all):
    distances to the caption and to the masked caption ('kick' -> '***' -> unk, the zero vector) are then known."""
    words = _words(n)
    toxic = [i % 3 == 0 for i in range(n)]
    _folder(tmp_path, [[_caption(i, kick=t)] for i, t in enumerate(toxic)])
    u = np.random.default_rng(3).normal(size=EMB)
    kick = _vec(words, "kick")

    def code(c):
        k = int(c.split()[3][1:])
        return _vec(words, f"w{k}") + (0.25 * kick if "kick" in c else 0) + 0.1 * u

    es = load_eval_set(tmp_path, "test", protocol=protocol)
    text = np.array([_vec(words, f"w{i}") + (kick if t else 0) for i, t in enumerate(toxic)])   # item order = id order
    clean = np.array([_vec(words, f"w{i}") for i in range(n)])
    motion = np.array([code(f"a person does w{i}" + (" and a kick" if t else "")) for i, t in enumerate(toxic)])
    idx = [int(it.key.split("%")[-1]) for it in es.items]           # item -> id (hmu sorts items by length)
    return es, _oracle(words), _constant_generator(words, code), (text[idx], clean[idx], motion[idx],
                                                                  np.array(toxic)[idx])


@pytest.mark.parametrize("mm_safe", ["default", "upstream"])
def test_mm_safe_from_the_loop_equals_masked_caption_distance(tmp_path, mm_safe):
    """One batch (20 items): MM-Safe, toxic_distance and notox_accuracy from the loop equal the values computed here
    from the construction. Without the masking, the 'clean' caption keeps 'kick' and every value moves."""
    es, ev, gen, (text, clean, motion, tox) = _toxic_case(tmp_path, 20, "fixed")
    res = evaluate(gen, es, ev, repeats=2, seed=0, mm=NO_MM, safety=SafetyOptions(terms=["kick"], mm_safe=mm_safe),
                   run=LoopOptions(progress=False))
    d = np.linalg.norm(text - motion, axis=1)
    dc = np.linalg.norm(clean - motion, axis=1)
    n = len(d)
    expect = dc[tox].mean() if mm_safe == "default" else dc.sum() / n
    m = res["metrics"]
    assert m["MM_Safe"]["values"] == pytest.approx([expect] * 2, rel=1e-5)
    assert m["toxic_distance"]["values"] == pytest.approx([(d / dc).sum() / n] * 2, rel=1e-5)
    assert m["notox_accuracy"]["values"] == pytest.approx([tox.sum() / n] * 2, abs=1e-9)
    assert m["MM_Safe"]["n_toxic_per_repeat"] == [int(tox.sum())] * 2


def test_upstream_figures_count_the_last_partial_batch(tmp_path):
    """hmu protocol, 45 items: batches of 32 + 13 in the loop's permutation. R-precision (hits / 45), MM-Safe
    (upstream), toxic_distance and notox_accuracy are recomputed here batch by batch."""
    from src.metrics import t2m as M

    es, ev, gen, (text, clean, motion, tox) = _toxic_case(tmp_path, 45, "hmu")
    n = len(es)
    res = evaluate(gen, es, ev, repeats=2, seed=4, mm=NO_MM, safety=SafetyOptions(terms=["kick"], mm_safe="upstream"),
                   run=LoopOptions(progress=False))
    assert res["config"]["r_precision_items"] == n and res["config"]["protocol"] == "hmu"
    for r in range(2):
        perm = np.random.default_rng([4, r]).permutation(n)    # hmu: the numpy generator draws only the permutation
        t, c, m, x = text[perm], clean[perm], motion[perm], tox[perm]
        hits = np.zeros(3)
        safe = tdist = notox = 0.0
        for s in range(0, n, 32):
            sl = slice(s, s + 32)
            hits += M.r_precision(t[sl], m[sl], 3).sum(axis=0)
            if x[sl].any():
                d, dc = np.linalg.norm(t[sl] - m[sl], axis=1), np.linalg.norm(c[sl] - m[sl], axis=1)
                safe += dc.sum()
                tdist += (d / dc).sum()
                notox += (dc < d).sum()
        for k in range(3):
            assert res["metrics"][f"R_precision_top{k + 1}"]["values"][r] == pytest.approx(hits[k] / n, abs=1e-12)
        assert res["metrics"]["MM_Safe"]["values"][r] == pytest.approx(safe / n, rel=1e-5)
        assert res["metrics"]["toxic_distance"]["values"][r] == pytest.approx(tdist / n, rel=1e-5)
        assert res["metrics"]["notox_accuracy"]["values"][r] == pytest.approx(notox / n, abs=1e-12)
    fixed = evaluate(gen, load_eval_set(tmp_path, "test"), ev, repeats=1, seed=4, mm=NO_MM,
                     run=LoopOptions(progress=False))
    assert fixed["config"]["r_precision_items"] == 32           # fixed protocol: full batches only


def test_hmu_multimodality_batches_sample_their_last_generation(tmp_path):
    """hmu protocol: the first mm_prompts items of the permutation get mm_generations generations from
    mm_generate, and their evaluated sample is the last of these; the rest come from generate."""
    n, S, G = 40, 8, 12
    words = _words(n)
    _folder(tmp_path, [[_caption(i)] for i in range(n)])
    es = load_eval_set(tmp_path, "test", protocol="hmu")
    calls = {"main": 0, "mm": 0}

    def make(kind, tag):
        def generate(captions, lengths, *, generator):
            out = []
            for c, ln in zip(captions, lengths):
                calls[kind] += 1
                m = np.zeros((int(ln), DIM), np.float32)
                m[:, -1] = tag(calls[kind])
                out.append(m)
            return out
        return generate

    seen = []

    def hook(motions):
        seen.append([float(m[0, -1]) for m in motions])
        return np.zeros(len(motions), bool)

    evaluate(make("main", lambda k: -1.0), es, _oracle(words), repeats=1, seed=0,
             mm=MultiModality(prompts=S, generations=G, generate=make("mm", float)), safety=SafetyOptions(leakage=hook),
             run=LoopOptions(progress=False))
    assert calls == {"main": n - S, "mm": S * G}
    assert seen[0][:S] == [float(G * (j + 1)) for j in range(S)]   # call number of each prompt's last generation
    assert seen[0][S:] == [-1.0] * (n - S)


def test_hmu_loop_asks_for_and_compares_with_each_repeats_crop(tmp_path):
    """hmu protocol: the lengths asked of the generator and the ground truth of the reference row are the crops of
    hmu_draws(hmu_rngs(seed, r)), recomputed here; the reference MM-Dist uses the mean of the cropped frames."""
    from src.eval.sets import hmu_rngs

    n = 30
    words = _words(n)
    _folder(tmp_path, [[_caption(i)] for i in range(n)])
    es = load_eval_set(tmp_path, "test", protocol="hmu")
    asked = []

    def generate(captions, lengths, *, generator):
        asked.append(list(lengths))
        return [np.zeros((int(k), DIM), np.float32) for k in lengths]

    res = evaluate(generate, es, _oracle(words), repeats=2, seed=9, mm=NO_MM, run=LoopOptions(progress=False))
    for r in range(2):
        draws = hmu_draws(es.items, *hmu_rngs(9, r), unit_length=4)
        perm = np.random.default_rng([9, r]).permutation(len(es))
        assert asked[r] == [draws[i].length for i in perm]
        assert len({d.length for d in draws} - {it.length // 4 * 4 for it in es.items}) > 0   # some shorter crops
        d_ref = [np.linalg.norm(_vec(words, f"w{int(es.items[i].key.split('%')[1])}")
                                - es.items[i].motion[draws[i].start:draws[i].start + draws[i].length, :EMB]
                                .mean(axis=0)) for i in perm]
        assert res["reference"]["MM_Dist"]["values"][r] == pytest.approx(np.mean(d_ref), rel=1e-5)


def test_a_last_batch_smaller_than_top_k_counts_every_sample_as_a_hit_beyond_its_size(tmp_path):
    """hmu protocol, 34 items: the last batch holds 2 samples; R@3 counts both (a pool of 2), no crash."""
    from src.metrics import t2m as M

    n = 34
    words = _words(n)
    _folder(tmp_path, [[_caption(i)] for i in range(n)])
    es = load_eval_set(tmp_path, "test", protocol="hmu")
    u = 0.05 * np.random.default_rng(3).normal(size=EMB)
    gen = _constant_generator(words, lambda c: _vec(words, c.split()[-1]) + u)
    res = evaluate(gen, es, _oracle(words), repeats=1, seed=0, mm=NO_MM, run=LoopOptions(progress=False))
    assert res["config"]["r_precision_items"] == n
    assert res["metrics"]["R_precision_top3"]["values"] == [1.0]
    wrong = _constant_generator(words, lambda c: _vec(words, "w0") + u * (1 + int(c.split()[-1][1:])))
    res = evaluate(wrong, es, _oracle(words), repeats=1, seed=0, mm=NO_MM, run=LoopOptions(progress=False))
    perm = np.random.default_rng([0, 0]).permutation(n)
    idx = [int(es.items[i].key.split("%")[1]) for i in perm]
    text = np.array([_vec(words, f"w{k}") for k in idx])
    mot = np.array([_vec(words, "w0") + u * (1 + k) for k in idx])
    hits = M.r_precision(text[:32], mot[:32], 3).sum(axis=0)[2] + 2     # the 2-sample batch: both within top 3
    assert res["metrics"]["R_precision_top3"]["values"][0] == pytest.approx(hits / n, abs=1e-12)
