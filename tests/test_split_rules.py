"""Word-mode keyword split: case-insensitivity of the caption itself and inflected phrase keywords.

The lines below carry the keyword only in the caption (their ``word/POS`` tokens hold other lemmas), so the POS tokens,
which are lower-cased on their own, cannot rescue a rule that stopped lower-casing the caption or stopped inflecting
a phrase's last word. Tested through the public ``line_matcher`` and ``keyword_split`` (what the CLI runs).
"""
from __future__ import annotations

import pytest

from src.data import keywords as S

TAIL = "#a/DET person/NOUN strike/VERB forward/ADV#0.0#0.0"


@pytest.mark.parametrize("caption", ["A person KICKS forward.", "Kicking forward, a person moves.",
                                     "a person Kicked forward."])
def test_caption_case_is_ignored(caption):
    assert S.line_matcher(["kick"], "word")(caption + TAIL)
    assert S.line_matcher(["kick"], "word")(caption)  # a bare caption line, no POS part at all


def test_keyword_case_is_ignored():
    assert S.line_matcher(["Kick"], "word")("a person kicks forward." + TAIL)


@pytest.mark.parametrize("caption,hit", [
    ("he throws two LEFT HOOKS.", True),
    ("he threw a left hooked punch.", True),
    ("a left hooking motion.", True),
    ("a left hook.", True),
    ("hooks to the left.", False),        # order matters
    ("a lefty hooks.", False),            # all but the last word exact
])
def test_phrase_keyword_last_word_inflects(caption, hit):
    m = S.line_matcher(["left hook"], "word")
    assert m(caption + "#he/PRON throw/VERB a/DET jab/NOUN#0.0#0.0") is hit


def test_word_split_on_files(tmp_path):
    """keyword_split on a texts folder: upper-case captions and inflected phrases land in forget, as they should."""
    texts = tmp_path / "texts"
    texts.mkdir()
    lines = {
        "000001": ["A PERSON KICKS THE AIR." + TAIL],
        "000002": ["someone throws left hooks." + TAIL, "a person moves." + TAIL],
        "000003": ["a person walks." + TAIL, "a person waves." + TAIL],
        "000004": ["Hooks on the left side." + TAIL],
    }
    for mid, ls in lines.items():
        (texts / f"{mid}.txt").write_text("\n".join(ls) + "\n")
    res = S.keyword_split(list(lines), texts, ["kick", "left hook"])
    assert res.forget == ["000001", "000002"]
    assert res.retain == ["000003", "000004"] and res.missing == []
    # substring mode (upstream's grep) is case-sensitive and takes no inflection rule: only 000002 ("left hook" + s)
    assert S.keyword_split(list(lines), texts, ["kick", "left hook"], match="substring").forget == ["000002"]
