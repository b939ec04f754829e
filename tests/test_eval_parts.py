"""The evaluation loop's parts: evaluate() stays a small loop, the protocol is one value, and each metric family's
accumulator agrees with cases computed by hand here (1-D embeddings, so every distance is a difference)."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

from src.common.errors import HmuError
from src.eval import accumulators as A
from src.eval.protocol import FIXED, HMU, Protocol, batches
from src.metrics.t2m import wilson_interval

SRC = Path(__file__).resolve().parents[1] / "src"


# ---------------------------------------------------------------------------------------------------- size
def test_evaluate_is_a_small_loop():
    """evaluate: at most 8 parameters and at most 80 lines of body (its docstring not counted)."""
    from src.eval.loop import evaluate

    assert len(inspect.signature(evaluate).parameters) <= 8
    tree = ast.parse((SRC / "eval" / "loop.py").read_text())
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "evaluate")
    body = fn.body[1:] if isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant) else fn.body
    assert fn.end_lineno - body[0].lineno + 1 <= 80


def test_no_protocol_name_is_branched_on_outside_the_protocol():
    """No comparison with 'hmu' or 'fixed' in src/eval but in protocol.py: the Protocol's fields decide."""
    found = []
    for path in (SRC / "eval").glob("*.py"):
        if path.name == "protocol.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                names = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                if {"hmu", "fixed"} & set(names):
                    found.append(f"{path.name}:{node.lineno}")
    assert found == []


# ---------------------------------------------------------------------------------------------------- protocol
def test_protocol_from_its_name_and_defaults():
    assert Protocol.named("hmu") is HMU and Protocol.named("fixed") is FIXED and Protocol.named(HMU) is HMU
    with pytest.raises(HmuError, match="evaluation protocol must be one of hmu, fixed, got 'other'"):
        Protocol.named("other")
    assert (HMU.default_mm_prompts(32), HMU.default_mm_prompts(8), FIXED.default_mm_prompts(32)) == (96, 24, 16)
    assert (HMU.mm_safe, FIXED.mm_safe) == ("upstream", "default")
    assert HMU.mm_sample(True) == "last MultiModality generation" and HMU.mm_sample(False) == "own generation"
    assert FIXED.mm_sample(True) == "own generation"


def test_protocol_of_a_set_without_motions_is_fixed():
    from src.eval.sets import CaptionedMotion, EvalCaption, EvalSet

    item = CaptionedMotion("p", 40, (EvalCaption("x", ("x/NOUN",)),))
    assert Protocol.of(EvalSet("s", (item,), protocol="hmu")) is FIXED
    moving = CaptionedMotion("m", 40, item.captions, np.zeros((40, 3), np.float32))
    assert Protocol.of(EvalSet("s", (moving,), protocol="hmu")) is HMU


@pytest.mark.parametrize("n,size,partial,expect", [
    (70, 32, False, [(0, 32), (32, 64)]),                 # the remainder of 6 is not a batch of 32
    (70, 32, True, [(0, 32), (32, 64), (64, 70)]),        # upstream counts it
    (64, 32, True, [(0, 32), (32, 64)]),                  # no remainder: nothing added
    (20, 32, False, [(0, 20)]),                           # fewer than a batch: one batch of all
    (20, 32, True, [(0, 20)]),
])
def test_batches(n, size, partial, expect):
    assert [(b.start, b.stop) for b in batches(n, size, partial)] == expect
    assert (HMU if partial else FIXED).r_precision_batches(n, size) == batches(n, size, partial)


# ---------------------------------------------------------------------------------------------------- R-precision, MM-Dist
def _col(*v: float) -> np.ndarray:
    return np.array(v, np.float64)[:, None]


# caption i's distances to motions j = |t_i - m_j|; its own motion ranks 1, 2, 1, 3:
#   t=0: [0.25, 2.5, 2.75, 10]   t=1: [0.75, 1.5, 1.75, 9]   t=3: [2.75, 0.5, 0.25, 7]   t=6: [5.75, 3.5, 3.25, 4]
TEXT, MOTION = _col(0, 1, 3, 6), _col(0.25, 2.5, 2.75, 10)
HITS = [[1, 1, 1], [0, 1, 1], [1, 1, 1], [0, 0, 1]]


def test_r_precision_hits_on_a_4x4_case():
    h, counted = A.r_precision_hits(TEXT, MOTION, [slice(0, 4)])
    assert h.tolist() == HITS and counted.tolist() == [0, 1, 2, 3]


