"""The one prompt-file reader (src/data/prompts.py) that src.gen, the report and the attacks share."""
from __future__ import annotations

import json

import pytest

from src.common.errors import HmuError
from src.data.prompts import DEFAULT_LENGTH, Prompt, parse_prompt_line, read_prompt_lines, read_prompts


def test_frames_follow_the_last_hash_and_comments_are_skipped(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("# a comment\n\na person kicks#64\nwalks # then runs#40\nsits down\n")
    assert read_prompt_lines(p) == [Prompt("a person kicks", 64), Prompt("walks # then runs", 40),
                                    Prompt("sits down", None)]
    assert [q.length for q in read_prompt_lines(p, default_length=120)] == [64, 40, 120]
    assert parse_prompt_line("   ", where="x") is None and parse_prompt_line("#64", where="x") is None


@pytest.mark.parametrize("line, match", [("a man kicks#long", r"f:3: length after '#'"), ("kicks#0", "positive"),
                                         ("  #12 ", None), ("x#-4", "positive")])
def test_bad_lines_are_one_line_errors_naming_the_line(line, match):
    if match is None:   # a line that starts with '#' is a comment, not an empty prompt
        assert parse_prompt_line(line, where="f:3") is None
        return
    with pytest.raises(HmuError, match=match):
        parse_prompt_line(line, where="f:3")


def test_empty_files_and_json(tmp_path):
    (tmp_path / "e.txt").write_text("# only a comment\n")
    with pytest.raises(HmuError, match="holds no prompt"):
        read_prompt_lines(tmp_path / "e.txt")
    (tmp_path / "p.json").write_text(json.dumps({"forget": ["x y", {"text": "z", "length": 40, "action": "kick"}]}))
    assert read_prompts(tmp_path / "p.json", key="forget") == [Prompt("x y", DEFAULT_LENGTH),
                                                               Prompt("z", 40, action="kick")]
    (tmp_path / "short.txt").write_text("a#4\n")
    with pytest.raises(HmuError, match="at least 8"):
        read_prompts(tmp_path / "short.txt")


def test_momask_na_length_means_estimate(tmp_path):
    """MoMask's prompt files write `text#NA` for "predict the length"; it is not a default length and not an error."""
    p = tmp_path / "p.txt"
    p.write_text("a person performs a standing back kick.#NA\na person walks#40\na person waves#na\n")
    got = read_prompt_lines(p, default_length=120)
    assert got[0] == Prompt("a person performs a standing back kick.", None, estimate=True)
    assert got[1] == Prompt("a person walks", 40) and got[2].length is None and got[2].estimate
    assert [q.length for q in read_prompts(p)] == [None, 40, None]
    assert parse_prompt_line("  #NA", where="f:1") is None  # a line starting with '#' is a comment
    with pytest.raises(HmuError, match="must be an integer"):
        parse_prompt_line("a person kicks#N/A", where="f:1")
