"""Word vectorizer: exact parity with upstream lookups and caption wrapping; cache; errors; POS tagging of prompts."""
from __future__ import annotations

import json
import pickle
import sys
import types

import numpy as np
import pytest

from src.common.errors import HmuError
from src.data import pos as pos_mod
from src.data import word_vectorizer as wvmod
from src.data.word_vectorizer import (
    POS_ENUMERATOR,
    VIP_DICT,
    WordVectorizer,
    load_word_vectorizer,
    save_vocabulary,
    wrap_caption,
)


@pytest.fixture(scope="module")
def fx(fixtures):
    d = fixtures / "word_vectorizer"
    return {"dir": d, "vocab": d / "vocab", "facts": json.loads((d / "facts.json").read_text()),
            "io": dict(np.load(d / "io.npz"))}


@pytest.fixture(scope="module")
def wv(fx):
    return load_word_vectorizer(fx["vocab"])


def test_tables_match_upstream(fx):
    assert POS_ENUMERATOR == fx["facts"]["POS_enumerator"]
    assert list(POS_ENUMERATOR) == list(fx["facts"]["POS_enumerator"])
    assert {k: list(v) for k, v in VIP_DICT.items()} == fx["facts"]["VIP_dict"]
    assert list(VIP_DICT) == list(fx["facts"]["VIP_dict"])


def test_lookups_match_upstream(wv, fx):
    io = fx["io"]
    for q, vec, ohot, pidx, v2 in zip(io["queries"], io["word_vec"], io["pos_ohot"], io["pos_index"], io["v2_index"]):
        v, o = wv[str(q)]
        np.testing.assert_array_equal(v, vec, err_msg=str(q))
        np.testing.assert_array_equal(o, ohot, err_msg=str(q))
        assert o.dtype == ohot.dtype
        assert int(np.argmax(o)) == pidx
        assert wv.index(str(q)) == v2


def test_vectors_come_from_idx_not_word_position(wv, fx):
    vectors = np.load(fx["vocab"] / "our_vab_data.npy")
    words = fx["facts"]["vocab_words_in_order"]
    w2i = fx["facts"]["word2idx"]
    moved = [w for i, w in enumerate(words) if w2i[w] != i]
    assert moved  # the fixture permutes rows on purpose
    for w in moved:
        np.testing.assert_array_equal(wv[f"{w}/NOUN"][0], vectors[w2i[w]])


def test_caption_wrapping_matches_dataset(wv, fx):
    io = fx["io"]
    tokens = [str(t) for t in io["caption_tokens"]]
    body = tokens[1:int(io["caption_sent_len"]) - 1]
    wrapped, n = wrap_caption(body, max_text_len=20)
    assert wrapped == tokens and n == int(io["caption_sent_len"])
    we, po, lens = wv.batch([body], max_text_len=20)
    np.testing.assert_array_equal(we[0], io["caption_word_embs"])
    np.testing.assert_array_equal(po[0], io["caption_pos_ohot"])
    assert lens.tolist() == [n]
    # 25 tokens -> cropped to 20 + sos/eos (the fixture's kept tokens are the body twice)
    long_body = (body * 3)[:25]
    wrapped, n = wrap_caption(long_body, max_text_len=20)
    assert wrapped == [str(t) for t in io["long_caption_tokens"]] and n == int(io["long_caption_sent_len"])


def test_wrap_boundaries():
    toks = [f"w{i}/NOUN" for i in range(19)]
    w, n = wrap_caption(toks, max_text_len=20)
    assert n == 21 and len(w) == 22 and w[20:] == ["eos/OTHER", "unk/OTHER"]
    w, n = wrap_caption(toks + ["x/NOUN"], max_text_len=20)
    assert n == 22 and len(w) == 22
    w, n = wrap_caption([], max_text_len=20)
    assert n == 2 and w[:3] == ["sos/OTHER", "eos/OTHER", "unk/OTHER"]


def test_batch_equals_per_token_lookups(wv, fx):
    caps = [["a/DET", "man/NOUN", "kick/VERB"], ["zzz/VERB"], ["walk/VERB"] * 30]
    we, po, lens = wv.batch(caps)
    assert we.shape == (3, 22, wv.dim_word) and po.shape == (3, 22, 15) and we.dtype == po.dtype == np.float32
    assert lens.tolist() == [5, 3, 22]
    for i, c in enumerate(caps):
        for j, t in enumerate(wrap_caption(c)[0]):
            v, o = wv[t]
            np.testing.assert_array_equal(we[i, j], v)
            np.testing.assert_array_equal(po[i, j], o)


def test_itos_and_pad(wv, fx):
    w2i = fx["facts"]["word2idx"]
    assert wv.itos(w2i["kick"]) == "kick"
    assert wv.itos(len(w2i)) == "pad"


def test_malformed_token(wv):
    with pytest.raises(HmuError, match="word/POS"):
        wv.lookup("a/b/c")


