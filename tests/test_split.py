"""Keyword splits: upstream parity on the worked case, word-mode rules, CLI guards, precision/recall on labels.json."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from src.common.errors import HmuError
from src.data import keywords as K
from src.cli import split as S
from src.data.humanml3d import read_split

CONCEPTS = ("kick", "violence", "punch_jab_box_hit_beat", "duck_squat", "jump_leap_hop")


@pytest.fixture
def split_case(fixtures, tmp_path) -> Path:
    """The upstream worked case laid out as <tmp>/dataset/HumanML3D/{texts,test.txt}; returns the dataset dir."""
    src = fixtures / "hmu" / "split_case"
    root = tmp_path / "dataset" / "HumanML3D"
    root.mkdir(parents=True)
    shutil.copytree(src / "texts", root / "texts")
    shutil.copy(src / "test.txt", root / "test.txt")
    return tmp_path / "dataset"


def test_splits_json_keeps_upstream_and_adds_synth(fixtures):
    ours = K.load_keyword_table()
    upstream = json.loads((fixtures / "hmu" / "splits.json").read_text(encoding="utf-8"))
    for ds, concepts in upstream["splits"].items():
        assert ours["splits"][ds] == concepts
    assert set(ours["splits"]) == set(upstream["splits"]) | {"synth", "KIT-ML"}
    # KIT-ML's captions are English sentences like HumanML3D's: it takes HumanML3D's keyword concepts
    assert ours["splits"]["KIT-ML"] == ours["splits"]["HumanML3D"]
    assert "violence" in ours["splits"]["synth"]


@pytest.mark.parametrize("concept", CONCEPTS)
def test_substring_mode_matches_upstream_bytes(cli, split_case, fixtures, concept):
    expected = fixtures / "hmu" / "split_case" / "expected_kw_splits"
    r = cli("src.data.split", "--dataset", "HumanML3D", "--split_name", concept, "--main_split", "test",
            "--match", "substring", "--dataset_dir", str(split_case))
    assert r.returncode == 0, r.stderr
    for kind in ("w", "wo"):
        name = f"test-{kind}-{concept}.txt"
        assert (split_case / "HumanML3D" / "kw_splits" / name).read_bytes() == (expected / name).read_bytes()


def test_substring_min_occurence_2_matches_upstream_bytes(split_case, fixtures):
    expected = fixtures / "hmu" / "split_case" / "expected_kw_splits_min_occurence_2"
    rc = S.main(["HumanML3D", "violence", "--main_split", "test", "--match", "substring", "--min_occurence", "2",
                 "--dataset_dir", str(split_case)])
    assert rc == 0
    for f in expected.iterdir():
        assert (split_case / "HumanML3D" / "kw_splits" / f.name).read_bytes() == f.read_bytes()


@pytest.mark.parametrize("concept", CONCEPTS)
def test_substring_line_counts_match_upstream(fixtures, concept):
    case = fixtures / "hmu" / "split_case"
    counts = json.loads((case / "expected_matching_line_counts.json").read_text())[concept]
    matcher = K.line_matcher(K.forget_keywords("HumanML3D", concept), "substring")
    for mid, c in counts["per_id"].items():
        lines = K.read_lines(case / "texts" / f"{mid}.txt") or []
        assert sum(map(matcher, lines)) == c["matching_lines"], mid


def test_word_mode_on_worked_case(split_case):
    root = split_case / "HumanML3D"
    ids = read_split(root / "test.txt")
    res = K.keyword_split(ids, root / "texts", K.forget_keywords("HumanML3D", "violence"))
    # Case-insensitive (KICKS, Hook), inflections (hooked, boxes, beats); no compounds (kickboxing) or
    # substrings (whitewashes); the id without a texts file is retained and reported.
    assert res.forget == ["000001", "000002", "000003", "000005", "000006", "000008", "000010", "000014"]
    assert res.missing == ["000013"] and "000013" in res.retain
    assert sorted(res.forget + res.retain) == sorted(ids)
    jump = K.keyword_split(ids, root / "texts", ["jump", "leap", "hop"])
    assert jump.forget == []  # "shopping" is not "hop"


@pytest.mark.parametrize("kw,word,hit", [
    ("kick", "kicks", True), ("kick", "kicked", True), ("kick", "kicking", True), ("kick", "kickboxing", False),
    ("jab", "jabbed", True), ("jab", "jabbing", True), ("hit", "hitting", True), ("hit", "whitewashes", False),
    ("boxe", "boxes", True), ("boxe", "boxed", True), ("boxe", "boxing", True), ("boxe", "box", False),
    ("slide", "sliding", True), ("slide", "slides", True), ("beat", "beaten", True), ("hop", "shopping", False),
    ("hop", "hopping", True), ("punch", "punches", True), ("squat", "squatting", True), ("kick", "skip", False),
])
def test_word_forms(kw, word, hit):
    assert (word in K.word_forms(kw)) is hit


def test_word_mode_uses_lemma_tokens_and_phrases():
    m = K.line_matcher(["throw"], "word")
    assert m("a man threw a ball.#a/DET man/NOUN throw/VERB a/DET ball/NOUN#0.0#0.0")
    assert not m("a man threw a ball.#a/DET man/NOUN threw/VERB#0.0#0.0")  # irregular forms come from lemmas only
    p = K.line_matcher(["left hook"], "word")
    assert p("He throws a LEFT hooks.#he/PRON throw/VERB a/DET left/ADJ hook/NOUN#0.0#0.0")
    assert not p("a hook on the left.#a/DET hook/NOUN on/ADP the/DET left/NOUN#0.0#0.0")


def test_substring_is_case_sensitive_and_sees_the_tail():
    m = K.line_matcher(["kick"], "substring")
    assert not m("KICKS high.#KICKS/NOUN high/ADV#0.0#0.0")
    assert m("Kick it.#kick/VERB it/PRON#0.0#0.0")
    assert K.line_matcher(["0#0"], "substring")("a#a/DET#0.0#0.0")  # the whole raw line is searched


def test_unknown_concept_lists_known():
    with pytest.raises(HmuError, match=r"unknown concept 'nope' for HumanML3D \(known: .*violence"):
        K.forget_keywords("HumanML3D", "nope")
    # a table without the dataset (assets/splits.json has every dataset of the spec table since issue 17)
    with pytest.raises(HmuError, match="no keyword concepts for dataset 'KIT-ML'"):
        K.forget_keywords("kit", "violence", table={"splits": {"HumanML3D": {"kick": {"forget_texts": ["kick"]}}}})


def test_cli_unknown_concept_one_line(cli, split_case):
    r = cli("src.data.split", "HumanML3D", "nope", "--dataset_dir", str(split_case))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "known:" in r.stderr and "violence" in r.stderr


def test_refuses_overwrite_without_force(split_case, capsys):
    args = ["HumanML3D", "kick", "--dataset_dir", str(split_case)]
    assert S.main(args) == 0
    forget = split_case / "HumanML3D" / "kw_splits" / "test-w-kick.txt"
    forget.write_text("stale\n")
    assert S.main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert forget.read_text() == "stale\n"
    assert S.main(args + ["--force"]) == 0
    assert forget.read_text() == "000001\n000002\n000003\n"  # word mode: KICKS counts, kickboxing does not


def test_rerun_with_the_same_result_is_not_an_overwrite(split_case, capsys):
    """Upstream's README runs the same split twice; the second run finds the same ids and succeeds unchanged."""
    args = ["HumanML3D", "kick", "--dataset_dir", str(split_case)]
    assert S.main(args) == 0
    forget = split_case / "HumanML3D" / "kw_splits" / "test-w-kick.txt"
    before = forget.stat().st_mtime_ns
    capsys.readouterr()
    assert S.main([*args, "--min_occurence", "1"]) == 0
    assert "(unchanged)" in capsys.readouterr().out
    assert forget.stat().st_mtime_ns == before
    assert S.main([*args, "--min_occurence", "2"]) == 2  # other ids: refused without --force
    assert "other ids" in capsys.readouterr().err and forget.stat().st_mtime_ns == before


