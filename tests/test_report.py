"""src.report: tables of a tiny hand-written run (every method and metric, the right cell bold, intervals), plots,
one-line errors, atomic replace/--force, and animations from a fake generator read back frame by frame."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from src.common.errors import HmuError
from src.report import main, make_report, media
from src.report.load import load_run

# Hand-picked means (forget, retain) per method; the bold cells below are worked out by hand from these numbers.
METHODS = {
    #            forget: FID   R@1    MM_Safe leak  | retain: FID   Div   R@1    leak
    "original": ((1.16, 0.176, 5.59, 0.90), (0.041, 9.63, 0.520, 0.02)),
    "dr":       ((16.36, 0.118, 4.50, 0.05), (0.075, 9.55, 0.512, 0.03)),
    "finetune": ((2.30, 0.150, 5.00, 0.60), (0.070, 9.68, 0.501, 0.04)),
    "uce":      ((11.86, 0.120, 4.63, 0.30), (0.090, 9.73, 0.497, 0.05)),
    "rece":     ((6.95, 0.148, 4.90, 0.40), (0.144, 9.81, 0.493, 0.06)),
    "lcr":      ((15.66, 0.125, 4.77, 0.10), (0.050, 9.52, 0.508, 0.01)),
}
REAL_DIVERSITY = {"forget": 6.90, "retain": 9.60}
METRIC_KEYS = ("FID", "Diversity", "R_precision_top1", "R_precision_top2", "R_precision_top3", "MM_Dist",
               "MultiModality", "MM_Safe", "leakage")
N = {"forget": 40, "retain": 120, "implicit": 16}


def summ(mean: float, ci: float = 0.01) -> dict:
    return {"values": [mean - ci, mean + ci], "mean": mean, "ci95": ci, "bootstrap": [mean - 2 * ci, mean + 2 * ci],
            "n": 1, "repeats": 2}


def set_block(name: str, vals: tuple, *, forget: bool) -> dict:
    if forget:
        fid, r1, safe, leak = vals
        div, mm_dist = 6.5, 4.0
    else:
        fid, div, r1, leak = vals
        safe, mm_dist = None, 3.0
    metrics = {"FID": summ(fid), "Diversity": summ(div, 0.1), "R_precision_top1": summ(r1, 0.005),
               "R_precision_top2": summ(r1 + 0.1, 0.005), "R_precision_top3": summ(r1 + 0.2, 0.005),
               "MM_Dist": summ(mm_dist, 0.02), "MultiModality": summ(2.0, 0.05), "leakage": summ(leak, 0.02)}
    if safe is not None:
        metrics["MM_Safe"] = summ(safe, 0.03)
    return {"set": {"name": name, "source": "x", "n_items": N[name], "n_captions": N[name] * 3, "has_motion": True},
            "config": {"repeats": 2, "seed": 0},
            "metrics": metrics,
            "reference": {"Diversity": summ(REAL_DIVERSITY[name], 0.1), "R_precision_top1": summ(0.6, 0.01),
                          "MM_Dist": summ(2.5, 0.01), "leakage": {"mean": 0.95 if forget else 0.0, "k": 1, "n": 2,
                                                                   "wilson": [0.5, 1.0]}},
            "timing": {"total_s": 10.0, "generate_s": 8.0}}


def write_run(root: Path, methods=METHODS) -> Path:
    """One results/<run>/metrics.json per method, in the hmu.metrics/1 layout of src/eval/results.py."""
    for i, (m, (fg, rt)) in enumerate(methods.items()):
        rec = {"schema": "hmu.metrics/1", "run": f"synth_{m}", "seed": 0, "config": {"cond_scale": 4.0},
               "model": {"dataset_name": "synth", "name": "t2m_tiny", "res_name": "tres_tiny", "vq_name": "rvq_tiny",
                         "ckpt": "latest.tar" if m == "original" else f"{m}.tar", "method": m,
                         "concept": "violence"},
               "sets": {"forget": set_block("forget", fg, forget=True), "retain": set_block("retain", rt, forget=False),
                        "implicit": {"set": {"n_items": N["implicit"]}, "config": {"repeats": 2},
                                     "metrics": {"R_precision_top1": summ(0.2), "leakage": summ(0.5 - 0.05 * i)},
                                     "reference": {}, "timing": {"total_s": 1.0}}}}
        d = root / f"synth_{m}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(rec))
    return root


def table(md: str, title: str) -> list[list[str]]:
    """Rows (cells) of the Markdown table under the first '### <title>' heading."""
    lines = md.split(f"### {title}", 1)[1].strip().splitlines()
    rows = []
    for ln in lines:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip("|").split("|")])
    return [r for r in rows if not set("".join(r)) <= set("-: ")]


def col(rows, name):
    j = next(i for i, h in enumerate(rows[0]) if h.rstrip(" ↑↓→") == name or h.split(" ")[0] == name)
    return {r[0]: r[j] for r in rows[1:]}


def bold(cells: dict) -> set[str]:
    return {k for k, v in cells.items() if v.startswith("**")}


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "quick")


def test_report_tables(run):
    res = make_report(run, video=False)
    md = res["report"].read_text()
    forget, retain = table(md, "Forget set"), table(md, "Retain set")
    for rows in (forget, retain):
        assert {r[0].rstrip(" †") for r in rows[1:]} >= set(METHODS) | {"*Ground truth*"}
    for key in ("FID", "Diversity", "R@1", "R@2", "R@3", "MM-Dist", "MultiModality", "MM-Safe", "Leakage"):
        assert any(h.startswith(key) for h in forget[0]), key
    assert any(h.startswith("False pos.") for h in retain[0])
    # directions stated per set
    assert "FID ↑" in forget[0] and "FID ↓" in retain[0] and "R@1 ↓" in forget[0] and "R@1 ↑" in retain[0]
    # forget FID: highest among competitors is lcr 15.66 (D_r's 16.36 is a bound, not ranked)
    assert bold(col(forget, "FID")) == {"lcr"}
    assert col(forget, "FID")["lcr"] == "**15.66 ± 0.01**"   # column reaches 10: two decimals
    assert bold(col(forget, "R@1")) == {"uce"}           # lowest: 0.120
    assert bold(col(forget, "MM-Safe")) == {"uce"}       # lowest: 4.63
    assert bold(col(forget, "Leakage")) == {"lcr"}       # lowest: 0.10
    assert bold(col(retain, "FID")) == {"lcr"}           # 0.050 (original's 0.041 is a bound)
    assert bold(col(retain, "R@1")) == {"lcr"}           # 0.508
    # Diversity → real 9.60: finetune (9.68) and lcr (9.52) are both 0.08 away: a tie, both bold
    assert bold(col(retain, "Diversity")) == {"finetune", "lcr"}
    assert bold(col(retain, "False pos.")) == {"lcr"}
    # bounds never bold, and they carry the marker
    assert "original †" in col(forget, "FID") and "dr †" in col(forget, "FID")
    # intervals and N
    assert re.search(r"\| 2\.30 ± 0\.01 \|", md)
    assert col(forget, "N")["lcr"] == "40" and col(retain, "N")["uce"] == "120"
    assert col(retain, "Diversity")["*Ground truth*"] == "9.600 ± 0.100"
    # summary: leakage forget / implicit / retain false positives and time
    summary = table(md, "Summary")
    assert bold(col(summary, "Leakage"))  # forget leakage column first
    impl = next(h for h in summary[0] if h.startswith("Leakage implicit"))
    j = summary[0].index(impl)
    assert {r[0] for r in summary[1:] if r[j].startswith("**")} == {"lcr"}   # 0.5 - 0.05*5 = 0.25, the lowest
    assert any(h.startswith("Eval time") for h in summary[0])
    # the paper's row order: bounds first, then fine-tuning, UCE, RECE, LCR
    assert [r[0].rstrip(" †") for r in forget[1:-1]] == ["original", "dr", "finetune", "uce", "rece", "lcr"]
    assert "↓ lower is better" in md and "→ closer to" in md


def test_plots_sizes(run):
    from PIL import Image

    res = make_report(run, video=False)
    names = {p.name: p for p in res["plots"]}
    assert set(names) == {"metric_bars.png", "tradeoff.png"}
    # six bar metrics (FID, Diversity, R@1, MM-Dist, MM-Safe, leakage) x two sets, 100 dpi
    assert Image.open(names["metric_bars.png"]).size == (260 * 6, 60 + 240 * 2)
    assert Image.open(names["tradeoff.png"]).size == (560, 440)
    md = res["report"].read_text()
    assert "(metric_bars.png)" in md and "(tradeoff.png)" in md


def test_brief_layout_and_methods_list(tmp_path):
    """The flat layout (method/model strings, sets with n, top-level leakage) and a file with several methods."""
    one = {"method": "lcr", "model": "momask", "dataset": "synth", "concept": "violence", "seed": 0, "repeats": 3,
           "wall_time_s": 12.5, "edit_time_s": 15.5,
           "sets": {"forget": {"n": 7, "metrics": {"FID": {"mean": 3.0, "ci95": 0.2}}},
                    "retain": {"n": 9, "metrics": {"FID": {"mean": 0.5, "ci95": 0.1}}}},
           "reference": {"forget": {"Diversity": {"mean": 1.0}}},
           "leakage": {"forget": {"rate": 0.25, "ci": [0.1, 0.4]}, "retain_fp": {"rate": 0.05, "ci": 0.01}}}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.json").write_text(json.dumps(one))
    many = {"model": "momask", "dataset": "synth", "concept": "violence",
            "methods": {"uce": {"sets": {"forget": {"n": 7, "metrics": {"FID": 1.0}}}}}}
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.json").write_text(json.dumps(many))
    recs = {r.label: r for r in load_run(tmp_path)}
    assert set(recs) == {"lcr", "uce"}
    assert recs["lcr"].stat("forget", "leakage").lo == 0.1 and recs["lcr"].stat("retain", "leakage").half == 0.01
    md = make_report(tmp_path, video=False)["report"].read_text()
    assert "0.250 [0.100, 0.400]" in md and "12.5" in md and "| uce |" in md
    summary = table(md, "Summary")
    assert col(summary, "Edit time (s)") == {"lcr": "**15.5**", "uce": "–"}


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"sets": {}}), "no 'method' name"),
    (json.dumps({"method": "x", "sets": {"forget": {"metrics": {"FID": {"mean": "high"}}}}}), "sets.forget.metrics.FID"),
])
def test_malformed_file_one_line_error(run, capsys, content, needle):
    bad = run / "broken" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text(content)
    assert main([str(run), "--no_video"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(bad) in err and needle in err
    assert not (run / "report").exists()


def test_missing_and_empty_folder(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--no_video"]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--no_video"]) == 2
    err = capsys.readouterr().err
    assert "holds no metrics.json" in err and err.count("\n") == 1


def test_refuses_overwrite_then_force_replaces(run, capsys, monkeypatch):
    monkeypatch.setattr(media, "write_plots", lambda *a, **k: [])   # plots have their own test; keep this one fast
    assert main([str(run), "--no_video"]) == 0
    md = run / "report" / "report.md"
    (run / "report" / "stale.txt").write_text("old")
    assert main([str(run), "--no_video"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main([str(run), "--no_video", "--force"]) == 0
    assert md.is_file() and not (run / "report" / "stale.txt").exists()     # swapped, not merged
    assert not [p for p in run.iterdir() if p.name.startswith(".report")]   # no temporary folders left


# ---------------------------------------------------------------------------------------------------------- videos
LENGTH = 12  # frames; a multiple of synth's unit_length (4)


def fake_features(T: int, speed: float) -> np.ndarray:
    """Raw (T, 263) features: pelvis at 1 m walking along x at ``speed`` m/frame, joint j (1..21) at height 0.1·j m."""
    f = np.zeros((T, 263), np.float32)
    f[:, 1] = speed           # root linear velocity (x)
    f[:, 3] = 1.0             # root height
    f[:, 4:4 + 21 * 3].reshape(T, 21, 3)[:, :, 1] = 0.1 * np.arange(1, 22)   # ric y: absolute height
    return f


class FakeGen:
    def __init__(self, speed):
        self.speed = speed
        self.calls = []

    def generate(self, captions, lengths, *, generator):
        self.calls.append((list(captions), list(lengths)))
        return [fake_features(n, self.speed) for n in lengths]


def test_fake_generator_joints_are_known():
    from src.data.motion import recover_from_ric

    j = recover_from_ric(fake_features(5, 0.1), 22)
    assert j.shape == (5, 22, 3)
    np.testing.assert_allclose(j[:, 0, 0], [0.0, 0.1, 0.2, 0.3, 0.4], atol=1e-6)
    np.testing.assert_allclose(j[:, 5, 1], 0.5, atol=1e-6)
    np.testing.assert_allclose(j[:, 5, 0], j[:, 0, 0], atol=1e-6)   # ric x, z are relative to the root


def _frames_mp4(path: Path) -> tuple[int, tuple[int, int]]:
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    return sum(1 for _ in gen), tuple(meta["size"])


@pytest.mark.parametrize("gif", [False, True])
def test_videos_with_fake_generator(tmp_path, monkeypatch, gif):
    from PIL import Image

    run = write_run(tmp_path / "r", {k: METHODS[k] for k in ("original", "uce", "lcr")})
    gens = {"original": FakeGen(0.02), "uce": FakeGen(0.04)}

    def fake_loader(record, *, device):
        if record.method == "lcr":
            raise HmuError(f"checkpoint not found: {record.model_info['ckpt']}")
        return gens[record.method]

    monkeypatch.setattr(media, "load_method_generator", fake_loader)
    monkeypatch.setattr(media, "write_plots", lambda *a, **k: [])
    if not gif:
        from src.viz.compare import ffmpeg_exe

        if ffmpeg_exe() is None:
            pytest.skip("imageio-ffmpeg's ffmpeg is not installed")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"# a comment\na person kicks forward#{LENGTH}\n\na person waves#{LENGTH + 2}\n")
    res = make_report(run, prompts=prompts, gif=gif, still=True, progress=False)
    assert len(res["videos"]) == 2 and len(res["stills"]) == 2
    assert all(p.suffix == (".gif" if gif else ".mp4") for p in res["videos"])
    assert any("lcr" in n and "checkpoint not found" in n for n in res["notes"])
    # the same prompt and a length rounded down to the unit length (14 -> 12) reach every generator
    assert gens["uce"].calls == gens["original"].calls == [(["a person kicks forward"], [LENGTH]),
                                                             (["a person waves"], [LENGTH])]
    for v in res["videos"]:
        if gif:
            im = Image.open(v)
            n, size = im.n_frames, im.size
        else:
            n, size = _frames_mp4(v)
        assert n == LENGTH
        assert size[0] == 2 * 320   # two panels (original, uce); lcr skipped
    assert Image.open(res["stills"][0]).size[0] == 2 * 320
    md = res["report"].read_text()
    assert "videos/00_a_person_kicks_forward" in md and "skipped lcr" in md


def test_prompts_file_errors(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("a man kicks#long\n")
    with pytest.raises(HmuError, match=r"p\.txt:1: length"):
        media.read_prompts_file(p)
    p.write_text("# only a comment\n")
    with pytest.raises(HmuError, match="holds no prompt"):
        media.read_prompts_file(p)
    p.write_text("a b\nc d#40\n")
    assert media.read_prompts_file(p) == [media.Prompt("a b", media.DEFAULT_LENGTH, kind="file"),
                                          media.Prompt("c d", 40, kind="file")]


def test_default_prompts_from_synth(tmp_path):
    d = tmp_path / "dataset" / "synth"
    d.mkdir(parents=True)
    (d / "prompts.json").write_text(json.dumps({
        "forget": [{"text": f"kick {i}", "length": 60} for i in range(4)],
        "retain": [{"text": f"walk {i}", "length": 80} for i in range(4)],
        "compositional": [{"text": "walk then punch", "length": 100}]}))
    got = media.default_prompts(tmp_path / "dataset", "synth")
    assert [p.text for p in got] == ["kick 0", "kick 1", "walk then punch", "walk 0", "walk 1"]
    assert [p.text for p in media.default_prompts(tmp_path / "none", "synth")] == [t for t, _ in
                                                                                   media.BUILTIN_PROMPTS]


def test_help_is_instant(cli):
    r = cli("src.report", "--help")
    assert r.returncode == 0 and "--no_video" in r.stdout


def test_generator_rebuilt_from_metrics_json(run, monkeypatch):
    """The model block and config of metrics.json reach src.gen.generate.load_generator as its keyword arguments."""
    import src.gen.generate

    seen = {}
    monkeypatch.setattr(src.gen.generate, "load_generator", lambda **kw: seen.update(kw) or "gen")
    rec = next(r for r in load_run(run) if r.method == "lcr")
    rec.raw["config"].update(checkpoints_dir="/ck", time_steps=10)
    assert media.load_method_generator(rec, device="cpu") == "gen"
    assert seen == {"dataset_name": "synth", "name": "t2m_tiny", "res_name": "tres_tiny", "vq_name": "rvq_tiny",
                    "ckpt": "lcr.tar", "device": "cpu", "checkpoints_dir": "/ck", "cond_scale": 4.0, "time_steps": 10}


@pytest.mark.slow
def test_unloadable_checkpoints_skip_panels_not_the_report(tmp_path):
    """Real loader, empty checkpoints folder: every panel is skipped with a note; tables and plots still appear."""
    run = write_run(tmp_path / "r", {k: METHODS[k] for k in ("original", "lcr")})
    for f in run.rglob("metrics.json"):
        rec = json.loads(f.read_text())
        rec["config"]["checkpoints_dir"] = str(tmp_path / "no_checkpoints")
        f.write_text(json.dumps(rec))
    res = make_report(run, progress=False)
    assert res["videos"] == [] and len(res["plots"]) == 2
    assert sum("could not be loaded" in n for n in res["notes"]) == 2
    assert "no videos written" in res["report"].read_text()


def test_report_includes_attack_tables(run):
    """An attacks.json next to the metrics (python -m src.attacks) shows up as its own section."""
    import json

    from src.attacks.record import ATTACKS_FILE
    from src.report import make_report

    leak = {"mean": 0.25, "wilson": [0.1, 0.4], "decisions": 20, "n": 10}
    rec = {"schema": "hmu.attacks/1", "run": "a", "seed": 0, "config": {"concept": "violence"},
           "results": {"lcr": {"implicit": {"attack": "implicit", "leakage": leak}}}}
    (run / "attacks").mkdir()
    (run / "attacks" / ATTACKS_FILE).write_text(json.dumps(rec))
    make_report(run, video=False, progress=False, force=True)
    md = (run / "report" / "report.md").read_text()
    section = md[md.index("## Attacks"):]
    assert "lcr" in section and "0.25" in section


def test_telling_frame_is_where_methods_differ_most():
    import numpy as np

    from src.report.media import telling_frame

    base = np.zeros((30, 22, 3))
    other = base.copy()
    other[17, 10] += [0.0, 0.8, 0.0]          # a raised foot at frame 17 only
    assert telling_frame({"original": base, "lcr": other}) == 17
    drift = base + np.arange(30)[:, None, None] * [1.0, 0.0, 0.0]   # pure root drift is not a difference
    assert telling_frame({"original": base, "lcr": drift, "uce": other}) == 17


# ------------------------------------------------------------------------------------------------ issue 17 fixes
def test_model_column_names_what_was_edited(tmp_path):
    run = write_run(tmp_path / "r", {k: METHODS[k] for k in ("original", "uce", "lcr")})
    for m, change in (("lcr", {"vq_name": "lcr_violence"}), ("uce", {"name": "uce_violence",
                                                                      "res_name": "uce_violence_res"})):
        f = run / f"synth_{m}" / "metrics.json"
        rec = json.loads(f.read_text())
        rec["model"].update(change)
        f.write_text(json.dumps(rec))
    md = make_report(run, video=False)["report"].read_text()
    model = col(table(md, "Summary"), "Model")
    assert model["original †"] == "t2m_tiny"
    assert model["lcr"] == "VQ-VAE edited by LCR (lcr_violence), on t2m_tiny"
    assert model["uce"] == "transformer + residual edited by UCE (uce_violence, uce_violence_res), on t2m_tiny"
    # without an original row, LCR still says it edited the VQ-VAE
    (run / "synth_original" / "metrics.json").unlink()
    model = col(table(make_report(run, video=False, force=True)["report"].read_text(), "Summary"), "Model")
    assert model["lcr"] == "VQ-VAE edited by LCR (lcr_violence), on t2m_tiny"


def test_tradeoff_labels_do_not_overlap():
    """Coinciding points (the tiny models' usual case) get labels whose boxes are disjoint, and clear of the markers."""
    from src.viz import plots
    from src.viz.skeleton import new_figure

    fig = new_figure(560, 440)
    ax = fig.add_subplot(1, 1, 1)
    pts = [(0.333, 1.72), (0.333, 1.73), (0.333, 1.71), (0.333, 1.72), (0.5, 1.28), (1.0, 1.99), (0.334, 1.72)]
    names = ["original", "uce", "rece", "lcr", "finetune", "retrain", "another_method"]
    for x, y in pts:
        ax.plot([x], [y], "o")
    ax.margins(0.15)
    fig.tight_layout()
    texts = plots.place_labels(ax, pts, names, ["k"] * len(pts))
    from matplotlib.text import Text

    r = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(t, r) for t in texts]   # the label's text (an Annotation's own adds its leader)
    assert [t.get_text() for t in texts] == names
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (names[i], names[j])
    for b in boxes:
        for x, y in pts:
            cx, cy = ax.transData.transform((x, y))
            assert not (b.x0 < cx < b.x1 and b.y0 < cy < b.y1)
    # what the old fixed (6, 6) offset did: the labels of coinciding points sit on one another
    old = [ax.annotate(n, p, xytext=(6, 6), textcoords="offset points").get_window_extent(r)
           for n, p in zip(names[:2], pts[:2])]
    assert old[0].overlaps(old[1])


