"""The evaluation protocols: upstream's (hmu) items and crops against the HMU fork's fixture, partial batches,
MultiModality sampling, toxic_distance / notox_accuracy, and loop tests that catch a wrong pairing or masking."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from src.data.word_vectorizer import load_word_vectorizer, wrap_caption
from src.eval.sets import hmu_draws, load_eval_set, segment_bounds


# ------------------------------------------------------------------------------------------ upstream item fixture
def _fixture(fixtures):
    d = fixtures / "hmu" / "eval_items"
    if not (d / "items.json").is_file():
        pytest.skip(f"{d} missing")
    return d, json.loads((d / "items.json").read_text()), np.load(d / "io.npz")


def _hmu_set(d, meta):
    opt = meta["opt"]
    return load_eval_set(d / "HumanML3D", "test", protocol="hmu", unit_length=opt["unit_length"],
                         min_motion_length=40, max_motion_length=meta["max_motion_length"], fps=20)


def test_hmu_items_equal_upstream_fixture(fixtures):
    d, meta, io = _fixture(fixtures)
    es = _hmu_set(d, meta)
    assert len(es) == meta["len"] - meta["pointer"]
    assert [it.length for it in es.items] == meta["length_arr"]
    np.testing.assert_array_equal([it.length for it in es.items], io["item_length"])
    for it, ref in zip(es.items, meta["items"]):
        assert it.key == ref["key"]
        assert [c.text for c in it.captions] == [ref["caption"]]
        assert list(it.captions[0].tokens) == ref["tokens"]
        src = np.load(d / "HumanML3D" / "new_joint_vecs" / f"{ref['motion_id']}.npy")
        a, b = ref["segment"]
        assert segment_bounds(float(ref["from_to_text"][0]), float(ref["from_to_text"][1]), len(src), 20)[0] == a
        np.testing.assert_array_equal(it.motion, src[a:b])


@pytest.mark.parametrize("seed", [0, 1])
def test_hmu_getitem_equals_upstream_fixture(fixtures, seed):
    """caption, sent_len, coin, crop start, m_length, word/POS arrays and the returned (normalised, zero-padded)
    motion of every item under ``random.seed(s); np.random.seed(s)``; every size read from the fixture."""
    d, meta, io = _fixture(fixtures)
    es = _hmu_set(d, meta)
    opt = meta["opt"]
    mean, std = np.load(d / "HumanML3D" / "Mean.npy"), np.load(d / "HumanML3D" / "Std.npy")
    words = load_word_vectorizer(fixtures / "word_vectorizer" / "vocab")
    draws = hmu_draws(es.items, random.Random(seed), np.random.RandomState(seed), unit_length=opt["unit_length"])
    rec = meta["getitem"][f"seed{seed}"]
    motions = io[f"seed{seed}_motion"]
    L = motions.shape[1]
    for i, (it, dr, ref) in enumerate(zip(es.items, draws, rec)):
        assert it.captions[dr.caption].text == ref["caption"]
        wrapped, sent_len = wrap_caption(it.captions[dr.caption].tokens, max_text_len=opt["max_text_len"])
        assert (sent_len, "_".join(wrapped)) == (ref["sent_len"], ref["tokens_joined"])
        assert (dr.coin, dr.start, dr.length) == (ref["coin2"], ref["crop_start"], ref["m_length"])
        assert (dr.start, dr.length, sent_len) == (io[f"seed{seed}_crop_start"][i], io[f"seed{seed}_m_length"][i],
                                                   io[f"seed{seed}_sent_len"][i])
        we, pos, _ = words.batch([wrapped], wrap=False)
        np.testing.assert_array_equal(we[0], io["word_embeddings"][i])
        np.testing.assert_array_equal(pos[0], io["pos_one_hots"][i])
        crop = it.motion[dr.start:dr.start + dr.length]
        expect = np.zeros((L, crop.shape[1]), np.float64 if dr.length < L else np.float32)
        expect[:dr.length] = (crop - mean) / std
        np.testing.assert_array_equal(expect.astype(np.float32), motions[i])
