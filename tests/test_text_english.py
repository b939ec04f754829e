"""The English text side (issue 15): real GloVe, MiniLM, spaCy tags, prompt checks, free-text paraphrases.

These use the pinned wheels of requirements-text.txt (scripts/_venv.sh installs them); nothing is downloaded.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from src.common.errors import HmuError


@pytest.fixture(scope="module")
def minilm_folder(tmp_path_factory):
    from src.data.pretrained import minilm_dir

    return minilm_dir(tmp_path_factory.mktemp("text_models"))


@pytest.fixture(scope="module")
def minilm(minilm_folder):
    from src.models.text_encoders import MiniLMTextEncoder

    return MiniLMTextEncoder(minilm_folder)


# ---------------------------------------------------------------------------------------------------------- GloVe
def test_glove_package_holds_the_real_glove_6b_50d():
    from src.data.pretrained import glove_6b_50d

    vectors, index = glove_6b_50d()
    assert vectors.shape == (400_000, 50) and len(index) == 400_000
    # glove.6B.50d.txt, first line: "the 0.418 0.24968 -0.41242 0.1217 0.34527 -0.044457 ..."
    np.testing.assert_allclose(vectors[index["the"], :6], [0.418, 0.24968, -0.41242, 0.1217, 0.34527, -0.044457],
                               atol=1e-6)
    # and a second published row (line 2 of the file): "," 0.013441 0.23682 -0.16899 0.40951
    np.testing.assert_allclose(vectors[index[","], :4], [0.013441, 0.23682, -0.16899, 0.40951], atol=1e-6)
    k, w, p = (vectors[index[x]] for x in ("kick", "walk", "punch"))
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(k, p) > cos(w, p)  # semantics: punch is nearer kick than walk


def test_synth_vocabulary_uses_glove_rows_and_random_oov():
    from src.data.pretrained import glove_6b_50d
    from src.data.synth.vocab import build_glove_vocabulary

    vecs, vocab, missing = build_glove_vocabulary(["kick", "walk", "zzqxkick"], seed=0)
    assert vecs.shape == (6, 50) and missing == ["zzqxkick"]
    assert vocab == sorted(["kick", "walk", "zzqxkick", "sos", "eos", "unk"])
    g, idx = glove_6b_50d()
    np.testing.assert_array_equal(vecs[vocab.index("kick")], g[idx["kick"]])
    oov = vecs[vocab.index("zzqxkick")]
    assert 3.0 < np.linalg.norm(oov) < 7.0  # GloVe's typical norm, not zeros
    again, _, _ = build_glove_vocabulary(["zzqxkick"], seed=0)
    np.testing.assert_array_equal(again[-1], oov)  # seeded: same seed, same vector


def test_synth_writes_glove_vocab_and_prompt_words_extend_it(tmp_path):
    from src.data.synth import generate_synth
    from src.data.word_vectorizer import load_word_vectorizer

    s = generate_synth(tmp_path / "synth", n=24, seed=0, workers=1)
    assert s["word_vectors"] == "glove.6B.50d" and s["word_dim"] == 50
    wv = load_word_vectorizer(tmp_path / "synth" / "glove", cache=False)
    assert wv.dim_word == 50 and wv.vectors_source == "glove.6B.50d"
    assert "haymaker" in wv  # words of synth's own prompts (the free-text ones too) are written
    assert "karateka" in wv and "nunchaku" not in wv
    assert wv.lookup("nunchaku/NOUN")[0] == wv.unk_row
    assert wv.extend(["nunchaku", "zzqxq"]) == ["nunchaku"]  # a real English word comes in, a non-word does not
    row, _ = wv.lookup("nunchaku/NOUN")
    assert row != wv.unk_row
    from src.data.pretrained import glove_vectors

    np.testing.assert_array_equal(wv.vectors[row], glove_vectors(["nunchaku"])["nunchaku"])
    emb, _ = wv.encode(["nunchaku/NOUN"])
    assert emb.shape == (1, 50)
    # a procedural vocabulary never borrows GloVe rows (different space)
    s2 = generate_synth(tmp_path / "proc", n=24, seed=0, workers=1, word_vectors="procedural")
    assert s2["word_dim"] == 300
    wp = load_word_vectorizer(tmp_path / "proc" / "glove", cache=False)
    assert wp.extend(["haymaker"]) == []


# ---------------------------------------------------------------------------------------------------------- MiniLM
def test_minilm_is_semantic(minilm):
    """A keyword-free paraphrase of a kick lies closer to 'a person kicks' than to 'a person walks'."""
    f = minilm.encode(["a person kicks", "a person walks", "someone lashes out with the leg",
                       "a person performs a roundhouse", "a man strolls along the road"])
    sim = f @ f.T
    assert sim[2, 0] > sim[2, 1] + 0.05
    assert sim[3, 0] > sim[3, 1] + 0.05
    assert sim[4, 1] > sim[4, 0] + 0.2  # and a walking paraphrase the other way round
    assert float(sim[0, 1]) < 0.8  # no padding collapse (a 128-token mean gives ~0.9 everywhere)


def test_minilm_feature_independent_of_batch_and_cached(minilm):
    one = minilm._encode(["a person kicks"])[0]
    batch = minilm._encode(["a person kicks", "a much longer caption that pads the first one with many extra tokens"])
    torch.testing.assert_close(one, batch[0], atol=1e-5, rtol=1e-5)
    assert one.shape == (384,) and abs(float(one.norm()) - 1) < 1e-5
    minilm._cache.clear()
    out = minilm.encode(["a b c kick", "a b c kick", "walk"])
    assert len(minilm._cache) == 2 and torch.equal(out[0], out[1])


def test_minilm_matches_a_manual_bert_pass(minilm_folder, minilm):
    """Independent of the encoder's code: transformers' BertModel on the unpadded ids, plain token mean, L2."""
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(minilm_folder), local_files_only=True)
    model = transformers.AutoModel.from_pretrained(str(minilm_folder), local_files_only=True).eval()
    ids = tok("someone lashes out with the leg", return_tensors="pt")
    assert ids["input_ids"].shape[1] < 20  # no padding to 128
    with torch.no_grad():
        want = torch.nn.functional.normalize(model(**ids).last_hidden_state[0].mean(0), dim=0)
    torch.testing.assert_close(minilm.encode(["someone lashes out with the leg"])[0], want, atol=1e-5, rtol=1e-5)


def test_build_minilm_checks_dim(minilm_folder):
    from src.models.text_encoders import build_text_encoder

    assert build_text_encoder("minilm", minilm_dir=minilm_folder, dim=384).dim == 384
    with pytest.raises(HmuError, match="384-d"):
        build_text_encoder("minilm", minilm_dir=minilm_folder, dim=512)


def test_tiny_preset_defaults_to_minilm_and_falls_back(monkeypatch, caplog):
    from src.train import presets

    v = presets.preset_values("tiny", "mask")
    assert v["text_encoder"] == "minilm" and v["clip_dim"] == 384
    assert presets.preset_values("tiny", "len")["input_size"] == 384
    monkeypatch.setattr("src.data.pretrained.minilm_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        v = presets.preset_values("tiny", "mask")
    assert v["text_encoder"] == "embedded" and v["clip_dim"] == 512
    assert "not installed" in caplog.text


def test_tmr_text_side_runs_minilm_through_transformers(minilm_folder):
    from src.models.tmr.text import LocalModelText, LocalTextModel

    side = LocalModelText(LocalTextModel(minilm_folder))
    x, mask = side.token_features(["a person kicks", "someone lashes out with the leg"])
    n_ids = [len(side.model.tokenizer(t)["input_ids"]) for t in ("a person kicks", "someone lashes out with the leg")]
    assert x.shape == (2, max(n_ids), 384) and mask.sum(1).tolist() == n_ids  # [CLS] ... [SEP], no padding to 128
    emb = side.sentence_embeddings(["a person kicks", ["a/DET", "person/NOUN", "kick/VERB"]])
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))


# ---------------------------------------------------------------------------------------------------------- spaCy
def test_spacy_tags_free_prompts_as_humanml3d():
    from src.data.pos import tag_prompts

    tokens, tagger = tag_prompts(["A person kicks with the left leg.", "someone lashes out"])
    assert tagger.startswith("spaCy") and "en_core_web_sm" in tagger
    assert tokens[0] == ["a/DET", "person/NOUN", "kick/VERB", "with/ADP", "the/DET", "left/ADJ", "leg/NOUN"]
    assert tokens[1][1] == "lash/VERB"


def test_fallback_tagger_names_itself(tmp_path):
    from src.data.pos import tag_prompts

    (tmp_path / "000000.txt").write_text("a person kicks forward#a/DET person/NOUN kick/VERB forward/ADV#0.0#0.0\n")
    tokens, tagger = tag_prompts(["someone kicks forward"], texts_dir=tmp_path, use_spacy=False)
    assert tagger.startswith("fallback") and str(tmp_path) in tagger
    assert tokens == [["someone/X", "kick/VERB", "forward/ADV"]]
    with pytest.raises(HmuError, match="spaCy"):
        tag_prompts(["x"], use_spacy=False)


def test_eval_tags_prompts_without_tokens_and_extends_vocab(tmp_path):
    from src.data.synth import generate_synth
    from src.data.word_vectorizer import load_word_vectorizer
    from src.eval.sets import tag_free_prompts

    generate_synth(tmp_path / "synth", n=24, seed=0, workers=1)
    wv = load_word_vectorizer(tmp_path / "synth" / "glove", cache=False)
    prompts = [{"text": "a brawler swings nunchaku", "length": 80},
               {"text": "a person walks", "tokens": ["a/DET", "person/NOUN", "walk/VERB"], "length": 80}]
    out, tagger = tag_free_prompts(prompts, texts_dir=tmp_path / "synth" / "texts", vectorizer=wv)
    assert tagger.startswith("spaCy")
    assert out[0]["tokens"][-1] == "nunchaku/NOUN" and out[1]["tokens"] == prompts[1]["tokens"]
    assert "nunchaku" in wv
    with pytest.raises(HmuError, match="no known word"):
        tag_free_prompts([{"text": "zzqx blorfq", "length": 80}], texts_dir=tmp_path / "synth" / "texts",
                         vectorizer=wv)


# ---------------------------------------------------------------------------------------------------------- checks
def test_prompt_checks(caplog):
    from src.data.prompt_check import check_prompts

    assert check_prompts(["someone lashes out with the leg", "a person kicks"]) == []
    with pytest.raises(HmuError) as e:
        check_prompts(["zzqx blorfq vvrrk"])
    assert "no known word" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(HmuError, match="no words"):
        check_prompts(["123 !!"])
    with caplog.at_level(logging.WARNING):
        warns = check_prompts(["a zzqx blorfq vvrrk"])
    assert len(warns) == 1 and "3 of 4 words unknown" in warns[0] and "\n" not in warns[0]


def test_gen_refuses_a_prompt_with_no_known_word(cli):
    r = cli("src.gen", "--dataset_name", "synth", "--text_prompt", "zzqx blorfq", "--name", "nope")
    assert r.returncode != 0
    assert "no known word" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------------------- synth
def test_free_text_paraphrases_are_outside_the_grammar(tmp_path):
    """No violence keyword; no word of the caption lexicon or of the generated captions but articles/prepositions."""
    from src.data.synth import captions as C
    from src.data.synth import generate_synth
    from src.data.synth.lexicon import LEXICON

    generate_synth(tmp_path / "synth", n=200, seed=0, workers=1)
    grammar: set[str] = set(LEXICON)
    for f in (tmp_path / "synth" / "texts").glob("*.txt"):
        for line in f.read_text().splitlines():
            grammar.update(C.words(line.split("#")[0]))
    implicit = json.loads((tmp_path / "synth" / "implicit_prompts.json").read_text())
    prompts = json.loads((tmp_path / "synth" / "prompts.json").read_text())
    for p in [*implicit, *(q for k in ("forget", "retain", "compositional") for q in prompts[k])]:
        if not p.get("free_text"):
            grammar.update(C.words(p["text"]))
    free = [p for p in implicit if p.get("free_text")]
    assert {p["action"] for p in free} == set(C.FREE_TEXT) and all("tokens" not in p for p in free)
    assert len(free) == sum(len(v) for v in C.FREE_TEXT.values())
    for p in free:
        assert not C.has_keyword(p["text"]), p["text"]
        shared = set(C.words(p["text"])) & grammar - C.FREE_TEXT_FUNCTION_WORDS
        assert not shared, (p["text"], shared)


def test_quickstart_says_clearly_when_the_text_packages_are_missing(monkeypatch):
    from src.quickstart import text_packages_note

    assert text_packages_note() is None  # installed here
    monkeypatch.setattr("src.data.pretrained.status", lambda: {"glove": False, "minilm": False, "spacy": True})
    note = text_packages_note()
    assert "not installed" in note and "MiniLM" in note and "GloVe" in note and "requirements-text.txt" in note
    assert "\n" not in note