def test_every_existing_split_by_default_and_main_split_limits(split_case, capsys):
    root = split_case / "HumanML3D"
    (root / "train.txt").write_text("000001\n000004\n")
    assert S.main(["HumanML3D", "kick", "--dataset_dir", str(split_case)]) == 0
    names = sorted(p.name for p in (root / "kw_splits").iterdir())
    assert names == ["test-w-kick.txt", "test-wo-kick.txt", "train-w-kick.txt", "train-wo-kick.txt"]
    assert (root / "kw_splits" / "train-w-kick.txt").read_text() == "000001\n"
    out = capsys.readouterr().out
    assert "train: 2 ids -> forget 1" in out
    assert S.main(["HumanML3D", "duck_squat", "--main_split", "train", "--dataset_dir", str(split_case)]) == 0
    assert not (root / "kw_splits" / "test-w-duck_squat.txt").exists()
    assert S.main(["HumanML3D", "kick", "--main_split", "nope", "--dataset_dir", str(split_case)]) == 2


def test_tmr_without_a_trained_run_is_one_line_error(split_case, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HMU_CHECKPOINTS", str(tmp_path))
    assert S.main(["HumanML3D", "kick", "--tmr", "--dataset_dir", str(split_case)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: TMR run ") and "not found" in err and err.count("\n") == 1
    assert not (split_case / "HumanML3D" / "kw_splits").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Ground truth (labels.json, the synth format of docs/TEAM.md)

def _labels(motions: dict[str, list[str]]) -> dict:
    return {"version": 1, "fps": 20, "concepts": {"violence": ["kick", "punch"]},
            "motions": {k: {"actions": [], "concepts": v, "segments": [], "captions": []} for k, v in motions.items()}}


def test_split_quality_counts():
    labels = _labels({"a": ["violence"], "b": ["violence"], "c": [], "d": []})
    q = K.split_quality(["a", "c"], labels, "violence")
    assert (q["tp"], q["fp"], q["fn"], q["n"]) == (1, 1, 1, 4)
    assert q["precision"] == pytest.approx(0.5) and q["recall"] == pytest.approx(0.5)
    q = K.split_quality([], labels["motions"], "violence", ids=["c", "d"])
    assert math.isnan(q["precision"]) and math.isnan(q["recall"]) and q["n"] == 2
    with pytest.raises(HmuError, match="'zz' has no entry"):
        K.split_quality([], labels, "violence", ids=["zz"])
    with pytest.raises(HmuError, match="not among"):
        K.split_quality(["a"], labels, "violence", ids=["c"])


def _write_synth(root: Path) -> None:
    captions = {
        "s1": ["a person kicks with the left leg.#a/DET person/NOUN kick/VERB with/ADP the/DET left/ADJ leg/NOUN"],
        "s2": [("someone strikes the air with his foot.#someone/PRON strike/VERB the/DET air/NOUN with/ADP his/DET "
                "foot/NOUN")],  # implicit violence: no keyword
        "s3": [("a man walks and watches a kickboxing match.#a/DET man/NOUN walk/VERB and/CCONJ watch/VERB a/DET "
                "kickboxing/NOUN match/NOUN")],  # not violent, substring false positive
        "s4": ["a person walks forward.#a/DET person/NOUN walk/VERB forward/ADV"],
    }
    (root / "texts").mkdir(parents=True)
    for mid, lines in captions.items():
        (root / "texts" / f"{mid}.txt").write_text("".join(f"{c}#0.0#0.0\n" for c in lines))
    (root / "train.txt").write_text("s1\ns2\ns3\ns4\n")
    (root / "labels.json").write_text(json.dumps(_labels({"s1": ["violence"], "s2": ["violence"], "s3": [],
                                                          "s4": []})))


def test_cli_prints_precision_recall_for_both_modes(tmp_path, capsys):
    _write_synth(tmp_path / "synth")
    assert S.main(["synth", "violence", "--dataset_dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # word: forget {s1}: tp 1, fp 0, fn 1. substring: forget {s1, s3}: tp 1, fp 1, fn 1.
    assert "*     word: precision 1.000  recall 0.500  (tp 1, fp 0, fn 1, n 4)" in out
    assert "substring: precision 0.500  recall 0.500  (tp 1, fp 1, fn 1, n 4)" in out
    assert (tmp_path / "synth" / "kw_splits" / "train-w-violence.txt").read_text() == "s1\n"


def test_report_without_labels_is_an_error(split_case, capsys):
    assert S.main(["HumanML3D", "kick", "--report", "--dataset_dir", str(split_case)]) == 2
    assert "labels.json" in capsys.readouterr().err


def test_help_is_fast(cli):
    r = cli("src.data.split", "--help")
    assert r.returncode == 0 and "--min_occurence" in r.stdout


def test_bash_wrapper_positional_and_upstream_flags(split_case, tmp_path):
    import os
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv for the bash wrapper")
    env = dict(os.environ, HMU_DATASET=str(split_case))
    r = subprocess.run(["bash", str(repo / "scripts/utils/split_dataset.sh"), "HumanML3D", "kick", "--match",
                        "substring"], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["bash", str(repo / "scripts/utils/split_dataset.sh"), "--main_split", "test", "--split_name",
                        "violence", "--dataset", "HumanML3D"], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (split_case / "HumanML3D" / "kw_splits" / "test-w-violence.txt").exists()


def test_kit_ml_violence_split(tmp_path, capsys):
    """KIT-ML (alias kit) in HumanML3D's text format: forget = captions with a violent word, retain = the rest."""
    root = tmp_path / "dataset" / "KIT-ML"
    (root / "texts").mkdir(parents=True)
    captions = {
        "00001": ["A person kicks with the left leg.#a/DET person/NOUN kick/VERB#0.0#0.0"],
        "00002": ["A human walks forward.#a/DET human/NOUN walk/VERB#0.0#0.0",
                  "Someone punches twice.#someone/PRON punch/VERB#0.0#0.0"],
        "00003": ["A person waves with the right hand.#a/DET person/NOUN wave/VERB#0.0#0.0"],
        "00004": ["A kickboxer stands still.#a/DET kickboxer/NOUN stand/VERB#0.0#0.0"],
    }
    for mid, lines in captions.items():
        (root / "texts" / f"{mid}.txt").write_text("\n".join(lines) + "\n")
    (root / "test.txt").write_text("\n".join(captions) + "\n")
    assert S.main(["kit", "violence", "--dataset_dir", str(tmp_path / "dataset")]) == 0
    kw = root / "kw_splits"
    assert (kw / "test-w-violence.txt").read_text() == "00001\n00002\n"   # a kick, a punch (one caption is enough)
    assert (kw / "test-wo-violence.txt").read_text() == "00003\n00004\n"  # "kickboxer" is not the word "kick"
