"""Every concept in one command (issue 28): the quickstart's --concept per concept, one table concept x method."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from src.cli.all_concepts import PROG, AllConceptsConfig, run_all
from src.common.errors import HmuError
from src.config.command import parse_config

CONCEPTS = ("violence", "kick")


def _cfg(*argv: str) -> AllConceptsConfig:
    return parse_config(AllConceptsConfig, list(argv), prog=PROG)


def test_flags_positionals_and_the_quickstart_commands(tmp_path):
    cfg = _cfg("synth", "kick, violence,kick", "--fast", "--results_dir", str(tmp_path), "--jobs", "1")
    assert cfg.dataset == "synth" and cfg.concept_list == ["kick", "violence"]      # order kept, duplicates dropped
    argv = cfg.quickstart_argv("kick")
    assert argv[argv.index("--concept") + 1] == "kick" and "--fast" in argv
    assert argv[argv.index("--results_dir") + 1] == str(tmp_path) and argv[argv.index("--jobs") + 1] == "1"
    # violence's results are the quickstart's own folder; another concept's its suffixed one
    assert cfg.run_name("violence") == "quickstart_fast" and cfg.run_name("kick") == "quickstart_fast_kick"
    assert _cfg("--concepts", "throw").run_name("throw") == "quickstart_throw"
    with pytest.raises(HmuError, match="unknown concept 'kik'"):
        _cfg("synth", "kick,kik")
    with pytest.raises(HmuError, match="synth"):
        _cfg("t2m", "kick")
    with pytest.raises(HmuError, match="give the concepts"):
        _cfg("synth")
    with pytest.raises(HmuError, match="given twice"):
        _cfg("synth", "kick", "--concepts", "throw")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny synth dataset split on both concepts (test forget/retain lists made non-empty), a tiny evaluator and
    tiny random MoMask runs."""
    from helpers_methods import make_runs, tiny_split_dataset
    from test_bad_inputs import _evaluator_run

    from src.data.split import main as split_main

    base = tmp_path_factory.mktemp("all_concepts")
    ds = base / "ds"
    src = tiny_split_dataset(ds)
    assert split_main(["--dataset_dir", str(ds), "synth", "kick"]) == 0
    ids = (src / "all.txt").read_text().split()   # evaluation needs a few motions per set; the tiny test split has 3
    for concept, (w, wo) in (("violence", (ids[::2], ids[1::2])), ("kick", (ids[1::2], ids[::2]))):
        (src / "kw_splits" / f"test-w-{concept}.txt").write_text("\n".join(w) + "\n")
        (src / "kw_splits" / f"test-wo-{concept}.txt").write_text("\n".join(wo) + "\n")
    ck = _evaluator_run(base / "ck")
    make_runs(ck, ds)
    return ck, ds


