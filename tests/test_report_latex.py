"""report.tex holds report.md's tables cell for cell; the reading (safety / paper) decides the bold cells."""
from __future__ import annotations

import json
import re

import pytest

from src.report import make_report
from src.report.latex import escape

from test_report import METHODS, bold, col, table, write_run

NUM = re.compile(r"-?\d+\.\d+|-?\d+")


def _tex_tables(tex: str) -> list[list[list[str]]]:
    """Rows (cells) of every tabular in ``tex``, header first, rules dropped; a tiny reader of our own output's shape."""
    out = []
    for body in re.findall(r"\\begin\{tabular\}\{[lr]+\}(.*?)\\end\{tabular\}", tex, flags=re.S):
        rows = []
        for line in body.strip().splitlines():
            line = line.strip()
            if line in (r"\toprule", r"\midrule", r"\bottomrule"):
                continue
            assert line.endswith(r"\\"), line
            rows.append([c.strip() for c in re.split(r"(?<!\\)&", line[:-2])])
        out.append(rows)
    return out


def _md_tables(md: str) -> list[list[list[str]]]:
    out, cur = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                cur.append(cells)
        elif cur:
            out.append(cur)
            cur = []
    return out


def test_latex_balanced_and_same_numbers_as_markdown(tmp_path):
    res = make_report(write_run(tmp_path / "quick"), video=False)
    tex, md = res["latex"].read_text(), res["report"].read_text()
    begins, ends = re.findall(r"\\begin\{(\w+)\}", tex), re.findall(r"\\end\{(\w+)\}", tex)
    assert sorted(begins) == sorted(ends) and begins.count("table") == begins.count("tabular") >= 4
    assert tex.count("{") - tex.count(r"\{") == tex.count("}") - tex.count(r"\}")
    tex_t, md_t = _tex_tables(tex), _md_tables(md)
    assert len(tex_t) == len(md_t)
    for tt, mt in zip(tex_t, md_t):
        assert len(tt) == len(mt)
        # one row per method (+ header, + ground truth where the markdown has it)
        for trow, mrow in zip(tt, mt):
            assert len(trow) == len(mrow)
            for tc, mc in zip(trow, mrow):
                assert NUM.findall(mc.replace("**", "")) == NUM.findall(tc.replace(r"\_", "_")), (tc, mc)
                assert mc.startswith("**") == (r"\textbf{" in tc), (tc, mc)
    methods = {r[0] for t in md_t[1:] for r in t[1:]}
    assert {m.rstrip(" †") for m in methods} >= set(METHODS)


@pytest.mark.parametrize("text, expected", [
    ("a_b", r"a\_b"), ("50%", r"50\%"), ("$x^2$", r"\$x\textasciicircum{}2\$"), ("R&D", r"R\&D"),
    ("{evil}", r"\{evil\}"), ("\\input{/etc/passwd}", r"\textbackslash{}input\{/etc/passwd\}"),
    ("0.5 ± 0.1", r"0.5 $\pm$ 0.1"), ("#1 ~", r"\#1 \textasciitilde{}"),
])
def test_escape_never_leaves_markup(text, expected):
    assert escape(text) == expected


def test_paper_reading_judges_forget_fid_and_r1_toward_dr(tmp_path):
    methods = dict(METHODS)
    # lcr's forget FID 25.0: the highest (safety) but 8.64 from D_r's 16.36; uce's 11.86 is 4.50 away (paper)
    methods["lcr"] = ((25.0, 0.125, 4.77, 0.10), METHODS["lcr"][1])
    # rece's R@1 0.117: the lowest (safety) and 0.001 from D_r's 0.118 (paper) -> both readings agree on it
    methods["rece"] = ((6.95, 0.117, 4.90, 0.40), METHODS["rece"][1])
    run = write_run(tmp_path / "q", methods)
    md_s = make_report(run, video=False)["report"].read_text()
    md_p = make_report(run, video=False, force=True, reading="paper")["report"].read_text()
    fs, fp = table(md_s, "Forget set"), table(md_p, "Forget set")
    assert "FID ↑" in fs[0] and "FID →D_r" in fp[0] and "R@1 →D_r" in fp[0] and "R@3 ↓" in fp[0]
    assert bold(col(fs, "FID")) == {"lcr"} and bold(col(fp, "FID")) == {"uce"}
    assert bold(col(fs, "R@1")) == {"rece"} == bold(col(fp, "R@1"))
    assert "Reading: **safety**" in md_s and "Reading: **paper**" in md_p
    assert "Best under the paper reading: FID →D_r: uce" in md_s
    assert "Best under the safety reading: FID ↑: lcr" in md_p
    # the retain set reads the same under both
    assert table(md_s, "Retain set") == table(md_p, "Retain set")


def test_paper_reading_without_dr_row_judges_nothing(tmp_path):
    methods = {k: v for k, v in METHODS.items() if k != "dr"}
    md = make_report(write_run(tmp_path / "q", methods), video=False, reading="paper")["report"].read_text()
    f = table(md, "Forget set")
    assert not bold(col(f, "FID")) and not bold(col(f, "R@1")) and bold(col(f, "R@2")) == {"uce"}


def test_summary_has_retain_r3_and_edit_time(tmp_path):
    run = write_run(tmp_path / "q")
    for m, secs in (("lcr", 8.4), ("uce", 12.0)):
        p = run / f"synth_{m}" / "metrics.json"
        rec = json.loads(p.read_text())
        rec["model"]["edit_time_s"] = secs
        p.write_text(json.dumps(rec))
    md = make_report(run, video=False)["report"].read_text()
    s = table(md, "Summary")
    r3 = col(s, "R@3")   # retain R@3 = R@1 + 0.2: lcr 0.708 is the highest competitor (original's 0.720 is a bound)
    assert r3["lcr"] == "**0.708 ± 0.005**" and bold(r3) == {"lcr"}
    edit = col(s, "Edit")
    assert bold(edit) == {"lcr"} and edit["uce"] == "12.0" and edit["finetune"] == "–"


def test_bad_reading_is_one_line(tmp_path):
    from src.common.errors import HmuError

    with pytest.raises(HmuError, match="--reading"):
        make_report(write_run(tmp_path / "q"), video=False, reading="nope")


def test_bar_titles_in_words_with_arrows_and_ground_truth_lines(tmp_path, monkeypatch):
    import matplotlib.axes

    from src.report import media

    assert media.bar_title("forget", "FID") == "Forget set: FID ↑"
    assert media.bar_title("retain", "FID") == "Retain set: FID ↓"
    assert media.bar_title("forget", "R_precision_top1") == "Forget set: R-precision top-1 ↓"
    assert media.bar_title("retain", "leakage") == "Retain set: false positives ↓"
    assert media.bar_title("retain", "Diversity") == "Retain set: Diversity →"
    titles, lines = [], []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda self, t, **kw: titles.append(t))
    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", lambda self, y, **kw: lines.append(y))
    make_report(write_run(tmp_path / "q"), video=False)
    assert "Forget set: MM-Safe ↓" in titles and not any("R_precision" in t or "MM_Dist" in t for t in titles)
    # test_report's reference rows: Diversity 6.90 (forget) / 9.60 (retain), R@1 0.6, MM-Dist 2.5, FID 0, leakage
    # 0.95 (forget) / 0.0 (retain)
    assert sorted(lines) == sorted([0.0, 0.0, 6.90, 9.60, 0.6, 0.6, 2.5, 2.5, 0.95, 0.0])