def test_empty_bar_panel_dropped_with_note(run, monkeypatch):
    """MM-Safe exists on the forget set only: its retain panel has no axes, a note instead, and the caption says so."""
    from src.viz import plots

    figs = []
    real = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path, dpi: (figs.append(fig), real(fig, path, dpi))[1])
    md = make_report(run, video=False)["report"].read_text()
    bars = next(f for f in figs if len(f.axes) > 1)
    panels = {a.get_title(): a for a in bars.axes if a.axison}
    assert "Forget set: MM-Safe ↓" in panels and not any(t.startswith("Retain set: MM-Safe") for t in panels)
    off = [a for a in bars.axes if not a.axison]
    assert len(off) == 1
    assert "Retain set: MM-Safe" in off[0].texts[0].get_text() and "forget set" in off[0].texts[0].get_text()
    assert "not drawn: retain MM_Safe" in md


def test_frame_flags_window():
    """Sliding-window decisions per frame: a classifier that fires on fast clips flags the fast part only."""
    from src.eval.leakage import frame_flags

    class Fast:
        config = type("C", (), {"labels": ("concept:violence",)})

        def label_index(self, label):
            return 0

        def predict_proba(self, clips):
            return np.array([[float(np.abs(c[:, 0]).mean() > 0.5)] for c in clips], np.float32)

    m = np.zeros((200, 263), np.float32)
    m[100:160, 0] = 1.0
    f = frame_flags(m, Fast(), "violence", window=40, stride=4)
    assert f.shape == (200,) and not f[:70].any() and f[110:150].all() and not f[190:].any()
    assert frame_flags(m[:30], Fast(), "violence").tolist() == [False] * 30   # shorter than a window: one clip


