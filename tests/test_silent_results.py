"""The "silent wrong results" of issue 26's hostile probe: each is now refused, warned about or shown for what it is.
Expected values are written by hand here."""
from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from src.common.errors import HmuError


# ------------------------------------------------------------------------------ negative segment times in captions
@pytest.mark.parametrize("tail", ["-1.0#2.0", "-20.0#2.0", "0.0#-3.0", "-0.5#-0.1"])
def test_negative_segment_time_is_refused_by_every_reader(tmp_path, tail):
    from src.data.humanml3d import HumanML3DFolder, parse_caption_line, read_captions
    from src.eval.sets import load_eval_set

    with pytest.raises(HmuError, match="negative time"):
        parse_caption_line(f"a person kicks#a/DET person/NOUN kick/VERB#{tail}", "1 in x.txt")
    f = HumanML3DFolder(tmp_path, create=True)
    f.write_motion("000000", np.zeros((60, 12), np.float32))
    f.write_motion("000001", np.zeros((60, 12), np.float32))
    (tmp_path / "texts").mkdir(exist_ok=True)
    (tmp_path / "texts" / "000000.txt").write_text("a person walks#a/DET person/NOUN walk/VERB#0.0#0.0\n"
                                                    f"a person kicks#a/DET person/NOUN kick/VERB#{tail}\n")
    (tmp_path / "texts" / "000001.txt").write_text("a person runs#a/DET person/NOUN run/VERB#0.0#0.0\n")
    f.write_split("test", ["000000", "000001"])
    bad = tmp_path / "texts" / "000000.txt"
    with pytest.raises(HmuError) as e:
        read_captions(bad)
    assert f"2 in {bad}" in str(e.value)
    for protocol in ("fixed", "hmu"):
        with pytest.raises(HmuError, match="negative time"):
            load_eval_set(tmp_path, "test", protocol=protocol)


def test_zero_and_positive_segment_times_still_read():
    from src.data.humanml3d import parse_caption_line

    c = parse_caption_line("a person kicks#a/DET kick/VERB#0.0#2.5")
    assert (c.start, c.end) == (0.0, 2.5)
    c = parse_caption_line("a person kicks#a/DET kick/VERB#nan#nan")     # upstream: nan reads as 0
    assert (c.start, c.end) == (0.0, 0.0)


# ------------------------------------------------------------------------------ RECE on a mismatched UCE pair
def test_rece_refuses_a_source_pair_left_by_two_edits(tmp_path):
    from src.common.paths import Paths
    from src.methods.text_edit import load_sources
    from src.models.checkpoint import run_dir_candidates
    from src.models.edit_pair import write_edit

    paths = Paths.default(checkpoints_dir=tmp_path / "ck", dataset_dir=tmp_path / "ds")
    for name, eid in (("u", "a" * 32), ("u_res", "b" * 32)):
        d = run_dir_candidates(paths, "synth", name)[0]
        d.mkdir(parents=True)
        write_edit(d / "edit.json", {"edit_id": eid, "method": "uce", "runs": ["u", "u_res"]})
    args = argparse.Namespace(model="momask", dataset_name="synth", trans_name="u", res_name="u_res",
                              ckpt="latest.tar")
    with pytest.raises(HmuError, match="different edit ids"):
        load_sources(paths, args)


# ------------------------------------------------------------------------------ hmu protocol on a small set
def test_a_set_smaller_than_the_batch_is_said(tmp_path, caplog):
    from test_eval_protocol import _caption, _folder, _oracle, _words

    from src.eval import cache as eval_cache
    from src.eval.loop import NO_MM, LoopOptions, evaluate
    from src.eval.sets import load_eval_set

    eval_cache.clear_memo()
    words = _words(9)
    _folder(tmp_path, [[_caption(i)] for i in range(9)])
    es = load_eval_set(tmp_path, "test", protocol="hmu")

    def gen(captions, lengths, *, generator):
        return [np.zeros((int(k), 12), np.float32) for k in lengths]

    with caplog.at_level(logging.WARNING):
        res = evaluate(gen, es, _oracle(words), repeats=1, seed=0, mm=NO_MM, run=LoopOptions(progress=False))
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("has 9 items, fewer than a batch of 32" in m for m in msgs), msgs
    assert res["config"]["r_precision_batch"] == 9
    eval_cache.clear_memo()


