"""NCS (src/eval/ncs.py) against a case computed by hand from upstream's definition (ncs_compute.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from src.eval import ncs

KW = ["kick", "punch"]
# (name, repeat, retrieved captions in rank order); the rank written next to each is worked out by hand
RECORDS = [
    ("a", 0, ["a man walks", "a person kicks", "kick"]),        # 2
    ("a", 0, ["a person punches", "walks", "jumps"]),           # 1 -> motion a, repeat 0: min(2, 1) = 1
    ("b", 0, ["walks", "runs", "jumps"]),                       # none: 3 + 1 = 4
    ("c", 0, ["x", "y", "Kick high"]),                          # case-sensitive: "Kick" is no hit -> 4
    ("a", 1, ["walks", "kicks", "z"]),                          # 2
    ("b", 1, ["walk", "run", "punching"]),                      # 3
    ("c", 1, ["kicking", "a", "b"]),                            # 1
]


def test_ranks_by_hand():
    got = ncs.retrieval_ranks([r for _, _, r in RECORDS], KW)
    assert got.tolist() == [2, 1, 4, 4, 2, 3, 1]
    assert ncs.retrieval_ranks([["walk"], ["a", "b", "c", "d", "e"]], KW).tolist() == [2, 6]  # len + 1 per list


def test_summary_by_hand():
    names = [n for n, _, _ in RECORDS]
    reps = [r for _, r, _ in RECORDS]
    out = ncs.ncs_from_retrievals([r for _, _, r in RECORDS], KW, names, reps)
    # repeat 0: a=1, b=4, c=4 ; repeat 1: a=2, b=3, c=1
    want = {"ncs@1": (1 / 3 + 1 / 3) / 2, "ncs@2": (1 / 3 + 2 / 3) / 2, "ncs@3": (1 / 3 + 1) / 2, "ncs@5": 1.0,
            "ncs@10": 1.0, "mean_rank": (3 + 2) / 2, "median_rank": (4 + 2) / 2}
    for k, v in want.items():
        assert out[k] == pytest.approx(v), k
    # two repeats: 1.96 * std(ddof=1) / sqrt(2) = 0.98 * |x0 - x1|
    conf = {"ncs@1": 0.0, "ncs@2": 0.98 / 3, "ncs@3": 0.98 * 2 / 3, "mean_rank": 0.98, "median_rank": 1.96}
    for k, v in conf.items():
        assert out[f"conf/{k}"] == pytest.approx(v), k
    # each motion's minimum over all repeats: a=1, b=3, c=1
    mins = {"min_ncs@1": 2 / 3, "min_ncs@2": 2 / 3, "min_ncs@3": 1.0, "min_mean_rank": 5 / 3, "min_median_rank": 1.0}
    for k, v in mins.items():
        assert out[k] == pytest.approx(v), k
    assert out["forget_size"] == 3 and out["repeats"] == 2


def test_one_repeat_defaults_and_nan_interval():
    out = ncs.ncs_summary([1, 3, 11])
    assert out["ncs@1"] == pytest.approx(1 / 3) and out["ncs@3"] == pytest.approx(2 / 3)
    assert out["ncs@10"] == pytest.approx(2 / 3)
    assert out["mean_rank"] == pytest.approx(5.0) and out["median_rank"] == 3.0
    assert math.isnan(out["conf/ncs@1"])
    with pytest.raises(ValueError):
        ncs.ncs_summary([0, 1])


def test_first_keyword_rank_from_similarities():
    sims = np.array([[0.9, 0.1, 0.5, 0.7],    # order 0, 3, 2, 1 -> first keyword text (2) at rank 3
                     [0.2, 0.8, 0.1, 0.3],    # order 1, ... -> rank 1
                     [0.5, 0.0, 0.0, 0.5]])   # ties keep text order: 0, 3, 1, 2 -> text 1 at rank 3
    is_kw = np.array([False, True, True, False])
    assert ncs.first_keyword_rank(sims, is_kw).tolist() == [3, 1, 3]
    assert ncs.first_keyword_rank(sims, is_kw, top=2).tolist() == [3, 1, 3]  # beyond the top 2: 2 + 1
    assert ncs.first_keyword_rank(sims, is_kw, top=1).tolist() == [2, 1, 2]
    assert ncs.first_keyword_rank(sims, np.zeros(4, bool)).tolist() == [5, 5, 5]
