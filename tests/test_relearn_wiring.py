"""Issue 27: the re-learning attacks as opt-in choices of python -m src.attacks, in attacks.json and its table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from src.common.errors import HmuError

sys.path.insert(0, str(Path(__file__).parent))


def test_relearn_attacks_are_choices_but_not_default():
    from src.attacks.__main__ import parse, parse_attacks

    assert parse_attacks("relearn_ft,relearn_rl,implicit") == ["relearn_ft", "relearn_rl", "implicit"]
    default = parse(["--models", "a=x"])
    assert not {"relearn_ft", "relearn_rl"} & set(parse_attacks(default.attacks))   # they train: opt-in
    assert default.relearn_steps == "0,5,10"
    with pytest.raises(HmuError, match="budget of 0"):
        parse(["--models", "a=x", "--relearn_steps", "0"])


def _rate(k, n):
    return {"mean": k / n, "k": k, "decisions": n, "wilson": [0.0, 1.0], "n": n}


def test_attacks_table_shows_the_curve_ends():
    from src.attacks.record import summary_table
    from src.report.attacks import attacks_markdown

    entry = {"attack": "relearn_ft", "set": "forget_heldout", "steps": [0, 5, 10], "leakage": _rate(3, 4),
             "curve": [{"step": 0, "leakage": {"forget_heldout": _rate(1, 4)}},
                       {"step": 10, "leakage": {"forget_heldout": _rate(3, 4)}}]}
    rec = {"seed": 0, "leakage_classifier": {"concept": "violence"}, "results": {"lcr": {"relearn_ft": entry}}}
    md = attacks_markdown(rec)
    head = next(ln for ln in md.splitlines() if ln.startswith("| model"))
    assert "relearn FT: first step (N=4)" in head and "relearn FT: step 10 (N=4)" in head
    row = next(ln for ln in md.splitlines() if ln.startswith("| lcr"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1].startswith("0.25") and cells[2].startswith("0.75")
    assert summary_table(rec["results"])[0]["attack"] == "relearn_ft"


@pytest.mark.slow
def test_cli_relearn_ft_on_tiny_runs(synth_root, tmp_path, cli):
    """relearn_ft through python -m src.attacks on tiny random runs: a curve at every asked step, in attacks.json."""
    from helpers_methods import MASK, RES, make_dataset, make_runs
    from test_attacks import _tiny_evaluator_and_classifier

    data = make_dataset(synth_root, tmp_path / "data")
    ckpt = make_runs(tmp_path / "ckpt", data)
    _tiny_evaluator_and_classifier(ckpt, data / "synth")
    r = cli("src.attacks", "--dataset_name", "synth", "--concept", "violence", "--models", f"original={MASK}+res={RES}",
            "--attacks", "relearn_ft", "--relearn_steps", "0,2", "--shots", "2", "--repeats", "1",
            "--time_steps", "2", "--checkpoints_dir", str(ckpt), "--dataset_dir", str(data),
            "--results_dir", str(tmp_path / "res"), "--run_name", "a", env={"OMP_NUM_THREADS": "1"}, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads((tmp_path / "res" / "a" / "attacks.json").read_text())
    entry = rec["results"]["original"]["relearn_ft"]
    assert entry["attack"] == "relearn_ft" and [p["step"] for p in entry["curve"]] == [0, 2]
    assert entry["config"]["shots"] == 2 and 0.0 <= entry["leakage"]["mean"] <= 1.0
    assert "relearn FT: step 2" in (tmp_path / "res" / "a" / "attacks.md").read_text()