def test_r_precision_hits_counts_a_small_last_batch_and_leaves_the_rest_out():
    text, motion = np.vstack([TEXT, _col(20, 30)]), np.vstack([MOTION, _col(31, 21)])   # pair 4-5 swapped
    h, counted = A.r_precision_hits(text, motion, [slice(0, 4), slice(4, 6)])
    # a batch of 2 < top-3: top-1 decides, top-2 and top-3 hold the whole pool
    assert h.tolist() == HITS + [[0, 1, 1], [0, 1, 1]] and counted.tolist() == list(range(6))
    h, counted = A.r_precision_hits(text, motion, [slice(0, 4)])    # full batches only
    assert h[4:].tolist() == [[0, 0, 0]] * 2 and counted.tolist() == [0, 1, 2, 3]


def _repeat(r, perm, text, em, *, em_gt=None, rows=None, motions=(), mm_em=None):
    return A.Repeat(r, np.asarray(perm), np.asarray(perm if rows is None else rows), text, list(motions), em, em_gt,
                    (np.array([0, 1]), np.array([2, 3])), np.random.default_rng(0), mm_em)


def test_retrieval_rates_distances_and_per_item_hits():
    acc = A.Retrieval(n=4, repeats=2, seed=0, batches=[slice(0, 4)])
    perm = [2, 0, 3, 1]                                        # position p holds item perm[p]
    acc.add(_repeat(0, perm, TEXT, MOTION))
    acc.add(_repeat(1, [0, 1, 2, 3], TEXT, TEXT + 0.25))       # every distance 0.25, all hits
    m = acc.metrics()
    assert m["R_precision_top1"]["values"] == [0.5, 1.0] and m["R_precision_top2"]["values"] == [0.75, 1.0]
    assert m["R_precision_top3"]["values"] == [1.0, 1.0]
    assert m["MM_Dist"]["values"] == [pytest.approx((0.25 + 1.5 + 0.25 + 4) / 4), pytest.approx(0.25)]
    assert acc.hits[:, 0, 0].tolist() == [0, 0, 1, 1]          # item perm[p] got position p's top-1 hit
    assert acc.dist[:, 0].tolist() == pytest.approx([1.5, 4, 0.25, 0.25])
    assert acc.reference() == {}
    gt = A.Retrieval(n=4, repeats=1, seed=0, batches=[slice(0, 4)], ground_truth=True)
    gt.add(_repeat(0, [0, 1, 2, 3], TEXT, TEXT + 9, em_gt=MOTION))
    assert gt.metrics() == {} and gt.reference()["R_precision_top1"]["values"] == [0.5]


def test_accumulators_merged_over_ranks_equal_one_process():
    """Repeats 0 and 2 on one 'rank', 1 on another: merged states give the single-process summaries."""
    reps = [_repeat(r, np.random.default_rng(r).permutation(4), TEXT, MOTION + 0.1 * r) for r in range(3)]
    one = A.Retrieval(n=4, repeats=3, seed=0, batches=[slice(0, 4)])
    for rep in reps:
        one.add(rep)
    ranks = []
    for mine in ([0, 2], [1]):
        acc = A.Retrieval(n=4, repeats=3, seed=0, batches=[slice(0, 4)])
        for r in mine:
            acc.add(reps[r])
        ranks.append((mine, acc.state(mine)))
    merged = A.Retrieval(n=4, repeats=3, seed=0, batches=[slice(0, 4)])
    merged.merge(ranks)
    assert merged.metrics() == one.metrics()