# ------------------------------------------------------------------------------ --noise -1
@pytest.mark.parametrize("value, ok", [(-1.0, False), (-1e-9, False), (0.0, True), (0.05, True)])
def test_classifier_noise_must_not_be_negative(value, ok):
    from src.common.validate import check_args

    if ok:
        check_args({"noise": value})
    else:
        with pytest.raises(HmuError, match="--noise"):
            check_args({"noise": value})


# ------------------------------------------------------------------------------ NaN is not "not measured"
def _record(tmp_path: Path, fid) -> Path:
    p = tmp_path / "metrics.json"
    obj = {"method": "lcr", "model": {"name": "m"}, "dataset_name": "synth", "concept": "kick",
           "sets": {"forget": {"metrics": {"FID": {"mean": fid, "ci95": 0.1},
                                           "MM_Dist": {"mean": 3.0, "ci95": 0.1}}}}}
    p.write_text(json.dumps(obj))                  # json writes float('nan') as NaN, as the evaluation does
    return p


def test_report_table_shows_nan_as_nan(tmp_path):
    from src.report.load import read_metrics_file
    from src.report.tables import set_table, table_markdown

    (rec,) = read_metrics_file(_record(tmp_path, math.nan))
    lines = table_markdown(set_table([rec], "forget"))
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    fid = next(i for i, h in enumerate(header) if h.startswith("FID"))
    assert row[fid] == "NaN"
    (rec,) = read_metrics_file(_record(tmp_path, None))      # absent: the column is not shown
    assert not any(h.startswith("FID") for h in set_table([rec], "forget").header)


def test_plot_says_nan_not_not_measured(tmp_path, monkeypatch):
    import matplotlib.axes

    from src.viz.plots import metric_bars

    texts = []
    orig = matplotlib.axes.Axes.text

    def spy(self, x, y, s, *a, **k):
        texts.append(s)
        return orig(self, x, y, s, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "text", spy)
    rec = {"method": "lcr", "forget": {"FID": {"mean": math.nan}, "MM_Dist": {"mean": 1.0}}}
    metric_bars([rec], ["FID", "MM_Dist"], tmp_path / "b.png", sets=("forget",))
    assert any("NaN" in t for t in texts) and not any("not measured" in t for t in texts), texts


# ------------------------------------------------------------------------------ R-precision on tiny pools
def test_r_precision_counts_on_a_pool_of_two_by_hand():
    from src.metrics.t2m import r_precision_counts

    t = np.array([[0.0], [1.0]])
    m = np.array([[1.0], [0.0]])          # each caption's own motion is the farther one: miss at 1, hit at 2 and 3
    assert r_precision_counts(t, m, 3).tolist() == [0, 2, 2]
    assert r_precision_counts(t, t, 3).tolist() == [2, 2, 2]


def test_validation_size(caplog):
    from src.metrics.t2m import check_validation_size

    with pytest.raises(HmuError, match="at least 2"):
        check_validation_size(1, "split val of d")
    with caplog.at_level(logging.WARNING):
        check_validation_size(2, "split val of d")
    assert any("only 2 usable motions" in r.getMessage() for r in caplog.records)


def test_train_evaluator_with_two_validation_motions(tmp_path, cli):
    """The hostile probe's crash: val.txt with 2 motions (R@3 on a pool of 2). Now a warning, and a run."""
    from helpers_evaluator import train_toy_evaluator

    r = train_toy_evaluator(cli, tmp_path, n=42, max_epoch=1, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "only 2 usable motions" in r.stderr
