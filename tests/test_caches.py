"""Every on-disk cache (MiniLM text features, evaluation ground truth, LCR codes), issue 26:

- the key covers every input the cached values depend on: changing any one of them is a miss (recomputed);
- a damaged file (truncated, CRC-damaged, all zeros, rows reordered after writing, zero features under a valid
  header) is a miss with one warning that names the file, never an exception, and the result equals a fresh compute;
- a hit gives exactly what a fresh compute gives, row for row (a pairing mistake fails here).

Expected values come from computing without any cache, never from the cache code.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from src.common.npz_cache import HEADER

CORRUPTIONS = ["truncated", "crc", "zeros", "rows_reversed", "garbage_tail_header", "foreign_header"]


def corrupt(path: Path, how: str, array: str) -> None:
    """Damage the cache file ``path`` in place; ``array`` names its main array (for row reversal)."""
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "crc":  # one flipped byte inside the stored data: the zip member's CRC-32 no longer matches
        b = bytearray(data)
        b[int(len(b) * 0.4)] ^= 0xFF
        path.write_bytes(bytes(b))
    elif how == "zeros":
        path.write_bytes(b"\0" * len(data))
    elif how in ("rows_reversed", "garbage_tail_header", "foreign_header"):
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if how == "rows_reversed":
            arrays[array] = arrays[array][::-1].copy()
        elif how == "garbage_tail_header":
            arrays[HEADER] = np.asarray("{not json")
        else:
            h = json.loads(str(arrays[HEADER]))
            h["key"] = "0" * 64
            arrays[HEADER] = np.asarray(json.dumps(h))
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    else:  # pragma: no cover
        raise ValueError(how)


def _warned_about(caplog, path: Path) -> bool:
    return any(r.levelno == logging.WARNING and str(path) in r.getMessage() for r in caplog.records)


# ============================================================================================ MiniLM text features
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "person", "kicks", "walks", "jumps", "runs", "waves",
         "sits", "left", "right", "slowly"]
CAPTIONS = ["a person kicks", "a person walks slowly", "jumps", "a person waves left", "runs right", "sits"]


def _tiny_bert(d: Path, seed: int = 0, vocab: list[str] = WORDS) -> Path:
    """A tiny random BERT folder in the Hugging Face layout MiniLM's loader reads (weights, config, tokenizer)."""
    import torch
    import transformers

    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(d / "vocab.txt")).save_pretrained(str(d))
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=64)
    transformers.BertModel(cfg).save_pretrained(str(d))
    return d


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    pytest.importorskip("transformers")
    return _tiny_bert(tmp_path_factory.mktemp("bert") / "m")


def _fresh(model_dir) -> np.ndarray:
    """Features computed with no cache at all: the expected values."""
    from src.models.text_encoders import MiniLMTextEncoder

    return MiniLMTextEncoder(model_dir).encode(CAPTIONS).numpy()


def _write_cache(model_dir, path: Path, captions=CAPTIONS, feats=None) -> None:
    from src.models.text_encoders import MiniLMTextEncoder, write_feature_cache

    enc = MiniLMTextEncoder(model_dir)
    feats = enc.encode(captions).numpy() if feats is None else feats
    write_feature_cache(path, captions, feats, model=enc.model_id())


def _count_model_calls(monkeypatch):
    from src.models.text_encoders import MiniLMTextEncoder

    calls = []
    orig = MiniLMTextEncoder._encode

    def counting(self, texts):
        calls.append(list(texts))
        return orig(self, texts)

    monkeypatch.setattr(MiniLMTextEncoder, "_encode", counting)
    return calls


