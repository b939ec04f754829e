"""t2m_unlearn CLI: instant --help, one-line errors naming what is missing, metrics.json schema and --force."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from src.common.errors import HmuError
from src.eval.results import SCHEMA, build_record, flatten, metrics_path, write_metrics


def test_help_is_instant(cli):
    t0 = time.time()
    r = cli("src.eval.t2m_unlearn", "--help")
    assert r.returncode == 0 and "--repeat_times" in r.stdout and "--mm_safe" in r.stdout
    assert time.time() - t0 < 10


@pytest.mark.parametrize("setup,needle", [
    ("none", "dataset folder not found"),
    ("folder", "keyword split not found"),
    ("splits", "evaluator checkpoint not found"),
])
def test_one_line_errors(tmp_path, cli, setup, needle):
    ds = tmp_path / "dataset"
    if setup != "none":
        (ds / "synth" / "kw_splits").mkdir(parents=True)
    if setup == "splits":
        for k in ("w", "wo"):
            (ds / "synth" / "kw_splits" / f"test-{k}-violence.txt").write_text("000000\n")
    r = cli("src.eval.t2m_unlearn", "--dataset_name", "synth", "--dataset_dir", str(ds), "--checkpoints_dir",
            str(tmp_path / "ck"), "--results_dir", str(tmp_path / "res"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr


def test_existing_results_refused_before_any_work(tmp_path, cli):
    out = tmp_path / "res" / "myrun" / "metrics.json"
    out.parent.mkdir(parents=True)
    out.write_text("{}")
    r = cli("src.eval.t2m_unlearn", "--run_name", "myrun", "--results_dir", str(tmp_path / "res"))
    assert r.returncode == 2 and "already exists" in r.stderr and "--force" in r.stderr


def test_metrics_json_schema_roundtrip(tmp_path):
    from src.eval.loop import NO_MM, LoopOptions, SafetyOptions, evaluate
    from src.eval.sets import load_eval_set
    from tests.test_eval_loop import gt_generator, tiny_evaluator, write_folder

    by_text = write_folder(tmp_path / "d", n=20)
    ev = tiny_evaluator()
    sets = {name: evaluate(gt_generator(by_text), load_eval_set(tmp_path / "d", split, name=name), ev, repeats=2,
                           seed=0, mm=NO_MM,
                           safety=SafetyOptions(terms=["kick"], leakage=lambda ms: np.ones(len(ms), bool)),
                           run=LoopOptions(progress=False))
            for name, split in (("forget", "kw_splits/test-w-kick"), ("retain", "test"))}
    rec = build_record(run="r1", seed=0, config={"repeat_times": 2}, sets=sets, model={"method": "original"})
    path = write_metrics(metrics_path(tmp_path / "res", "r1"), rec)
    with pytest.raises(HmuError, match="already exists"):
        write_metrics(path, rec)
    back = json.loads(path.read_text())
    assert back["schema"] == SCHEMA and back["seed"] == 0 and back["run"] == "r1"
    assert set(back) >= {"created", "command", "config", "model", "evaluator", "versions", "git", "sets"}
    assert back["versions"]["numpy"] == np.__version__
    for name in ("forget", "retain"):
        m = back["sets"][name]["metrics"]
        for k in ("FID", "Diversity", "R_precision_top1", "R_precision_top2", "R_precision_top3", "MM_Dist",
                  "MM_Safe", "leakage"):
            s = m[k]
            assert len(s["values"]) == 2 and {"mean", "ci95", "bootstrap", "n", "repeats"} <= set(s)
        assert m["leakage"]["mean"] == 1.0 and m["leakage"]["decisions"] == 2 * m["leakage"]["n"]
        assert back["sets"][name]["reference"]["R_precision_top3"]["mean"] is not None
    flat = flatten(back)
    assert "forget/FID/mean" in flat and "retain/reference/MM_Dist/ci95" in flat


def test_bad_run_name():
    with pytest.raises(HmuError, match="plain folder name"):
        metrics_path("/tmp", "a/b")


@pytest.mark.parametrize("dataset,argv,protocol,mm_prompts,mm_safe", [
    ("HumanML3D", [], "hmu", 96, "upstream"),                   # upstream's: 3 batches of 32
    ("synth", [], "fixed", 16, "default"),
    ("synth", ["--protocol", "hmu", "--batch_size", "8"], "hmu", 24, "upstream"),
    ("HumanML3D", ["--protocol", "fixed"], "fixed", 16, "default"),
    ("HumanML3D", ["--mm_prompts", "5", "--mm_safe", "default"], "hmu", 5, "default"),
])
def test_protocol_defaults(dataset, argv, protocol, mm_prompts, mm_safe):
    from src.eval.t2m_unlearn import parse

    args = parse(["--dataset_name", dataset, *argv]).resolved()
    assert (args.protocol, args.mm_prompts, args.mm_safe) == (protocol, mm_prompts, mm_safe)


def test_multimodality_generator_is_a_gumbel_copy():
    from src.eval.t2m_unlearn import gumbel_copy

    class Gen:
        gumbel_sample = False

    g = Gen()
    mm = gumbel_copy(g)
    assert mm.gumbel_sample is True and g.gumbel_sample is False


def test_metrics_json_has_upstream_toxic_figures(tmp_path):
    from src.eval.loop import NO_MM, LoopOptions, SafetyOptions, evaluate
    from src.eval.sets import load_eval_set
    from tests.test_eval_loop import gt_generator, tiny_evaluator, write_folder

    by_text = write_folder(tmp_path / "d", n=20)
    res = evaluate(gt_generator(by_text), load_eval_set(tmp_path / "d", "kw_splits/test-w-kick", protocol="hmu"),
                   tiny_evaluator(), repeats=2, seed=0, mm=NO_MM, safety=SafetyOptions(terms=["kick"]),
                   run=LoopOptions(progress=False))
    for k in ("toxic_distance", "notox_accuracy"):
        assert len(res["metrics"][k]["values"]) == 2 and res["metrics"][k]["definition"] == "upstream"
    assert res["config"]["protocol"] == "hmu"
