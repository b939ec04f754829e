"""README.md's numbers are rendered from the result files committed under docs/results/ (src.report.readme)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.report import readme as R

REPO = Path(__file__).resolve().parents[1]


def test_readme_tables_equal_what_src_report_renders_from_docs_results():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    names = [m.group("name") for m in R.MARK.finditer(text)]
    assert {"quickstart", "quickstart_r3_delta", "attacks", "lcr_sweep", "tmr_split", "protocols", "benchmarks",
            "quickstart_time", "quickstart_memory", "quickstart_again", "quickstart_install"} <= set(names)
    rendered, missing = R.render(text, REPO / "docs" / "results", strict=False)
    assert not missing, f"result files missing under docs/results for: {missing}"
    assert rendered == text, "README.md is stale: python -m src.report.readme docs/results --write README.md"


def _metrics(method, model, leak_f, leak_i, leak_r, fid_f, fid_r, r3, edit=None):
    def s(mean, half):
        return {"mean": mean, "ci95": half}
    obj = {"method": method, "model": {"name": model, "ckpt": "net_best_fid.tar"},
           "sets": {"forget": {"metrics": {"leakage": s(*leak_f), "FID": s(*fid_f)}},
                    "implicit": {"metrics": {"leakage": s(*leak_i)}},
                    "retain": {"metrics": {"leakage": s(*leak_r), "FID": s(*fid_r), "R_precision_top3": s(*r3)}}}}
    if edit is not None:
        obj["edit_time_s"] = edit
    return obj


def _write_quickstart(root: Path, sub: str = "quickstart", n: dict | None = None) -> None:
    rows = {
        "original": ("t2m_tiny", (0.28, 0.03), (1.0, 0.0), (0.027, 0.002), (25.4, 4.3), (6.77, 0.7), (0.546, 0.006), None),
        "lcr": ("t2m_tiny", (0.0, 0.0), (0.0, 0.0), (0.006, 0.004), (34.0, 2.8), (7.06, 0.91), (0.532, 0.008), 4.4),
        "uce": ("uce", (0.03, 0.02), (0.3, 0.05), (0.007, 0.001), (39.9, 1.4), (7.29, 0.89), (0.552, 0.008), 1.8),
        "rece": ("rece", (0.01, 0.01), (0.14, 0.07), (0.005, 0.002), (42.0, 2.6), (7.16, 0.7), (0.530, 0.021), 1.8),
        "finetune": ("ft", (0.51, 0.03), (1.0, 0.0), (0.051, 0.004), (24.9, 1.6), (6.6, 0.35), (0.575, 0.011), 47.5),
        "retrain": ("dr", (0.45, 0.05), (1.0, 0.0), (0.064, 0.003), (23.1, 2.3), (7.24, 0.82), (0.561, 0.018), 209.3),
    }
    for m, (model, *vals, edit) in rows.items():
        d = root / sub / m
        d.mkdir(parents=True)
        obj = _metrics(m, model, *vals, edit=edit)
        for set_name, items in (n or {}).items():
            obj["sets"][set_name]["n"] = items
        (d / "metrics.json").write_text(json.dumps(obj))


def test_quickstart_table_and_r3_delta_from_constructed_files(tmp_path):
    _write_quickstart(tmp_path)
    (tmp_path / "quickstart" / "stages.json").write_text(json.dumps({"unlearn:lcr": {"seconds": 4.44}}))
    table = R.render_quickstart(tmp_path).splitlines()
    assert table[2] == ("| original (t2m_tiny) | 0.28 ± 0.03 | 1.00 ± 0.00 | 0.027 ± 0.002 | 25.4 ± 4.3 | 6.77 ± 0.70 | "
                        "0.546 ± 0.006 | – |")
    assert table[3] == ("| LCR | 0.00 ± 0.00 | 0.00 ± 0.00 | 0.006 ± 0.004 | 34.0 ± 2.8 | 7.06 ± 0.91 | "
                        "0.532 ± 0.008 | 4.4 s |")  # from stages.json
    assert table[4].endswith("| 1.8 s |")  # UCE: no stage recorded, the metrics' edit_time_s
    assert [r.split(" | ")[0] for r in table[2:]] == ["| original (t2m_tiny)", "| LCR", "| UCE", "| RECE",
                                                     "| fine-tuning", "| D_r (retain-only retrain)"]
    # |0.532 - 0.546| = 0.014, |0.552 - 0.546| = 0.006, |0.530 - 0.546| = 0.016 (RECE): the largest of the edits
    assert R.render_r3_delta(tmp_path) == "0.016"


def test_protocols_table_puts_each_fixed_figure_beside_its_hmu_figure(tmp_path):
    _write_quickstart(tmp_path, n={"forget": 49, "implicit": 50, "retain": 401})
    _write_quickstart(tmp_path, "protocols/hmu", n={"forget": 147, "implicit": 50, "retain": 1203})
    f = tmp_path / "protocols" / "hmu" / "lcr" / "metrics.json"
    obj = json.loads(f.read_text())
    obj["sets"]["forget"]["metrics"]["leakage"] = {"mean": 0.125, "ci95": 0.05}
    obj["sets"]["retain"]["metrics"]["R_precision_top3"] = {"mean": 0.4, "ci95": 0.01}
    f.write_text(json.dumps(obj))
    table = R.render_protocols(tmp_path).splitlines()
    assert table[0].startswith("| model | leakage forget ↓ (fixed / hmu) |")
    lcr = table[3].split(" | ")
    assert lcr[0] == "| LCR"
    assert lcr[1] == "0.00 ± 0.00 / 0.12 ± 0.05"  # forget leakage: fixed, then the changed hmu value
    assert lcr[6] == "0.532 ± 0.008 / 0.400 ± 0.010 |"  # retain R@3
    assert table[2].split(" | ")[5] == "6.77 ± 0.70 / 6.77 ± 0.70"  # original's retain FID, the same in both copies
    assert R.render_set_size("retain")(tmp_path) == "401" and R.render_set_size("forget")(tmp_path) == "49"
    assert table[-1] == "| *items per repeat* | 49 / 147 | 50 / 50 | 401 / 1203 | 49 / 147 | 401 / 1203 | 401 / 1203 |"
    with pytest.raises(FileNotFoundError):
        R.render_protocols(tmp_path / "protocols")  # no quickstart there


def test_benchmarks_quote_the_recorded_result_lines(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "eval.txt").write_text(
        "# command: python bench/eval.py --repeats 10\n# date: 2026-12-02T23:40:01Z; commit: abc1234\n# machine: 2\n"
        "synth test sets: forget 49 items\nforget  upstream-style 9.00 s | ours\n"
        "total   upstream-style 41.20 s | ours cold 12.80 s | ours cached 12.40 s\n"
        "ratio (upstream-style / ours, cold): 3.2x; with the ground-truth cache warm: 3.3x\n")
    (bench / "quickstart.txt").write_text(
        "# date: 2026-12-02T22:53:15Z; commit: 79de013\n[hmu] quickstart finished in 517 s\n"
        "venv install + quickstart: exit 0, wall 578.2 s (9.64 min), peak memory 2020 MiB summed over all running "
        "stages (largest single process 1164 MiB); second run (all stages skipped): 0.1 s (exit 0)\n")
    rows = {r.split(" | ")[0]: r for r in R.render_benchmarks(tmp_path).splitlines()[2:]}
    ev = rows["| `python bench/eval.py --repeats 10`"]
    assert "`total   upstream-style 41.20 s ¦ ours cold 12.80 s ¦ ours cached 12.40 s`<br>`ratio (upstream-style" in ev
    assert "forget  upstream-style" not in ev and "(2026-12-02, abc1234; `docs/results/bench/eval.txt`)" in ev
    assert "not recorded (`bash bench/record.sh lcr_select python -m bench.lcr --part select`)" in \
        rows["| `python -m bench.lcr --part select`"]
    assert "`venv install + quickstart: exit 0, wall 578.2 s" in rows["| `bash bench/quickstart.sh --install`"]
    assert R.render_quickstart_time(tmp_path) == "9 min 38 s"  # 578.2 s
    assert R.render_quickstart_memory(tmp_path) == "2.0 GiB"   # 2020 MiB / 1024
    assert R.render_quickstart_again(tmp_path) == "0.1 s"
    assert R.render_quickstart_install(tmp_path) == "61 s"     # 578.2 - 517
    (bench / "quickstart.txt").write_text("no summary\n")
    with pytest.raises(R.HmuError):
        R.render_quickstart_time(tmp_path)


def test_bench_protocols_changes_only_the_protocol_and_the_output():
    import sys

    sys.path.insert(0, str(REPO))
    from bench.protocols import rewrite_command

    rec = ["/v/bin/python", "/r/src/eval/t2m_unlearn.py", "--dataset_name", "synth", "--method", "lcr", "--seed", "0",
           "--protocol", "fixed", "--mm_safe=default", "--results_dir", "/r/results/quickstart", "--run_name", "lcr",
           "--force", "--mm_prompts", "8"]
    got = rewrite_command(rec, protocol="hmu", out=Path("/o"), cache_dir=Path("/c"))
    assert got[1:3] == ["-m", "src.eval.t2m_unlearn"]
    assert got[3:] == ["--dataset_name", "synth", "--method", "lcr", "--seed", "0", "--run_name", "lcr",
                       "--mm_prompts", "8", "--protocol", "hmu", "--results_dir", "/o", "--cache_dir", "/c",
                       "--no_progress"]


def test_render_rewrites_only_marked_blocks_and_check_fails_when_stale(tmp_path, capsys):
    _write_quickstart(tmp_path / "docs")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- hmu:quickstart -->\nold table\n<!-- hmu:end -->\nR@3 moves by "
                      "<!-- hmu:quickstart_r3_delta -->0.5<!-- hmu:end -->; end\n")
    assert R.main([str(tmp_path / "docs"), "--check", str(readme)]) == 1
    assert "stale" in capsys.readouterr().out
    assert R.main([str(tmp_path / "docs"), "--write", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n<!-- hmu:quickstart -->\n| model |") and "old table" not in text
    assert "R@3 moves by <!-- hmu:quickstart_r3_delta -->0.016<!-- hmu:end -->; end\n" in text
    assert R.main([str(tmp_path / "docs"), "--check", str(readme)]) == 0


def test_missing_files_and_unknown_markers(tmp_path):
    text = "<!-- hmu:lcr_sweep -->\nx\n<!-- hmu:end -->\n"
    out, missing = R.render(text, tmp_path, strict=False)
    assert out == text and missing and missing[0].startswith("lcr_sweep")
    from src.common.errors import HmuError

    with pytest.raises(HmuError, match="missing"):
        R.render(text, tmp_path, strict=True)
    with pytest.raises(HmuError, match="unknown"):
        R.render("<!-- hmu:nope -->x<!-- hmu:end -->", tmp_path, strict=False)


def test_json_tables_render_rows_as_written(tmp_path):
    (tmp_path / "lcr_sweep").mkdir()
    (tmp_path / "lcr_sweep" / "sweep.json").write_text(json.dumps(
        {"columns": ["setting", "codes"], "rows": [["original", "–"], ["ratio", "14"]]}))
    assert R.render_lcr_sweep(tmp_path) == "| setting | codes |\n|---|---:|\n| original | – |\n| ratio | 14 |"


def test_quickstart_table_adds_the_kinematic_judge_and_opt_in_methods_when_measured(tmp_path):
    import json
    import shutil

    from src.report.readme import render_quickstart

    src = Path(__file__).resolve().parents[1] / "docs" / "results" / "quickstart"
    dst = tmp_path / "quickstart"
    shutil.copytree(src, dst)
    for p in dst.glob("*/metrics.json"):  # start from records without the second judge
        rec = json.loads(p.read_text())
        for block in rec["sets"].values():
            block.get("metrics", {}).pop("leakage_kinematic", None)
        p.write_text(json.dumps(rec))
    before = render_quickstart(tmp_path)
    assert "kinematic" not in before and "ESD" not in before
    for m in ("original", "lcr"):
        p = next(dst.glob(f"{m}/metrics.json"))
        rec = json.loads(p.read_text())
        rec["sets"]["forget"]["metrics"]["leakage_kinematic"] = {"mean": 0.125 if m == "lcr" else 0.5, "ci95": 0.0}
        p.write_text(json.dumps(rec))
    (dst / "esd").mkdir()
    shutil.copy(next(dst.glob("uce/metrics.json")), dst / "esd" / "metrics.json")
    rec = json.loads((dst / "esd" / "metrics.json").read_text())
    rec["method"] = "esd"
    (dst / "esd" / "metrics.json").write_text(json.dumps(rec))
    lines = render_quickstart(tmp_path).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head[2] == "kinematic forget ↓"
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.strip("|").split("|")] for r in lines[2:]}
    assert rows["LCR"][2] == "0.12 ± 0.00" and rows["UCE"][2] == "–"
    assert rows["ESD"][1:] == rows["UCE"][1:-1] + [rows["ESD"][-1]]  # the copied record's numbers, its own edit time
