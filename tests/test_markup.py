"""Prompt text and run names are never parsed as markup (issue 26): a ``$...$`` in a video title or a plot label is
not matplotlib mathtext (a malformed one raised when the figure was drawn, after the motion was generated), and a
prompt in report.md is literal text, checked with an independent markdown renderer (markdown-it)."""
from __future__ import annotations

import numpy as np
import pytest

from src.common.datasets import get_spec

CHAIN = get_spec("HumanML3D").kinematic_chain
HOSTILE = ["a person $\\frac{$ kicks", "cost $x^2$ walk", "$$", "a $\\undefinedmacro{x}$ jump", "50$ and 60$"]


def _motion(T: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(T, 22, 3)) * 0.1 + np.array([0, 1, 0])).astype(np.float32)


@pytest.mark.parametrize("title", HOSTILE)
def test_video_title_and_panel_labels_are_plain_text(title):
    from src.viz.compare import render_comparison

    frames = list(render_comparison({title: _motion(), "lcr $\\frac{$": _motion()}, chain=CHAIN, title=title,
                                    panel_size=(96, 96), flags={title: [True, False, True, False]},
                                    flag_label="$\\bad{$"))
    assert len(frames) == 4 and frames[0].ndim == 3


def test_title_text_keeps_the_dollar_signs(monkeypatch):
    """The title artist holds the prompt literally, with math parsing off."""
    import matplotlib.figure

    from src.viz.compare import render_comparison

    seen = []
    orig = matplotlib.figure.Figure.text

    def spy(self, x, y, s, *a, **k):
        t = orig(self, x, y, s, *a, **k)
        seen.append(t)
        return t

    monkeypatch.setattr(matplotlib.figure.Figure, "text", spy)
    next(iter(render_comparison({"a": _motion()}, chain=CHAIN, title="cost $x^2$", panel_size=(96, 96))))
    (t,) = seen
    assert t.get_text() == "cost $x^2$" and t.get_parse_math() is False


def test_plots_with_hostile_run_names_and_notes(tmp_path):
    from src.viz.plots import metric_bars, tradeoff_scatter

    recs = [{"method": "lcr $\\frac{$", "forget": {"FID": {"mean": 1.0, "ci95": 0.1}, "MM_Dist": 3.0},
             "retain": {"FID": {"mean": 2.0, "ci95": 0.1}}},
            {"method": "uce $x$", "forget": {"FID": {"mean": 1.5, "ci95": 0.2}},
             "retain": {"FID": {"mean": 2.5, "ci95": 0.2}}}]
    p = metric_bars(recs, ["FID", "MM_Dist"], tmp_path / "bars.png", title="concept $\\frac{$",
                    notes={"retain/MM_Dist": "why $\\frac{$"})
    assert p.is_file() and p.stat().st_size > 0
    q = tradeoff_scatter(recs, "FID", "FID", tmp_path / "scatter.png", title="$\\frac{$")
    assert q.is_file()


def test_prompt_in_report_markdown_is_literal():
    from markdown_it import MarkdownIt

    from src.report.tables import md_escape

    md = MarkdownIt("commonmark").enable("table")
    for text in [*HOSTILE, "a [link](javascript:alert(1)) kick", "<script>alert(1)</script>", "# heading",
                 "**bold** _it_ `code` | cell", "line\nbreak", "back\\slash \\* star", "1. listed", "- item",
                 "&amp; &lt;", "![img](x.png)"]:
        html = md.render(f"- [{md_escape(text)}](videos/a.mp4)")
        tokens = md.parseInline(f"[{md_escape(text)}](videos/a.mp4)", {})[0].children
        kinds = [t.type for t in tokens]
        assert kinds == ["link_open", "text", "link_close"], (text, kinds)
        assert tokens[1].content == " ".join(text.split()), text
        assert "<script" not in html and "<strong" not in html and "<h1" not in html, html


def test_report_notes_and_video_links_escape_the_prompt(tmp_path):
    from src.report.tables import render_markdown

    out = render_markdown([], run_dir=tmp_path, videos=[("<script>x</script> $a$ [b](c)", "videos/a.mp4", None)],
                          notes=["animations: lcr failed on '<img src=x onerror=alert(1)>'"])
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").render(out)
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;x&lt;/script&gt; $a$ [b](c)" in html
