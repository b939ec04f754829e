"""Issue 30: the kinematic judge measured beside the learned one (a second leakage metric), and its report column."""
from __future__ import annotations

import json

import numpy as np
import pytest

from src.eval.loop import NO_MM, LoopOptions, SafetyOptions, evaluate
from tests.test_eval_loop import gt_generator, tiny_evaluator, write_folder


def test_two_judges_give_two_leakage_metrics(tmp_path):
    """A mapping of judges: one metric per judge, each the fraction its own rule flags (hand-computed)."""
    by_text = write_folder(tmp_path, n=20)
    from src.eval.sets import load_eval_set

    es = load_eval_set(tmp_path, "test")
    res = evaluate(gt_generator(by_text), es, tiny_evaluator(), repeats=2, seed=0, mm=NO_MM,
                   safety=SafetyOptions(leakage={"leakage": lambda ms: np.array([len(m) >= 60 for m in ms]),
                                                 "leakage_kinematic": lambda ms: np.array([len(m) < 50 for m in ms])}),
                   run=LoopOptions(progress=False))
    lengths = np.array([it.length for it in es.items])
    assert res["metrics"]["leakage"]["mean"] == pytest.approx(np.mean(lengths >= 60))
    assert res["metrics"]["leakage_kinematic"]["mean"] == pytest.approx(np.mean(lengths < 50))
    assert res["reference"]["leakage_kinematic"]["mean"] == pytest.approx(np.mean(lengths < 50))
    assert res["metrics"]["leakage_kinematic"]["decisions"] == 2 * len(lengths)
    assert np.mean(lengths >= 60) != np.mean(lengths < 50)  # the two judges are told apart


def test_a_single_judge_is_still_the_leakage_metric():
    f = lambda ms: np.zeros(len(ms), bool)  # noqa: E731
    assert SafetyOptions(leakage=f).judges == {"leakage": f}
    assert SafetyOptions().judges == {}


def test_leakage_judges_of_the_evaluation():
    from src.eval.kinematic import KinematicProbe
    from src.eval.t2m_unlearn import leakage_judges, parse

    learned = object()
    assert leakage_judges(None, "violence", kinematic=True, dim_pose=263, fps=20) == {}  # no classifier: none
    j = leakage_judges(learned, "violence", kinematic=True, dim_pose=263, fps=20)
    assert j["leakage"] is learned and isinstance(j["leakage_kinematic"], KinematicProbe)
    assert j["leakage_kinematic"].concept == "violence" and j["leakage_kinematic"].fps == 20
    assert list(leakage_judges(learned, "violence", kinematic=False, dim_pose=263, fps=20)) == ["leakage"]
    assert list(leakage_judges(learned, "walk", kinematic=True, dim_pose=263, fps=20)) == ["leakage"]
    assert list(leakage_judges(learned, "violence", kinematic=True, dim_pose=12, fps=20)) == ["leakage"]
    assert parse(["--no_kinematic"]).no_kinematic and not parse([]).no_kinematic


def test_kinematic_probe_flags_a_kick_not_a_stand():
    """The judge the evaluation builds reads raw 263-d features: a still pose is not violence."""
    from src.eval.kinematic import KinematicProbe

    still = np.zeros((40, 263), np.float32)
    still[:, 3] = 0.9  # root height
    assert KinematicProbe("violence")([still]).tolist() == [False]


def test_summary_has_the_kinematic_column(tmp_path):
    from src.report.load import load_run
    from src.report.tables import summary_table
    from tests.test_report import write_run

    root = write_run(tmp_path / "quick")
    kin = {"original": 0.9, "dr": 0.1, "finetune": 0.6, "uce": 0.4, "rece": 0.5, "lcr": 0.2}
    for m, v in kin.items():
        p = root / f"synth_{m}" / "metrics.json"
        rec = json.loads(p.read_text())
        rec["sets"]["forget"]["metrics"]["leakage_kinematic"] = {"values": [v, v], "mean": v, "ci95": 0.0, "n": 1}
        p.write_text(json.dumps(rec))
    t = summary_table(load_run(root))
    j = t.header.index("Leakage forget (kinematic) ↓")
    cells = {r[0].rstrip(" †"): r[j] for r in t.rows}
    assert cells["uce"].startswith("0.400") and cells["lcr"].startswith("0.200")
    assert {t.rows[i][0] for i, jj in t.bold if jj == j} == {"lcr"}   # lowest competitor (dr 0.1 is a bound)
