"""Motion-quality figures inside the evaluation loop (src.eval.accumulators.Quality via LoopOptions.quality)."""
from __future__ import annotations

import numpy as np
import pytest

from src.common.errors import HmuError
from src.data.motion import feature_dim, feature_slices
from src.eval.loop import NO_MM, LoopOptions, evaluate
from src.eval.quality import KEYS
from src.eval.sets import load_eval_set
from src.models.t2m_evaluator import T2MEvaluator
from tests.test_eval_loop import tiny_evaluator, write_test_folder

D = feature_dim(22)   # 263


def _evaluator(dim: int = D) -> T2MEvaluator:
    return tiny_evaluator(0, n_words=12, dim=dim)


def _folder(root, n: int = 8, dim: int = D):
    """Random-walk features (finite joints, non-zero jerk and drift); returns (eval set, {caption: motion})."""
    rng = np.random.default_rng(0)
    motions = [np.cumsum(0.02 * rng.normal(size=(int(rng.integers(40, 60)), dim)), axis=0).astype(np.float32)
               for _ in range(n)]
    by_text = write_test_folder(root, motions)
    return load_eval_set(root, "test"), by_text


def _hover(height: float):
    """Every joint at ``height`` m, standing still: the root's y channel and every ric y channel = height."""
    ric = feature_slices(22)["ric"]

    def generate(captions, lengths, *, generator):
        out = []
        for n in lengths:
            m = np.zeros((n, D), np.float32)
            m[:, 3] = height
            m[:, ric.start + 1:ric.stop:3] = height
            out.append(m)
        return out
    return generate


def test_quality_on_by_default_for_263d_and_ground_truth_generator_matches_reference(tmp_path):
    es, by_text = _folder(tmp_path)
    gt = lambda caps, lens, *, generator: [by_text[c][:n] for c, n in zip(caps, lens)]  # noqa: E731
    res = evaluate(gt, es, _evaluator(), repeats=2, seed=0, mm=NO_MM, run=LoopOptions(progress=False))
    assert res["config"]["quality"] is True
    for k in KEYS:  # the generator returns the real motions: each repeat's figure is the reference's, no spread
        m, ref = res["metrics"][k], res["reference"][k]
        assert m["values"] == pytest.approx([ref["mean"]] * 2, rel=1e-9, abs=1e-12), k
        assert m["ci95"] == pytest.approx(0.0, abs=1e-9)
    assert res["reference"]["jerk_mean"]["mean"] > 0 and res["reference"]["bone_drift_mean"]["mean"] > 0


def test_quality_hand_case_hovering_body(tmp_path):
    """A body whose every joint stays 0.3 m above the floor: float 0.3 m on every frame, no penetration, no jerk,
    no bone drift, no contact (so no skating)."""
    es, _ = _folder(tmp_path)
    res = evaluate(_hover(0.3), es, _evaluator(), repeats=2, seed=0, mm=NO_MM, run=LoopOptions(progress=False))
    m = {k: res["metrics"][k]["mean"] for k in KEYS}
    assert m["float_mean"] == pytest.approx(0.3, abs=1e-6)
    assert m["float_ratio"] == 1.0
    assert m["penetration_mean"] == 0.0 and m["penetration_max"] == 0.0
    assert m["jerk_mean"] == pytest.approx(0.0, abs=1e-6) and m["bone_drift_mean"] == pytest.approx(0.0, abs=1e-6)
    assert m["skate_ratio"] == 0.0
    sunk = evaluate(_hover(-0.1), es, _evaluator(), repeats=1, seed=0, mm=NO_MM, run=LoopOptions(progress=False))
    assert sunk["metrics"]["penetration_mean"]["mean"] == pytest.approx(0.1, abs=1e-6)
    assert sunk["metrics"]["float_mean"]["mean"] == 0.0


def test_quality_off_when_asked_or_when_features_are_not_263d(tmp_path):
    es, by_text = _folder(tmp_path / "a")
    gt = lambda caps, lens, *, generator: [by_text[c][:n] for c, n in zip(caps, lens)]  # noqa: E731
    off = evaluate(gt, es, _evaluator(), repeats=1, seed=0, mm=NO_MM,
                   run=LoopOptions(progress=False, quality=False))
    assert off["config"]["quality"] is False and "jerk_mean" not in off["metrics"]
    assert "jerk_mean" not in off["reference"]
    es12, by12 = _folder(tmp_path / "b", dim=12)
    gt12 = lambda caps, lens, *, generator: [by12[c][:n] for c, n in zip(caps, lens)]  # noqa: E731
    res = evaluate(gt12, es12, _evaluator(12), repeats=1, seed=0, mm=NO_MM, run=LoopOptions(progress=False))
    assert res["config"]["quality"] is False and "jerk_mean" not in res["metrics"]
    with pytest.raises(HmuError, match="263-d"):
        evaluate(gt12, es12, _evaluator(12), repeats=1, seed=0, mm=NO_MM,
                 run=LoopOptions(progress=False, quality=True))