def test_minilm_cache_hit_gives_each_caption_its_own_feature(bert, tmp_path, monkeypatch, caplog):
    """Catches: cached features paired with the wrong captions (any permutation), or the cache not used."""
    from src.models.text_encoders import MiniLMTextEncoder

    expect = _fresh(bert)
    cache = tmp_path / "f.npz"
    _write_cache(bert, cache)
    calls = _count_model_calls(monkeypatch)
    enc = MiniLMTextEncoder(bert, cache_file=cache)
    n_probe = sum(len(c) for c in calls)
    assert n_probe <= 2                                      # the spot check re-encodes at most two captions
    got = enc.encode(CAPTIONS[::-1]).numpy()[::-1]           # asked in another order
    assert sum(len(c) for c in calls) == n_probe, "a cached caption went through the model"
    np.testing.assert_allclose(got, expect, atol=1e-5)
    assert not _warned_about(caplog, cache)


@pytest.mark.parametrize("change", ["weights", "tokenizer", "max_length", "pooling"])
def test_minilm_cache_key_covers_each_input(bert, tmp_path, monkeypatch, change, caplog):
    """A cache written under other weights / tokenizer / max length / pooling is not used: the features come from
    the model in use. Catches: the weights check dropped (or any other key input)."""
    from src.models.text_encoders import MiniLMTextEncoder

    cache = tmp_path / "f.npz"
    _write_cache(bert, cache)
    other = tmp_path / "other"
    shutil.copytree(bert, other)
    if change == "weights":
        shutil.rmtree(other)
        _tiny_bert(other, seed=1)
    elif change == "tokenizer":  # same words, two swapped: other token ids for the same text
        shutil.rmtree(other)
        v = list(WORDS)
        v[7], v[8] = v[8], v[7]
        _tiny_bert(other, seed=0, vocab=v)
    elif change == "max_length":
        monkeypatch.setattr(MiniLMTextEncoder, "max_length", 3)
    else:
        monkeypatch.setattr(MiniLMTextEncoder, "pooling", "cls")
    expect = MiniLMTextEncoder(other).encode(CAPTIONS).numpy()
    enc = MiniLMTextEncoder(other, cache_file=cache)
    np.testing.assert_allclose(enc.encode(CAPTIONS).numpy(), expect, atol=1e-5)
    assert _warned_about(caplog, cache)


def test_minilm_weights_check_rejects_a_cache_of_other_weights_even_with_equal_size(bert, tmp_path, caplog):
    """The weights file is changed in place, keeping its size (one float perturbed): the cache is not used."""
    from src.models.text_encoders import MiniLMTextEncoder

    cache = tmp_path / "f.npz"
    other = tmp_path / "same_size"
    shutil.copytree(bert, other)
    _write_cache(other, cache)
    w = other / "model.safetensors"
    b = bytearray(w.read_bytes())
    b[-7] ^= 0x40                     # inside the last tensor's data
    w.write_bytes(bytes(b))
    expect = MiniLMTextEncoder(other).encode(CAPTIONS).numpy()
    enc = MiniLMTextEncoder(other, cache_file=cache)
    np.testing.assert_allclose(enc.encode(CAPTIONS).numpy(), expect, atol=1e-5)
    assert _warned_about(caplog, cache)


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_minilm_damaged_cache_is_ignored_with_a_warning_naming_it(bert, tmp_path, how, caplog):
    from src.models.text_encoders import MiniLMTextEncoder

    cache = tmp_path / "f.npz"
    _write_cache(bert, cache)
    corrupt(cache, how, "features")
    enc = MiniLMTextEncoder(bert, cache_file=cache)         # no exception
    np.testing.assert_allclose(enc.encode(CAPTIONS).numpy(), _fresh(bert), atol=1e-5)
    assert _warned_about(caplog, cache)