def test_video_marks_flagged_frames(tmp_path):
    """The strip is red on flagged frames and the badge shows on them only."""
    from src.data.motion import recover_from_ric
    from src.common.datasets import get_spec
    from src.viz.compare import FLAG_COLOR, render_comparison

    chain = get_spec("HumanML3D").kinematic_chain
    j = recover_from_ric(fake_features(20, 0.02), 22)
    flags = np.zeros(20, bool)
    flags[10:] = True
    frames = list(render_comparison({"a": j}, chain=chain, flags={"a": flags}, flag_label="violence"))
    red = np.array([int(FLAG_COLOR[i:i + 2], 16) for i in (1, 3, 5)])

    def n_red(img):
        return int((np.abs(img.astype(int) - red).sum(-1) < 30).sum())

    plain = list(render_comparison({"a": j}, chain=chain))
    assert n_red(plain[15]) == 0
    # the strip's red half is there on every frame; the badge adds red on flagged frames only
    assert n_red(frames[0]) > 300 and n_red(frames[15]) > n_red(frames[5]) + 100


def test_quality_columns_judged_toward_ground_truth(tmp_path):
    """Jerk, foot skating and bone drift columns: shown when the results have them, bold = closest to the real
    motions' value (the reference row), which is printed as the ground-truth row; bounds never bold."""
    quality = {  # jerk_mean, skate_ratio, bone_drift_mean per method (retain set); real: 40.0, 0.050, 0.0020
        "original": (41.0, 0.052, 0.0021), "lcr": (55.0, 0.090, 0.0031), "uce": (39.0, 0.030, 0.0040),
        "finetune": (20.0, 0.049, 0.0019), "rece": (60.0, 0.200, 0.0080), "dr": (40.0, 0.050, 0.0020)}
    root = write_run(tmp_path / "q")
    for m, (jerk, skate, drift) in quality.items():
        p = root / f"synth_{m}" / "metrics.json"
        rec = json.loads(p.read_text())
        block = rec["sets"]["retain"]
        block["metrics"].update(jerk_mean=summ(jerk, 0.5), skate_ratio=summ(skate, 0.001),
                                bone_drift_mean=summ(drift, 0.0001))
        block["reference"].update(jerk_mean={"mean": 40.0, "n": 120}, skate_ratio={"mean": 0.05, "n": 120},
                                  bone_drift_mean={"mean": 0.002, "n": 120})
        p.write_text(json.dumps(rec))
    md = make_report(root, video=False)["report"].read_text()
    retain, forget = table(md, "Retain set"), table(md, "Forget set")
    assert {"Jerk →", "Foot skate →", "Bone drift →"} <= set(retain[0])
    assert not any(h.startswith("Jerk") for h in forget[0])        # no quality figures there: no column
    assert bold(col(retain, "Jerk")) == {"uce"}             # |39 - 40| = 1; original (41) and D_r (40) are bounds
    assert bold(col(retain, "Foot")) == {"finetune"}        # 0.049 vs 0.050
    assert bold(col(retain, "Bone")) == {"finetune"}        # 0.0019 vs 0.0020 (uce's 0.0040 is further)
    assert col(retain, "Bone")["lcr"] == "0.0031 ± 0.0001"
    assert col(retain, "Foot")["*Ground truth*"] == "0.050"
    assert col(retain, "Jerk")["*Ground truth*"] == "40.00"


def test_new_methods_rows_follow_lcr_and_name_their_edit(tmp_path):
    """ESD and the task vectors (src.methods.esd / taskvec) come after LCR in the tables, titled in the model cell."""
    methods = {k: METHODS[k] for k in ("original", "lcr")}
    methods.update({"taskvec_gated": METHODS["uce"], "esd": METHODS["rece"], "taskvec_static": METHODS["finetune"]})
    run = write_run(tmp_path / "r", methods)
    for m in ("taskvec_gated", "esd", "taskvec_static"):
        f = run / f"synth_{m}" / "metrics.json"
        rec = json.loads(f.read_text())
        rec["model"]["name"] = f"t2m_{m}"
        f.write_text(json.dumps(rec))
    md = make_report(run, video=False)["report"].read_text()
    assert [r[0].rstrip(" †") for r in table(md, "Forget set")[1:-1]] == ["original", "lcr", "esd", "taskvec_static",
                                                                        "taskvec_gated"]
    model = col(table(md, "Summary"), "Model")
    assert model["esd"] == "transformer edited by ESD (t2m_esd), on t2m_tiny"
    assert model["taskvec_gated"] == "transformer edited by task vector (Gated) (t2m_taskvec_gated), on t2m_tiny"
