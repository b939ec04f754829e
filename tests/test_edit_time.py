"""Edit time: the evaluation copies the edit's recorded wall time into metrics.json's model block as edit_time_s,
and the report's summary shows it."""
from __future__ import annotations

import json

import pytest
import torch

from src.common.paths import Paths


def _write(ck, name, meta, file="net_best_fid.tar"):
    d = ck / "synth" / name / "model"
    d.mkdir(parents=True)
    (d.parent / "opt.txt").write_text("name: " + name + "\n")
    obj = {"t2m_transformer": {"w": torch.zeros(2)}}
    if meta is not None:
        obj["hmu_meta"] = meta
    torch.save(obj, d / file)


@pytest.fixture
def paths(tmp_path):
    ck = tmp_path / "ck"
    _write(ck, "orig", None)
    _write(ck, "trained", {"config": {"lr": "1e-4"}, "wall_time_s": 99.0})      # a training run: not an edit
    _write(ck, "uce", {"method": "uce", "wall_time_s": 2.5})
    _write(ck, "uce_res", {"method": "uce", "wall_time_s": 2.5})                 # the same edit's other run
    _write(ck, "ft", {"method": "finetune", "wall_time_s": 10.0})
    _write(ck, "ft_res", {"method": "finetune", "wall_time_s": 17.0})            # running total
    _write(ck, "lcr_vq", {"method": "lcr", "wall_time_s": 0.75})
    return Paths.default(checkpoints_dir=ck, dataset_dir=tmp_path / "ds")


def test_edit_time_from_the_evaluated_checkpoints(paths):
    from src.eval.t2m_unlearn import edit_time_s

    def t(mask, res, vq):
        return edit_time_s(paths, "synth", [("mask", mask, "net_best_fid.tar"), ("res", res, "net_best_fid.tar"),
                                            ("vq", vq, "net_best_fid.tar")])

    assert t("orig", "orig", "orig") is None            # no edit
    assert t("trained", None, "orig") is None           # training meta has no method
    assert t("uce", "uce_res", "orig") == 2.5           # one edit, not 5.0
    assert t("ft", "ft_res", "orig") == 17.0            # the running total
    assert t("orig", "orig", "lcr_vq") == 0.75          # LCR edits the VQ
    assert t("orig", None, "missing_run") is None       # a run that is not there: no time, no error


def test_report_summary_shows_the_edit_time(tmp_path):
    from src.report.load import load_run
    from src.report.tables import summary_table
    from tests.test_report import write_run

    root = write_run(tmp_path / "quick")
    p = root / "synth_lcr" / "metrics.json"
    rec = json.loads(p.read_text())
    rec["model"]["edit_time_s"] = 0.75
    p.write_text(json.dumps(rec))
    recs = {r.method: r for r in load_run(root)}
    assert recs["lcr"].edit_time_s == 0.75 and recs["uce"].edit_time_s is None
    t = summary_table(list(recs.values()))
    j = t.header.index("Edit time (s) ↓")
    cells = {r[0].rstrip(" †"): r[j] for r in t.rows}
    assert cells["lcr"].strip("*").startswith("0.8") and cells["uce"] in ("–", "")


@pytest.mark.slow
def test_t2m_unlearn_writes_edit_time_and_both_judges(synth_root, tmp_path):
    """ESD (2 steps) on tiny random runs, then the evaluation: metrics.json has the edit's time and both judges."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from helpers_methods import MASK, RES, VQ, make_dataset, make_runs
    from test_attacks import _tiny_evaluator_and_classifier

    from src.eval.t2m_unlearn import main as eval_main
    from src.methods.esd import main as esd_main

    data = make_dataset(synth_root, tmp_path / "data")
    ckpt = make_runs(tmp_path / "ckpt", data)
    _tiny_evaluator_and_classifier(ckpt, data / "synth")
    loc = ["--checkpoints_dir", str(ckpt), "--dataset_dir", str(data)]
    assert esd_main(["--dataset_name", "synth", "--concept", "violence", "--trans_name", MASK, "--name", "esd_t",
                     "--steps", "2", "--batch_size", "4", *loc]) == 0
    meta = torch.load(ckpt / "synth" / "esd_t" / "model" / "net_best_fid.tar", weights_only=True)["hmu_meta"]
    assert eval_main(["--dataset_name", "synth", "--concept", "violence", "--main_split", "all", "--name", "esd_t",
                      "--res_name", RES, "--vq_name", VQ, "--method", "esd", "--repeat_times", "1", "--no_mm", "--time_steps", "2",
                      "--results_dir", str(tmp_path / "res"), "--run_name", "esd", "--no_cache", *loc]) == 0
    rec = json.loads((tmp_path / "res" / "esd" / "metrics.json").read_text())
    assert rec["model"]["edit_time_s"] == pytest.approx(meta["wall_time_s"]) and meta["wall_time_s"] > 0
    forget = rec["sets"]["forget"]["metrics"]
    assert 0 <= forget["leakage"]["mean"] <= 1 and 0 <= forget["leakage_kinematic"]["mean"] <= 1
    assert rec["leakage_classifier"]["kinematic"]["thresholds"]["kick_reach"] == 0.35