@pytest.mark.parametrize("bad", ["zero_features", "paired_wrong", "not_unit"])
def test_minilm_cache_written_wrong_is_not_used(bert, tmp_path, bad, caplog):
    """A well-formed file (good header and checksums) whose features are zeros, belong to other captions (rows
    reversed before writing), or are not unit vectors: the hit checks refuse it."""
    from src.models.text_encoders import MiniLMTextEncoder

    feats = _fresh(bert)
    feats = {"zero_features": np.zeros_like(feats), "paired_wrong": feats[::-1].copy(),
             "not_unit": 3 * feats}[bad]
    cache = tmp_path / "f.npz"
    _write_cache(bert, cache, feats=feats)
    enc = MiniLMTextEncoder(bert, cache_file=cache)
    np.testing.assert_allclose(enc.encode(CAPTIONS).numpy(), _fresh(bert), atol=1e-5)
    assert _warned_about(caplog, cache)


# ============================================================================================ evaluation cache
def _eval_case(root: Path):
    from test_eval_loop import oracle_setup, tiny_evaluator

    es, _, by_text = oracle_setup(root, n=12)
    return es, tiny_evaluator(), by_text


def test_eval_cache_key_covers_each_input(tmp_path):
    """Changing any input of the ground-truth embeddings gives another key: the evaluator's weights, mean, std,
    word vectors, vocabulary, config; an item's motion, length, key, caption tokens; text-only vs with motions."""
    import dataclasses

    import torch

    from src.eval.cache import cache_key
    from src.eval.sets import EvalSet

    es, ev, _ = _eval_case(tmp_path)
    base = cache_key(es, ev)
    keys = {"base": base, "text-only": cache_key(es, ev, motions=False)}

    def ev_with(**kw):
        e = dataclasses.replace(ev, _key=None, **kw)
        return e

    keys["mean"] = cache_key(es, ev_with(mean=ev.mean + 1e-3))
    keys["std"] = cache_key(es, ev_with(std=ev.std * 1.001))
    from src.data.word_vectorizer import WordVectorizer

    W = ev.words
    keys["word_vectors"] = cache_key(es, ev_with(words=WordVectorizer(W.vectors * 1.001, W.word2idx, W.words)))
    w2i = dict(W.word2idx)
    w2i["w0"], w2i["w1"] = w2i["w1"], w2i["w0"]
    keys["vocabulary"] = cache_key(es, ev_with(words=WordVectorizer(W.vectors, w2i, W.words)))
    import copy

    m2 = copy.deepcopy(ev.model)
    with torch.no_grad():
        next(iter(m2.parameters())).add_(1e-3)
    keys["weights"] = cache_key(es, ev_with(model=m2))
    it0 = es.items[0]
    items = list(es.items)
    items[0] = dataclasses.replace(it0, motion=it0.motion + np.float32(1e-3))
    keys["motion"] = cache_key(EvalSet(es.name, tuple(items), source=es.source, protocol=es.protocol), ev)
    items = list(es.items)
    cap = it0.captions[0]
    items[0] = dataclasses.replace(it0, captions=(dataclasses.replace(cap, tokens=cap.tokens[::-1]),
                                                  *it0.captions[1:]))
    keys["tokens"] = cache_key(EvalSet(es.name, tuple(items), source=es.source, protocol=es.protocol), ev)
    items = list(es.items)
    items[0] = dataclasses.replace(it0, key=it0.key + "x")
    keys["item_key"] = cache_key(EvalSet(es.name, tuple(items), source=es.source, protocol=es.protocol), ev)
    assert len(set(keys.values())) == len(keys), keys