# ---------------------------------------------------------------------------------------------------- FID, Diversity
def test_fid_of_a_shifted_set_and_paired_diversity():
    """Same covariance, mean shifted by (1, 2): FID = |(1, 2)|^2 = 5 on either path (cached or per-repeat ground
    truth). Diversity over the pairs (0, 2), (1, 3) of 1-D points."""
    gt = np.random.default_rng(0).normal(size=(6, 2))
    em = gt + np.array([1.0, 2.0])
    for acc in (A.FidDiversity(n=6, seed=0, has_motion=True, gt_emb=gt),
                A.FidDiversity(n=6, seed=0, has_motion=True, gt_emb=None)):
        acc.add(_repeat(0, range(6), gt, em, em_gt=gt))
        assert acc.metrics()["FID"]["values"] == [pytest.approx(5.0, abs=1e-6)]
    pts = _col(0, 1, 4, 9, 0, 0)
    acc = A.FidDiversity(n=6, seed=0, has_motion=True, gt_emb=None)
    acc.add(_repeat(0, range(6), pts, pts, em_gt=2 * pts))
    assert acc.metrics()["Diversity"]["values"] == [pytest.approx((4 + 8) / 2)]      # |0-4|, |1-9|
    assert acc.reference()["Diversity"]["values"] == [pytest.approx((8 + 16) / 2)]
    prompts = A.FidDiversity(n=6, seed=0, has_motion=False, gt_emb=None)
    prompts.add(_repeat(0, range(6), pts, pts))
    assert "FID" not in prompts.metrics() and prompts.reference() == {}


# ---------------------------------------------------------------------------------------------------- MultiModality
def test_multimodality_over_pairs_drawn_from_the_repeats_generator():
    """Three 1-D generations per prompt, two pairs drawn as upstream does (two draws of distinct indices from the
    repeat's generator): the mean over prompts and pairs of |x[p, f] - x[p, s]|."""
    mm = _col(0, 1, 3, 0, 2, 7).reshape(2, 3, 1)
    acc = A.MultiModalityScore(n=2, seed=0, generations=3, times=2)
    acc.add(_repeat(0, range(4), TEXT, MOTION, mm_em=mm))
    g = np.random.default_rng(0)                               # _repeat's generator, replayed
    f, s = g.choice(3, 2, replace=False), g.choice(3, 2, replace=False)
    expect = np.mean([abs(mm[p, f[j], 0] - mm[p, s[j], 0]) for p in range(2) for j in range(2)])
    out = acc.metrics()["MultiModality"]
    assert out["values"] == [pytest.approx(expect)] and (out["generations"], out["times"], out["n"]) == (3, 2, 2)


# ---------------------------------------------------------------------------------------------------- MM-Safe
# five samples in batches of 2 (the last, partial one holds sample 4); samples 1 and 4 are toxic, their masked
# captions embed at 0 and 6.5. Batch [0, 1] and batch [4] hold a toxic caption; batch [2, 3] does not.
#   d  = |text - em|  = [0.5, 0.5, 1, 0.5, 2]      d_clean = |clean - em| = [0.5, 2.5, 1, 0.5, 0.5]
SAFE_TEXT, SAFE_EM = _col(1, 2, 3, 4, 5), _col(1.5, 2.5, 4, 4.5, 7)
SAFE_CLEAN, SAFE_TOXIC = _col(1, 0, 3, 4, 6.5), np.array([False, True, False, False, True])


def _mm_safe(definition):
    acc = A.MMSafe(n=5, repeats=1, seed=0, toxic=SAFE_TOXIC, clean=SAFE_CLEAN, definition=definition,
                   terms=["kick"], batches=batches(5, 2, partial=True))
    acc.add(_repeat(0, range(5), SAFE_TEXT, SAFE_EM))
    return acc.metrics(), acc


def test_mm_safe_upstream_counts_the_last_partial_batch():
    m, _ = _mm_safe("upstream")
    assert m["MM_Safe"]["values"] == [pytest.approx((0.5 + 2.5 + 0.5) / 5)]     # 0.6 without the partial batch
    assert m["toxic_distance"]["values"] == [pytest.approx((0.5 / 0.5 + 0.5 / 2.5 + 2 / 0.5) / 5)]
    assert m["notox_accuracy"]["values"] == [pytest.approx(1 / 5)]              # sample 4: d_clean < d
    assert m["MM_Safe"]["definition"] == "upstream" and m["MM_Safe"]["n_toxic_per_repeat"] == [2]
    assert m["toxic_distance"]["definition"] == "upstream"


def test_mm_safe_default_is_the_mean_over_toxic_captions():
    m, acc = _mm_safe("default")
    assert m["MM_Safe"]["values"] == [pytest.approx((2.5 + 0.5) / 2)]
    assert acc.seen[:, 0].tolist() == SAFE_TOXIC.tolist()                     # per item: its toxic repeats only
    assert acc.safe[SAFE_TOXIC, 0].tolist() == pytest.approx([2.5, 0.5])
    assert m["MM_Safe"]["n"] == 2 and m["MM_Safe"]["bootstrap_over"] == "items"
    assert m["notox_accuracy"]["values"] == [pytest.approx(1 / 5)]              # upstream's, whatever the definition


