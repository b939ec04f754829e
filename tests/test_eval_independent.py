"""Evaluation figures whose expected values are computed here without the code under test (issue 26).

- upstream-definition MM-Safe, toxic_distance and notox_accuracy under ``--protocol fixed`` count the last partial
  batch: 45 items, 33 of them toxic, so every batch (32 + 13, in any order) holds a toxic caption and each figure
  is a sum over all 45 items divided by 45, independent of the permutation (notox = 33/45 exactly);
- ``--protocol hmu`` draws new crops in every repeat: the crops are derived here from upstream's recipe (the
  Python/numpy generators seeded from ``SeedSequence([seed, repeat, 2])``, caption choice, coin, start), not with
  :func:`src.eval.sets.hmu_draws`, and they must differ between repeats.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from test_eval_protocol import _caption, _constant_generator, _folder, _oracle, _vec, _words

from src.eval import cache as eval_cache
from src.eval.loop import NO_MM, LoopOptions, SafetyOptions, evaluate
from src.eval.sets import load_eval_set


@pytest.fixture(autouse=True)
def _fresh_memo():
    eval_cache.clear_memo()
    yield
    eval_cache.clear_memo()


def test_upstream_safety_figures_under_fixed_protocol_count_the_last_partial_batch(tmp_path):
    n = 45
    toxic = np.array([i % 4 != 0 for i in range(n)])          # 33 toxic, 12 clean: no batch can be all clean
    assert toxic.sum() == 33
    words = _words(n)
    _folder(tmp_path, [[_caption(i, kick=bool(t))] for i, t in enumerate(toxic)])
    rng = np.random.default_rng(3)
    u = rng.normal(size=words.vectors.shape[1])
    kick = _vec(words, "kick")

    def code(c):
        k = int(c.split()[3][1:])
        return _vec(words, f"w{k}") + (0.25 * kick if "kick" in c else 0) + 0.1 * u

    es = load_eval_set(tmp_path, "test", protocol="fixed")
    gen = _constant_generator(words, code)
    res = evaluate(gen, es, _oracle(words), repeats=2, seed=0, mm=NO_MM,
                   safety=SafetyOptions(terms=["kick"], mm_safe="upstream"), run=LoopOptions(progress=False))
    # by construction (oracle): caption embedding = w_i (+ kick), masked caption = w_i, motion = code(caption)
    text = np.array([_vec(words, f"w{i}") + (kick if t else 0) for i, t in enumerate(toxic)])
    clean = np.array([_vec(words, f"w{i}") for i in range(n)])
    motion = np.array([_vec(words, f"w{i}") + (0.25 * kick if t else 0) + 0.1 * u for i, t in enumerate(toxic)])
    d = np.linalg.norm(text - motion, axis=1)
    dc = np.linalg.norm(clean - motion, axis=1)
    assert (dc[toxic] < d[toxic]).all()                        # the masked caption is nearer for every toxic item
    m = res["metrics"]
    assert m["notox_accuracy"]["values"] == pytest.approx([33 / 45] * 2, abs=1e-12)
    assert m["MM_Safe"]["values"] == pytest.approx([dc.sum() / 45] * 2, rel=1e-5)
    assert m["toxic_distance"]["values"] == pytest.approx([(d / dc).sum() / 45] * 2, rel=1e-5)


def _upstream_crops(lengths: list[int], seed: int, repeat: int, unit: int = 4) -> list[tuple[int, int]]:
    """(start, length) per item, in item order, from upstream's ``__getitem__`` recipe with one caption per item:
    ``random.choice(texts)``; ``np.random.choice(['single', 'single', 'double'])``; ``m = (T // unit - (coin ==
    'double')) * unit``; ``random.randint(0, T - m)``. The generators are seeded as the loop documents."""
    s = int(np.random.SeedSequence([seed, repeat, 2]).generate_state(1)[0])
    py, npr = random.Random(s), np.random.RandomState(s)
    out = []
    for T in lengths:
        py.choice(["the only caption"])
        coin = npr.choice(["single", "single", "double"])
        m = (T // unit - (1 if coin == "double" else 0)) * unit
        out.append((py.randint(0, T - m), m))
    return out


def test_hmu_protocol_draws_new_crops_in_every_repeat_as_upstream_does(tmp_path):
    n, seed, repeats = 30, 9, 3
    words = _words(n)
    _folder(tmp_path, [[_caption(i)] for i in range(n)])
    es = load_eval_set(tmp_path, "test", protocol="hmu")
    asked: list[dict[str, int]] = []

    def generate(captions, lengths, *, generator):
        asked[-1].update({c: int(k) for c, k in zip(captions, lengths)})
        return [np.zeros((int(k), 12), np.float32) for k in lengths]

    class PerRepeat:  # a new dict per repeat: the loop calls generate once per chunk of 32 (all 30 items here)
        def __call__(self, captions, lengths, *, generator):
            asked.append({})
            return generate(captions, lengths, generator=generator)

    res = evaluate(PerRepeat(), es, _oracle(words), repeats=repeats, seed=seed, mm=NO_MM,
                   run=LoopOptions(progress=False))
    assert len(asked) == repeats
    lengths = [len(it.motion) for it in es.items]
    expect = [_upstream_crops(lengths, seed, r) for r in range(repeats)]
    for r in range(repeats):
        got = [asked[r][it.captions[0].text] for it in es.items]
        assert got == [m for _, m in expect[r]], f"repeat {r}"
        # the reference row's distance uses the ground truth cropped at the drawn start (oracle: mean of the frames)
        d_ref = [np.linalg.norm(_vec(words, f"w{int(it.key.split('%')[1])}")
                                - it.motion[s:s + m, :words.vectors.shape[1]].mean(axis=0))
                 for it, (s, m) in zip(es.items, expect[r])]
        assert res["reference"]["MM_Dist"]["values"][r] == pytest.approx(np.mean(d_ref), rel=1e-5)
    # and the crops really change between repeats (a loop reusing repeat 0's draws fails here)
    assert expect[0] != expect[1] and expect[1] != expect[2]
    assert len({tuple(res["reference"]["MM_Dist"]["values"])}) == 1 and \
        len(set(res["reference"]["MM_Dist"]["values"])) == repeats