@pytest.mark.parametrize("how", [*CORRUPTIONS, "zero_text_emb"])
def test_eval_cache_damaged_file_is_recomputed_and_rewritten(tmp_path, how, caplog):
    from src.eval import cache as C

    es, ev, _ = _eval_case(tmp_path / "data")
    cdir = tmp_path / "cache"
    C.clear_memo()
    fresh = C.gt_embeddings(es, ev, None)                    # no disk cache: the expected values
    C.clear_memo()
    C.gt_embeddings(es, ev, cdir)
    (path,) = cdir.glob("*.npz")
    if how == "zero_text_emb":
        from src.common.npz_cache import write_cache

        write_cache(path, {"text_emb": np.zeros_like(fresh["text_emb"]), "motion_emb": fresh["motion_emb"]},
                    kind=C.CACHE_KIND, key=C.full_cache_key(es, ev))
    else:
        corrupt(path, how, "text_emb")
    C.clear_memo()
    before = dict(ev.calls)
    got = C.gt_embeddings(es, ev, cdir)                      # no exception
    assert ev.calls["text"] > before["text"] and ev.calls["motion"] > before["motion"]   # recomputed
    for k in fresh:
        np.testing.assert_allclose(got[k], fresh[k], atol=1e-6)
    assert _warned_about(caplog, path)
    C.clear_memo()
    caplog.clear()
    after = dict(ev.calls)
    C.gt_embeddings(es, ev, cdir)                            # the rewritten file is a good hit
    assert ev.calls == after and not _warned_about(caplog, path)


def test_eval_cache_hit_is_row_for_row_the_fresh_embeddings(tmp_path):
    from src.eval import cache as C

    es, ev, _ = _eval_case(tmp_path / "data")
    C.clear_memo()
    fresh = C.gt_embeddings(es, ev, None)
    C.clear_memo()
    C.gt_embeddings(es, ev, tmp_path / "c")
    C.clear_memo()
    calls = dict(ev.calls)
    hit = C.gt_embeddings(es, ev, tmp_path / "c")
    assert ev.calls == calls
    for k in fresh:
        np.testing.assert_array_equal(hit[k], fresh[k])
    C.clear_memo()


# ============================================================================================ LCR code cache
@pytest.fixture(scope="module")
def vq():
    from helpers_methods import seeded_tiny_vq

    return seeded_tiny_vq()


def _small_folder(synth_root: Path, dst: Path, n: int = 6):
    from src.data.humanml3d import HumanML3DFolder

    src = HumanML3DFolder(synth_root, "synth")
    ids = src.ids("train")[:n]
    (dst / "new_joint_vecs").mkdir(parents=True)
    (dst / "texts").mkdir()
    for mid in ids:
        shutil.copy2(src.motion_path(mid), dst / "new_joint_vecs" / f"{mid}.npy")
        shutil.copy2(src.text_path(mid), dst / "texts" / f"{mid}.txt")
    for f in ("Mean.npy", "Std.npy"):
        shutil.copy2(synth_root / f, dst / f)
    (dst / "train.txt").write_text("\n".join(ids) + "\n")
    return HumanML3DFolder(dst, "synth"), ids


def _collect(vq, folder, ids, cache_dir, **kw):
    from src.methods.collect import CropSettings, collect_codes

    mean, std = folder.mean_std()
    args = {"mean": mean, "std": std, "settings": CropSettings(n_crops=2, per_caption=True), "cache_dir": cache_dir}
    args.update(kw)
    return collect_codes(vq, folder, ids, **args)


@pytest.mark.parametrize("change", ["vq_weights", "motion_file", "caption_file", "mean", "std", "settings", "ids"])
def test_lcr_cache_key_covers_each_input(vq, synth_root, tmp_path, change):
    """After a cached run, changing one input is a miss and gives the codes a run without cache gives."""
    import copy

    import torch

    from src.methods.collect import CropSettings

    folder, ids = _small_folder(synth_root, tmp_path / "data")
    cache = tmp_path / "cache"
    _collect(vq, folder, ids, cache)
    kw, model = {}, vq
    if change == "vq_weights":
        model = copy.deepcopy(vq)
        with torch.no_grad():
            model.quantizer.layers[0].codebook.mul_(-1)
    elif change == "motion_file":
        p = folder.motion_path(ids[0])
        x = np.load(p)
        np.save(p, x[::-1].copy())
    elif change == "caption_file":  # one more caption line: per-caption rows change
        t = folder.text_path(ids[0])
        t.write_text(t.read_text() + t.read_text().splitlines()[0] + "\n")
    elif change in ("mean", "std"):
        mean, std = folder.mean_std()
        kw = {"mean": mean + 0.5, "std": std} if change == "mean" else {"mean": mean, "std": std * 2}
    elif change == "settings":
        kw = {"settings": CropSettings(n_crops=2, per_caption=True, seed=1)}
    else:
        ids = ids[:-1]
    table, hit = _collect(model, folder, ids, cache, **kw)
    assert hit is False
    expect, _ = _collect(model, folder, ids, None, **kw)
    assert np.array_equal(table.codes, expect.codes) and table.ids == expect.ids
    assert np.array_equal(table.motion, expect.motion)