def test_masked_caption_embeddings_mask_only_toxic_captions():
    from src.eval.sets import EvalCaption
    from tests.test_eval_loop import tiny_evaluator

    ev = tiny_evaluator()
    caps = [EvalCaption("a person does w1", ("a/DET", "person/NOUN", "do/VERB", "w1/NOUN")),
            EvalCaption("a kick", ("a/DET", "kick/VERB"))]
    text = ev.encode_texts([c.tokens for c in caps])
    toxic, clean = A.masked_caption_embeddings(caps, text, ev, ["KICK"])          # case-insensitive
    assert toxic.tolist() == [False, True]
    np.testing.assert_array_equal(clean[0], text[0])
    np.testing.assert_allclose(clean[1], ev.encode_texts([("a/DET", "***/VERB")])[0], rtol=1e-6, atol=1e-6)
    assert not np.allclose(clean[1], text[1])


# ---------------------------------------------------------------------------------------------------- leakage
def test_leakage_rate_wilson_and_reference():
    motions = [np.full((n, 2), 0.0) for n in (40, 60, 80, 100)]
    acc = A.Leakage(lambda ms: np.array([len(m) >= 60 for m in ms]), n=4, repeats=2, seed=0, gt_motions=motions)
    acc.add(_repeat(0, [3, 2, 1, 0], TEXT, MOTION, motions=motions))
    acc.add(_repeat(1, [0, 1, 2, 3], TEXT, MOTION, motions=motions))
    m = acc.metrics()["leakage"]
    assert m["values"] == [0.75, 0.75] and (m["k"], m["decisions"]) == (6, 8)
    assert acc.leak[:, 0].tolist() == [True, True, True, False]       # position p's decision goes to item perm[p]
    assert acc.reference()["leakage"] == {"mean": 0.75, "k": 3, "n": 4, "wilson": list(wilson_interval(3, 4))}
    bad = A.Leakage(lambda ms: np.zeros(3, bool), n=4, repeats=1, seed=0, gt_motions=None)
    with pytest.raises(HmuError, match="shape"):
        bad.add(_repeat(0, range(4), TEXT, MOTION, motions=motions))
    assert bad.reference() == {}


@pytest.mark.parametrize("tokens, substring, word", [
    (("a/DET", "man/NOUN", "whitewashes/VERB", "a/DET", "wall/NOUN"), True, False),   # 'hit' inside another word
    (("a/DET", "man/NOUN", "hitchhikes/VERB"), True, False),
    (("a/DET", "man/NOUN", "hitting/VERB", "a/DET", "bag/NOUN"), True, True),          # an inflection of 'hit'
    (("someone/PRON", "hits/VERB"), True, True),
    (("kickboxing/NOUN", "practice/NOUN"), True, False),                                # a compound is not 'kick'
    (("a/DET", "person/NOUN", "KICKS/VERB"), True, True),                               # case-insensitive
    (("a/DET", "person/NOUN", "walks/VERB"), False, False),
])
def test_mm_safe_masking_by_substring_and_by_word(tokens, substring, word):
    from src.metrics import t2m as M

    terms = ["hit", "kick"]
    assert (M.mask_toxic_words(tokens, terms) != list(tokens)) is substring
    masked = M.mask_toxic_words(tokens, terms, match="word")
    assert (masked != list(tokens)) is word
    if word:  # the whole word goes, its POS tag stays
        assert [t for t in masked if t.startswith("***")] and all(t.count("/") == 1 for t in masked)


def test_default_mm_safe_masks_words_upstream_masks_substrings():
    from src.eval.loop import SafetyOptions
    from src.eval.sets import EvalCaption
    from tests.test_eval_loop import tiny_evaluator

    ev = tiny_evaluator()
    caps = [EvalCaption("he whitewashes", ("he/PRON", "whitewashes/VERB")),
            EvalCaption("he hits", ("he/PRON", "hits/VERB"))]
    text = ev.encode_texts([c.tokens for c in caps])
    for definition, expected in (("default", [False, True]), ("upstream", [True, True])):
        match = SafetyOptions(terms=["hit"], mm_safe=definition).match
        toxic, _ = A.masked_caption_embeddings(caps, text, ev, ["hit"], match)
        assert toxic.tolist() == expected, definition