def test_loaded_once_per_path(fx, monkeypatch):
    wvmod.clear_cache()
    calls = []
    real = np.load
    monkeypatch.setattr(wvmod.np, "load", lambda *a, **k: calls.append(a) or real(*a, **k))
    a = load_word_vectorizer(fx["vocab"])
    b = load_word_vectorizer(str(fx["vocab"]) + "/")
    assert a is b and len(calls) == 1


def test_missing_vocabulary_names_folder(tmp_path):
    with pytest.raises(HmuError) as ei:
        load_word_vectorizer(tmp_path)
    msg = str(ei.value)
    assert str(tmp_path) in msg and "our_vab_data.npy" in msg and "\n" not in msg


def test_vocabulary_without_unk(tmp_path):
    save_vocabulary(tmp_path, np.zeros((2, 4), np.float32), ["a", "b"])
    with pytest.raises(HmuError, match="unk"):
        load_word_vectorizer(tmp_path, cache=False)


def test_save_round_trip(tmp_path):
    vec = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_vocabulary(tmp_path, vec, ["unk", "kick", "sos"], {"unk": 2, "kick": 0, "sos": 1})
    with open(tmp_path / "our_vab_idx.pkl", "rb") as fh:
        assert pickle.load(fh) == {"unk": 2, "kick": 0, "sos": 1}
    wv = load_word_vectorizer(tmp_path, cache=False)
    np.testing.assert_array_equal(wv["kick/VERB"][0], vec[0])
    np.testing.assert_array_equal(wv["nope/VERB"][0], vec[2])


def test_in_memory_vectorizer():
    wv = WordVectorizer(np.eye(3, dtype=np.float32), {"unk": 0, "left": 1, "and": 2}, ["unk", "left", "and"])
    assert wv.lookup("left/VERB") == (1, POS_ENUMERATOR["Loc_VIP"])
    assert wv.lookup("and/CCONJ") == (2, POS_ENUMERATOR["OTHER"])
    assert wv.lookup("Left/ADJ") == (0, POS_ENUMERATOR["OTHER"])


# ------------------------------------------------------------------------------------------- POS tagging (src/data/pos)
class _Tok:
    def __init__(self, text, pos, lemma):
        self.text, self.pos_, self.lemma_ = text, pos, lemma


def _fake_nlp(text):
    table = {"A": ("DET", "a"), "man": ("NOUN", "man"), "kicks": ("VERB", "kick"), "with": ("ADP", "with"),
             "his": ("PRON", "his"), "left": ("VERB", "leave"), "legs": ("NOUN", "leg"), ".": ("PUNCT", ".")}
    return [_Tok(w, *table[w]) for w in text.replace(".", " .").split()]


def test_tag_follows_humanml3d_rule():
    out = pos_mod.tag("A man kicks with his left legs.", nlp=_fake_nlp)
    assert out == ["a/DET", "man/NOUN", "kick/VERB", "with/ADP", "his/PRON", "left/VERB", "leg/NOUN"]


def test_tag_without_spacy_says_how_to_install(monkeypatch):
    pos_mod._load_spacy.cache_clear()
    monkeypatch.setitem(sys.modules, "spacy", None)  # makes `import spacy` raise ImportError
    with pytest.raises(HmuError) as ei:
        pos_mod.tag("a man walks")
    msg = str(ei.value)
    assert "pip install spacy" in msg and "en_core_web_sm" in msg and "\n" not in msg
    pos_mod._load_spacy.cache_clear()


def test_tag_without_pipeline_says_how_to_install(monkeypatch):
    pos_mod._load_spacy.cache_clear()
    fake = types.ModuleType("spacy")

    def load(name):
        raise OSError(f"[E050] Can't find model '{name}'")

    fake.load = load
    monkeypatch.setitem(sys.modules, "spacy", fake)
    with pytest.raises(HmuError, match="spacy download en_core_web_sm"):
        pos_mod.tag("a man walks")
    assert not pos_mod.spacy_available()
    pos_mod._load_spacy.cache_clear()


def test_vocab_tagger_from_texts(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "000001.txt").write_text(
        "a man kicks a ball.#a/DET man/NOUN kick/VERB a/DET ball/NOUN#0.0#0.0\n"
        "the man kicks forward#the/DET man/NOUN kick/VERB forward/ADV#0.0#0.0\n")
    (texts / "000002.txt").write_text(
        "a person does a kick#a/DET person/NOUN do/VERB a/DET kick/NOUN#0.0#0.0\n"
        "a person kicks#a/DET person/NOUN kick/VERB#0.0#0.0\n")
    pm = pos_mod.pos_map_from_texts(texts)
    assert pm.tokens["kick"] == "VERB"  # 3 VERB vs 1 NOUN
    out = pos_mod.vocab_tagger("A person kicks the ball, then jumps", pm)
    assert out == ["a/DET", "person/NOUN", "kick/VERB", "the/DET", "ball/NOUN", "then/X", "jumps/X"]
    with pytest.raises(HmuError, match="no caption files"):
        pos_mod.pos_map_from_texts(tmp_path / "missing")