@pytest.mark.parametrize("how", [*CORRUPTIONS, "codes_out_of_range"])
def test_lcr_damaged_cache_is_rebuilt_with_a_warning_naming_it(vq, synth_root, tmp_path, how, caplog):
    folder, ids = _small_folder(synth_root, tmp_path / "data")
    cache = tmp_path / "cache"
    expect, _ = _collect(vq, folder, ids, None)
    _collect(vq, folder, ids, cache)
    (path,) = cache.glob("*.npz")
    if how == "codes_out_of_range":  # a consistent header over codes no encoder gives (-5): refused by the checks
        from src.common.npz_cache import write_cache
        from src.methods.collect import CACHE_KIND

        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != HEADER}
            key = json.loads(str(z[HEADER]))["key"]
        arrays["codes"] = np.full_like(arrays["codes"], -5)
        write_cache(path, arrays, kind=CACHE_KIND, key=key)
    else:
        corrupt(path, how, "codes")
    table, hit = _collect(vq, folder, ids, cache)         # no exception
    assert hit is False and np.array_equal(table.codes, expect.codes) and np.array_equal(table.motion, expect.motion)
    assert _warned_about(caplog, path)
    caplog.clear()
    _, hit = _collect(vq, folder, ids, cache)             # rebuilt: the next run hits, silently
    assert hit is True and not _warned_about(caplog, path)


def test_lcr_cache_that_cannot_be_written_is_a_warning_not_a_failure(vq, synth_root, tmp_path, monkeypatch, caplog):
    import errno

    import src.common.npz_cache as NC

    folder, ids = _small_folder(synth_root, tmp_path / "data")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(NC, "write_cache", full)
    expect, _ = _collect(vq, folder, ids, None)
    table, hit = _collect(vq, folder, ids, tmp_path / "cache")
    assert hit is False and np.array_equal(table.codes, expect.codes)
    assert any("could not write the LCR code cache" in r.getMessage() for r in caplog.records)


def test_text_features_cli_refuses_a_good_cache_and_rebuilds_a_damaged_one(bert, synth_root, tmp_path, monkeypatch,
                                                                           capsys, caplog):
    """src.prepare.text_features: a good cache is kept without --force; a truncated one is rebuilt (one warning naming
    it), and the rebuilt file gives every caption its own model feature."""
    import src.data.pretrained as pretrained
    from src.models.text_encoders import MiniLMTextEncoder, read_feature_cache, text_cache_file
    from src.prepare.text_features import main

    monkeypatch.setattr(pretrained, "minilm_dir", lambda *a, **k: bert)
    _small_folder(synth_root, tmp_path / "ds" / "synth")
    argv = ["--dataset_name", "synth", "--dataset_dir", str(tmp_path / "ds"), "--gpu_id", "-1"]
    assert main(argv) == 0
    out = text_cache_file(tmp_path / "ds" / "synth")
    assert main(argv) == 2 and "--force" in capsys.readouterr().err
    corrupt(out, "truncated", "features")
    assert main(argv) == 0 and _warned_about(caplog, out)
    enc = MiniLMTextEncoder(bert)
    caps, feats = read_feature_cache(out, model=enc.model_id(), dim=enc.dim)
    np.testing.assert_allclose(feats, enc.encode(caps).numpy(), atol=1e-5)
