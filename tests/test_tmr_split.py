"""TMR-refined splits: scores on hand-made similarities, the refiner on fake latents, ground-truth quality, CLI errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from src.data import keywords as K
from src.cli import split as S
from src.models.tmr import refine_split as R
from src.data.humanml3d import read_split


def test_knn_scores_count_forget_texts_among_nearest():
    # 2 motions x 5 texts; texts 0, 1 are concept prompts.
    sims = np.array([[0.9, 0.8, 0.1, 0.7, 0.0],
                     [0.1, 0.95, 0.9, 0.8, 0.85]])
    forget = np.array([True, True, False, False, False])
    assert R.knn_scores(sims, forget, max_rank=3).tolist() == [2, 1]
    assert R.knn_scores(sims, forget, max_rank=1).tolist() == [1, 1]
    # Excluding a motion's own caption (text 1 for motion 1) takes it out of the neighbourhood.
    exclude = np.zeros_like(sims, dtype=bool)
    exclude[1, 1] = True
    assert R.knn_scores(sims, forget, max_rank=3, exclude=exclude).tolist() == [2, 0]


def test_vote_scores_count_prompts_that_retrieve_each_motion():
    sims = np.array([[0.9, 0.1, 0.8, 0.0],   # prompt 0 -> motions 0, 2
                     [0.2, 0.3, 0.9, 0.1]])  # prompt 1 -> motions 2, 1
    assert R.vote_scores(sims, max_rank=2).tolist() == [1, 1, 2, 0]
    assert R.vote_scores(np.zeros((0, 3)), max_rank=2).tolist() == [0, 0, 0]


def test_refine_split_only_adds_and_keeps_input_order():
    ids = ["a", "b", "c", "d", "e"]
    forget, retain, added = R.refine_split(ids, ["d", "b"], {"a": 9, "c": 2, "e": 8}, min_occurence=8)
    assert forget == ["a", "b", "d", "e"] and retain == ["c"] and added == ["a", "e"]


def test_upstream_filter_three_way_rule():
    """Keyword forget {b, d, f, g, h}: >= 8 hits stay forget (d at exactly 8), 1-7 go to retain (f at 7, h at 1),
    0 hits are dropped from both (g); keyword-retain ids stay retain; nothing joins forget; ids order kept."""
    ids = ["a", "b", "c", "d", "e", "f", "g", "h"]
    forget, retain, dropped = R.upstream_filter(ids, ["b", "d", "f", "g", "h"],
                                                {"b": 10, "d": 8, "f": 7, "h": 1, "a": 10}, min_occurence=8)
    assert forget == ["b", "d"]
    assert retain == ["a", "c", "e", "f", "h"]
    assert dropped == ["g"]
    assert set(forget) | set(retain) | set(dropped) == set(ids) and not set(forget) & set(retain)
    # upstream's awk only ever sees motions with a hit: a threshold of 0 keeps them dropped, not forget
    forget, retain, dropped = R.upstream_filter(["b", "g"], ["b", "g"], {"b": 1}, min_occurence=0)
    assert (forget, retain, dropped) == (["b"], [], ["g"])


def test_filter_hits_count_generations_with_any_concept_text_in_top_k():
    # 5 generations (3 of m1, 2 of m2) x 4 texts; texts 0 and 3 are concept texts.
    sims = np.array([[0.9, 0.8, 0.1, 0.0],   # top-2 {0, 1}: hit
                     [0.1, 0.9, 0.8, 0.0],   # top-2 {1, 2}: no hit
                     [0.0, 0.1, 0.2, 0.9],   # top-2 {3, 2}: hit
                     [0.0, 0.9, 0.8, 0.1],   # no hit
                     [0.5, 0.9, 0.8, 0.1]])  # top-2 {1, 2}: no hit (text 0 third)
    forget = np.array([True, False, False, True])
    owner = ["m1", "m1", "m1", "m2", "m2"]
    assert R.filter_hits(sims, forget, owner, max_rank=2) == {"m1": 2, "m2": 0}
    assert R.filter_hits(sims, forget, owner, max_rank=3) == {"m1": 3, "m2": 2}  # gen 3: text 3; gen 4: text 0
    # a generation's own caption lines are left out: m1's text 0 excluded -> generation 0's top-2 {1, 2}
    exclude = np.zeros_like(sims, dtype=bool)
    exclude[:3, 0] = True
    assert R.filter_hits(sims, forget, owner, max_rank=2, exclude=exclude) == {"m1": 1, "m2": 0}


def test_refiner_upstream_filter_mode_drops_and_moves(monkeypatch):
    naive = K.KeywordSplit(forget=["m1", "m3", "m4"], retain=["m2", "m5"], missing=[])
    ref = _fake_refiner(method="upstream_filter", min_occurence=8)
    asked = []

    def fake_hits(ids):
        asked.extend(ids)
        return {"m1": 9, "m3": 0, "m4": 3}

    monkeypatch.setattr(ref, "generation_hits", fake_hits)
    out = ref("test", naive, ids=["m2", "m1", "m3", "m4", "m5"])
    assert asked == ["m1", "m3", "m4"]  # only keyword-forget motions are generated for
    assert out.forget == ["m1"] and out.retain == ["m2", "m4", "m5"] and ref.last_dropped == ["m3"]


def _fake_refiner(method="knn", max_rank=2, min_occurence=2):
    """Latents in 2-D: the concept lies along x, everything else along y."""
    unit = {"x": [1.0, 0.0], "y": [0.0, 1.0], "xy": [0.8, 0.6]}
    motions = {"m1": "x", "m2": "y", "m3": "xy", "m4": "x", "m5": "y"}
    # Reference texts: two concept prompts (x) owned by m1, one everyday caption (y) owned by m2, one owned by m4 (x,
    # but not a keyword line: an implicit caption) and an extra prompt from a file (no owner).
    # Own captions are left out, so m2's neighbours are m5's caption (y) and the xy prompt: score 1.
    refs = [("m1", "x", True), ("m1", "x", True), ("m2", "y", False), ("m5", "y", False), ("m4", "x", False),
            ("", "xy", True)]
    ref = R.TMRRefiner(model=None, text_side=None, root=None, mean=np.zeros(1), std=np.ones(1), max_motion_length=196,
                       method=method, max_rank=max_rank, min_occurence=min_occurence,
                       ref_owner=[o for o, _, _ in refs], ref_is_forget=np.array([f for _, _, f in refs]),
                       ref_latents=torch.tensor([unit[d] for _, d, _ in refs]))
    ref._motion_cache.update({k: torch.tensor(unit[d]) for k, d in motions.items()})
    return ref


def test_refiner_moves_the_right_ids_on_fake_latents():
    naive = K.KeywordSplit(forget=["m1"], retain=["m2", "m3", "m4", "m5"], missing=[])
    ids = ["m2", "m1", "m3", "m4", "m5"]
    out = _fake_refiner()("train", naive, ids=ids)
    # m3 (x-ish) and m4 (x, own caption excluded) have 2 concept prompts in their top 2; y motions have none.
    assert out.forget == ["m1", "m3", "m4"] and out.retain == ["m2", "m5"]
    ref = _fake_refiner()
    ref("train", naive, ids=ids)
    assert ref.last_scores == {"m2": 1, "m3": 2, "m4": 2, "m5": 1}
    # Vote: 3 prompts (x, x, xy) each retrieve their top-2 motions of the whole split (ties: split order).
    # x -> m1, m4 (twice); xy -> m3, m1. So m4 has 2 votes, m3 1, and m1 (already forget) is not scored.
    vote = _fake_refiner(method="vote", max_rank=2, min_occurence=2)
    out = vote("train", naive, ids=ids)
    assert out.forget == ["m1", "m4"] and out.retain == ["m2", "m3", "m5"]
    assert vote.last_scores == {"m2": 0, "m3": 1, "m4": 2, "m5": 0}


def test_missing_ids_stay_retain():
    naive = K.KeywordSplit(forget=["m1"], retain=["m3", "zz"], missing=["zz"])
    out = _fake_refiner(min_occurence=1)("test", naive, ids=["m1", "zz", "m3"])
    assert out.forget == ["m1", "m3"] and out.retain == ["zz"] and out.missing == ["zz"]


def _labels():
    mk = lambda c: {"actions": [], "concepts": c, "segments": [], "captions": []}
    return {"version": 1, "fps": 20, "concepts": {"violence": ["kick"]},
            "motions": {"a": mk(["violence"]), "b": mk(["violence"]), "c": mk([]), "d": mk(["violence"]),
                        "e": mk([])}}


def test_quality_lines_on_a_labelled_case():
    labels = _labels()
    ids = ["a", "b", "c", "d", "e"]
    # keyword: {a, c} -> tp 1 (a), fp 1 (c), fn 2 (b, d): precision 0.5, recall 1/3.
    # tmr adds b, e -> {a, b, c, e}: tp 2, fp 2, fn 1: precision 0.5, recall 2/3.
    assert R.implicit_cases(labels, "violence", ids, ["a", "c"]) == ["b", "d"]
    lines = R.tmr_quality_lines(labels, "violence", ids, ["a", "c"], ["a", "b", "c", "e"])
    assert "precision 0.500  recall 0.333  (tp 1, fp 1, fn 2, n 5)" in lines[0]
    assert "precision 0.500  recall 0.667  (tp 2, fp 2, fn 1, n 5)" in lines[1]
    assert lines[2].endswith("implicit cases (true 'violence', no keyword): 2, recovered by TMR 1")


def test_read_prompts_formats(tmp_path):
    from src.data.word_vectorizer import WordVectorizer

    vec = WordVectorizer(np.eye(3, dtype=np.float32), {"unk": 0, "kick": 1, "a": 2}, ["unk", "kick", "a"])
    (tmp_path / "p.txt").write_text("a kicks\n\n  kick  \n")
    assert R.read_prompt_tokens(tmp_path / "p.txt", vec) == [["a/OTHER", "kick/OTHER"], ["kick/OTHER"]]
    (tmp_path / "p.json").write_text(json.dumps([{"text": "x", "tokens": ["kick/VERB"]}, "a kick", {"text": "kicks"}]))
    assert R.read_prompt_tokens(tmp_path / "p.json", vec) == [["kick/VERB"], ["a/OTHER", "kick/OTHER"], ["kick/OTHER"]]
    (tmp_path / "bad.json").write_text("[3]")
    with pytest.raises(S.HmuError, match="item 0"):
        R.read_prompt_tokens(tmp_path / "bad.json", vec)
    with pytest.raises(S.HmuError, match="not found"):
        R.read_prompt_tokens(tmp_path / "none.txt", vec)


# ---------------------------------------------------------------------------------------------------------------------
# CLI: errors, and one end-to-end run on a tiny synth dataset with a few-step TMR

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from helpers_methods import generated_dataset_dir

    return generated_dataset_dir(tmp_path_factory, "tmrsplit", seed=1)


def _split_argv(base, *extra):
    return ["synth", "violence", "--dataset_dir", str(base / "ds"), "--main_split", "test", "--tmr", *extra]


def test_missing_tmr_run_is_one_line(tiny, capsys, monkeypatch):
    monkeypatch.setenv("HMU_CHECKPOINTS", str(tiny / "no_ck"))
    assert S.main(_split_argv(tiny, "--tmr_name", "absent")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: TMR run ") and "not found" in err and err.count("\n") == 1
    assert not (tiny / "ds" / "synth" / "kw_splits").exists()


def test_unknown_concept_is_one_line(tiny, capsys):
    assert S.main(["synth", "nonsense", "--dataset_dir", str(tiny / "ds"), "--tmr"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown concept 'nonsense'") and err.count("\n") == 1


@pytest.mark.slow
def test_tmr_split_end_to_end(tiny, capsys, monkeypatch):
    from src.train import tmr as T

    assert T.main(["--dataset_name", "synth", "--name", "tiny", "--dataset_dir", str(tiny / "ds"),
                   "--checkpoints_dir", str(tiny / "ck"), "--latent_dim", "16", "--num_layers", "1",
                   "--batch_size", "4", "--max_epoch", "1", "--max_steps", "2", "--max_train_frames", "48",
                   "--no_progress"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("HMU_CHECKPOINTS", str(tiny / "ck"))
    # Threshold 0: every retain motion joins forget, whatever the untrained model says.
    assert S.main(_split_argv(tiny, "--tmr_name", "tiny", "--tmr_min_occurence", "0")) == 0
    out = capsys.readouterr().out
    root = tiny / "ds" / "synth"
    test_ids = read_split(root / "test.txt")
    forget = read_split(root / "kw_splits" / "test-w-violence-tmr.txt")
    assert forget == test_ids and (root / "kw_splits" / "test-wo-violence-tmr.txt").read_text() == ""
    assert "keyword: precision" in out and "tmr: precision" in out and "recovered by TMR" in out
    # A threshold above max_rank moves nothing: the -tmr files equal the keyword split.
    above = str(S.TMRRefineOptions().rank + 1)
    assert S.main(_split_argv(tiny, "--tmr_name", "tiny", "--tmr_min_occurence", above)) == 2
    assert "pass --force" in capsys.readouterr().err
    assert S.main(_split_argv(tiny, "--tmr_name", "tiny", "--tmr_min_occurence", above, "--force")) == 0
    kw = K.keyword_split(test_ids, root / "texts", K.forget_keywords("synth", "violence"))
    assert read_split(root / "kw_splits" / "test-w-violence-tmr.txt") == kw.forget
    assert not (root / "kw_splits" / "test-w-violence.txt").exists()  # the keyword files are not touched
    # upstream_filter through the CLI with tiny random generator runs. With --max_rank above the number of reference
    # texts every generation retrieves every text, so every keyword-forget motion has 10 hits of 10:
    # bar 10 keeps the keyword split; bar 11 moves every keyword-forget motion to retain and drops none.
    from helpers_methods import MASK, RES, make_runs

    make_runs(tiny / "ck", tiny / "ds")
    gen = ["--tmr_name", "tiny", "--tmr_method", "upstream_filter", "--trans_name", MASK, "--res_name", RES,
           "--max_rank", "100000", "--force"]
    assert S.main(_split_argv(tiny, *gen, "--tmr_min_occurence", "10")) == 0
    assert read_split(root / "kw_splits" / "test-w-violence-tmr.txt") == kw.forget
    assert read_split(root / "kw_splits" / "test-wo-violence-tmr.txt") == kw.retain
    capsys.readouterr()
    assert S.main(_split_argv(tiny, *gen, "--tmr_min_occurence", "11")) == 0
    assert (root / "kw_splits" / "test-w-violence-tmr.txt").read_text() == ""
    assert read_split(root / "kw_splits" / "test-wo-violence-tmr.txt") == test_ids
    assert "dropped" not in capsys.readouterr().out


def test_upstream_filter_hit_test_is_case_insensitive_on_the_caption_text():
    """Upstream tests each retrieved description with jq's test(keywords; "i"); hmu's keyword rule stays for knn/vote."""
    from src.models.tmr.refine_split import reference_hit_rule

    line = "A man KICKS the door#a/DET man/NOUN kick/VERB the/DET door/NOUN#0.0#0.0"
    up = reference_hit_rule(["kick"], "substring", "upstream_filter")
    assert up(line, "A man KICKS the door") and up("x", "someone is kickboxing")
    assert not up("kick#kick/VERB#0.0#0.0", "a person walks")   # the POS tokens are not the description
    sub = reference_hit_rule(["kick"], "substring", "knn")        # hmu's substring mode: upstream's case-sensitive grep
    assert sub(line, "A man KICKS the door")                      # via the lemma token kick/VERB
    assert not sub("A man KICKS the door#a/DET#0.0#0.0", "A man KICKS the door")