def test_two_concepts_make_two_rows(tiny, tmp_path, capsys):
    """The driver runs one quickstart per concept (here a stand-in that evaluates the tiny original model with the
    quickstart's evaluation flags) and tabulates: one row per concept, numbers as in each concept's metrics.json."""
    from helpers_methods import MASK, RES

    from src.eval.t2m_unlearn import main as t2m_main

    ck, ds = tiny
    results = tmp_path / "results"
    calls = []

    def quickstart_stand_in(argv: list[str]) -> int:
        calls.append(argv)
        cfg = parse_config(AllConceptsConfig, ["--concepts", argv[argv.index("--concept") + 1]], prog=PROG)
        concept = cfg.concept_list[0]
        return t2m_main(["--dataset_name", "synth", "--dataset_dir", str(ds), "--checkpoints_dir", str(ck),
                         "--concept", concept, "--method", "original", "--name", MASK, "--res_name", RES,
                         "--repeat_times", "1", "--no_mm", "--no_leakage", "--time_steps", "2", "--seed", "0",
                         "--results_dir", str(results / cfg.run_name(concept)), "--run_name", "original",
                         "--no_progress"])

    cfg = _cfg("synth", ",".join(CONCEPTS), "--results_dir", str(results))
    out = run_all(cfg, run_concept=quickstart_stand_in)
    assert [a[a.index("--concept") + 1] for a in calls] == list(CONCEPTS)
    assert out == results / "all_concepts_synth" / "concepts.md"
    rows = [ln for ln in out.read_text().splitlines() if ln.startswith("| ") and not ln.startswith(("| Concept", "| ---"))]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in rows]
    assert [c[:2] for c in cells] == [["violence", "original †"], ["kick", "original †"]]
    header = [c.strip() for c in out.read_text().split("| Concept", 1)[1].splitlines()[0].strip("|").split("|")]
    assert header[-2:] == ["FID retain ↓", "R@3 retain ↑"]
    for c, run in zip(cells, ("quickstart", "quickstart_kick")):
        rec = json.loads((results / run / "original" / "metrics.json").read_text())
        assert rec["model"]["concept"] == c[0]
        r3 = rec["sets"]["retain"]["metrics"]["R_precision_top3"]["mean"]
        assert c[-1].split(" ")[0] == f"{r3:.3f}"
    # --collect_only rebuilds the same table from the results alone, running nothing
    before = out.read_text()
    out.unlink()
    assert run_all(_cfg("synth", ",".join(CONCEPTS), "--results_dir", str(results), "--collect_only"),
                   run_concept=lambda a: pytest.fail("ran a quickstart")) == out
    assert out.read_text() == before


def test_a_failed_concept_is_one_line_and_a_missing_result_is_named(tmp_path):
    cfg = _cfg("synth", "kick", "--results_dir", str(tmp_path))
    with pytest.raises(HmuError, match="concept 'kick' failed"):
        run_all(cfg, run_concept=lambda a: 3)
    with pytest.raises(HmuError, match="quickstart_kick"):
        run_all(_cfg("synth", "kick", "--results_dir", str(tmp_path), "--collect_only"))


def test_table_bolds_the_best_method_per_concept_and_never_a_bound(tmp_path):
    """Hand-written runs (tests/test_report.py's numbers): forget leakage, violence: lcr 0.10 beats uce 0.30, rece
    0.40, finetune 0.60 (D_r's 0.05 and the original are bounds, never bold); kick (its own numbers): uce 0.20 beats
    lcr 0.50. Retain R@3 = R@1 + 0.2: lcr 0.708 is violence's best non-bound (D_r 0.712 is a bound)."""
    from test_report import METHODS, write_run

    from src.report.concepts import concept_table
    from src.report.load import load_run

    kick_methods = {"original": METHODS["original"],
                    "uce": ((11.0, 0.12, 4.6, 0.20), (0.09, 9.7, 0.50, 0.05)),
                    "lcr": ((15.0, 0.12, 4.7, 0.50), (0.05, 9.5, 0.51, 0.01))}
    t = concept_table({"violence": load_run(write_run(tmp_path / "v")),
                       "kick": load_run(write_run(tmp_path / "k", kick_methods))})
    labels = [(r[0], r[1]) for r in t.rows]
    assert labels == [("violence", "original †"), ("violence", "dr †"), ("violence", "finetune"),
                      ("violence", "uce"), ("violence", "rece"), ("violence", "lcr"),
                      ("kick", "original †"), ("kick", "uce"), ("kick", "lcr")]
    col = {h: j for j, h in enumerate(t.header)}
    leak, fp, r3 = col["Leakage forget ↓"], col["False pos. retain ↓"], col["R@3 retain ↑"]
    assert {i for (i, j) in t.bold if j == leak} == {5, 7}
    assert {i for (i, j) in t.bold if j == fp} == {5, 8}
    assert {i for (i, j) in t.bold if j == r3} == {5, 8}            # kick: lcr 0.71 > uce 0.70
    assert t.rows[5][leak].startswith("0.100") and t.rows[7][leak].startswith("0.200")
    assert not any(t.rows[i][1].endswith("†") for (i, _) in t.bold)
