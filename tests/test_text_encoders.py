"""Text encoders: the embedded bag-of-vectors encoder on a tiny vocabulary, CLIP's local-file rules."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from src.common.errors import HmuError
from src.models.text_encoders import (
    ClipTextEncoder,
    EmbeddedTextEncoder,
    build_text_encoder,
    lemma_candidates,
    orthogonal_projection,
    tokenize_words,
)

WORDS = ["person", "walk", "kick", "wave", "run", "punch", "carry", "forward"]


@pytest.fixture
def glove(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(WORDS), 6)).astype(np.float32)
    np.save(tmp_path / "our_vab_data.npy", vecs)
    with open(tmp_path / "our_vab_words.pkl", "wb") as fh:
        pickle.dump(WORDS, fh)
    with open(tmp_path / "our_vab_idx.pkl", "wb") as fh:
        pickle.dump({w: i for i, w in enumerate(WORDS)}, fh)
    return tmp_path, vecs


def test_embedded_is_projected_mean_of_known_words(glove):
    d, vecs = glove
    enc = EmbeddedTextEncoder(d, dim=10, seed=3)
    assert enc.dim == 10
    out = enc.encode(["A person walks forward.", "zzz qqq", "Kicking, punches and waved!"])
    assert out.shape == (3, 10) and out.dtype == torch.float32
    proj = orthogonal_projection(6, 10, 3)
    np.testing.assert_allclose(proj @ proj.T, np.eye(6), atol=1e-5)  # orthonormal rows: distances kept
    want0 = vecs[[0, 1, 7]].mean(0) @ proj
    np.testing.assert_allclose(out[0].numpy(), want0, atol=1e-5)
    assert torch.count_nonzero(out[1]) == 0  # no known word: zero feature
    np.testing.assert_allclose(out[2].numpy(), vecs[[2, 5, 3]].mean(0) @ proj, atol=1e-5)


def test_embedded_is_deterministic_and_seeded(glove):
    d, _ = glove
    a = EmbeddedTextEncoder(d, dim=8, seed=1).encode(["a person runs"])
    b = EmbeddedTextEncoder(d, dim=8, seed=1).encode(["a person runs"])
    c = EmbeddedTextEncoder(d, dim=8, seed=2).encode(["a person runs"])
    assert torch.equal(a, b) and not torch.allclose(a, c)
    small = EmbeddedTextEncoder(d, dim=4, seed=1)  # fewer output dims than word dims also works
    assert small.encode(["walk"]).shape == (1, 4)
    assert build_text_encoder("embedded", glove_dir=d, dim=8, seed=1).encode(["a person runs"]).equal(a)


def test_tokenizer_and_lemmas():
    assert tokenize_words("A person's KICK-jump!") == ["a", "person", "s", "kick", "jump"]
    assert "run" in lemma_candidates("running") and "stop" in lemma_candidates("stopped")
    assert "wave" in lemma_candidates("waving") and "wave" in lemma_candidates("waved")
    assert "carry" in lemma_candidates("carries") and "punch" in lemma_candidates("punches")
    assert "kick" in lemma_candidates("kicks") and lemma_candidates("kick") == []


def test_embedded_errors(tmp_path, glove):
    with pytest.raises(HmuError, match="our_vab_data.npy"):
        EmbeddedTextEncoder(tmp_path / "none")
    d, _ = glove
    with open(d / "our_vab_idx.pkl", "wb") as fh:
        pickle.dump({"walk": 99}, fh)
    with pytest.raises(HmuError, match="outside"):
        EmbeddedTextEncoder(d)
    with pytest.raises(HmuError, match="unknown text encoder"):
        build_text_encoder("bert")
    with pytest.raises(HmuError, match="glove"):
        build_text_encoder("embedded")


def test_clip_missing_file_says_where_to_put_it(tmp_path):
    target = tmp_path / "clip" / "ViT-B-32.pt"
    with pytest.raises(HmuError) as e:
        ClipTextEncoder(target)
    msg = str(e.value)
    assert str(target) in msg and "ViT-B-32.pt" in msg and "\n" not in msg
    with pytest.raises(HmuError, match="ViT-B-32.pt"):
        build_text_encoder("clip", clip_path=target)


def test_clip_local_state_dict_loads_and_encodes(tmp_path):
    """A tiny random CLIP saved as a state dict goes through the real loading and tokenising path (never skipped)."""
    from src.models.text_encoders import _clip_submodules

    build_model, _ = _clip_submodules()
    clip_model_mod = __import__(build_model.__module__, fromlist=["CLIP"])
    torch.manual_seed(0)
    ref = clip_model_mod.CLIP(embed_dim=16, image_resolution=32, vision_layers=1, vision_width=64,
                              vision_patch_size=16, context_length=77, vocab_size=49408, transformer_width=64,
                              transformer_heads=1, transformer_layers=1)
    path = tmp_path / "tiny_clip.pt"
    torch.save(ref.state_dict(), path)
    enc = ClipTextEncoder(path)
    assert enc.dim == 16
    tokens = enc.tokenize(["a person kicks", "x " * 100])
    assert tokens.shape == (2, 77) and tokens[0, 0] == 49406 and tokens[1, -1] == 49407
    feats = enc.encode(["a person kicks", "a person walks"])
    assert feats.shape == (2, 16) and feats.dtype == torch.float32
    with torch.no_grad():
        want = build_model(torch.load(path, weights_only=True)).float().eval().encode_text(tokens[:1])
    torch.testing.assert_close(feats[:1], want)
    with pytest.raises(HmuError, match="expects 512"):
        build_text_encoder("clip", clip_path=path, dim=512)


@pytest.mark.slow
def test_clip_vit_b32_text_tower_in_openai_layout(tmp_path):
    """A randomly initialised ViT-B/32 text tower, saved as OpenAI's released file is (a TorchScript archive of the
    whole CLIP, fp16 weights), loads through ClipTextEncoder with the exact BPE tokenizer of clip-anytorch.

    Runs in CI: requirements.txt brings ftfy and regex, requirements-text.txt clip-anytorch (no skip here).
    """
    from src.models.text_encoders import _clip_submodules

    build_model, tokenizer_cls = _clip_submodules()
    clip_model_mod = __import__(build_model.__module__, fromlist=["CLIP", "convert_weights"])
    torch.manual_seed(0)
    # ViT-B/32's text side exactly (embed 512, width 512, 8 heads, 12 layers, 49408 tokens, 77 positions); the image
    # side is shrunk (it is never used by a text encoder) to keep the file small
    ref = clip_model_mod.CLIP(embed_dim=512, image_resolution=32, vision_layers=1, vision_width=64,
                              vision_patch_size=32, context_length=77, vocab_size=49408, transformer_width=512,
                              transformer_heads=8, transformer_layers=12).eval()
    captions = ["a person kicks", "a person walks"]
    with torch.no_grad():  # a copy is traced: the trace shares its parameters, and .half() below must not touch ref
        traced = torch.jit.trace(copy.deepcopy(ref), (torch.zeros(1, 3, 32, 32), torch.zeros(1, 77, dtype=torch.long)),
                                 check_trace=False)
    traced = traced.half()  # the release stores fp16 weights
    path = tmp_path / "ViT-B-32.pt"
    torch.jit.save(traced, str(path))
    enc = ClipTextEncoder(path)
    assert enc.dim == 512 and len(enc.model.transformer.resblocks) == 12
    # the exact BPE vocabulary: OpenAI's README tokenises "a photo of a cat" to these ids
    toks = enc.tokenize(["a photo of a cat", "a diagram"])
    assert toks[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407] and int(toks[0, 7:].abs().sum()) == 0
    assert len(tokenizer_cls().encoder) == 49408
    feats = enc.encode(captions)
    assert feats.shape == (2, 512) and feats.dtype == torch.float32
    with torch.no_grad():  # the fp32 model it came from, up to the fp16 rounding of the saved weights
        want = ref.encode_text(enc.tokenize(captions))
    torch.testing.assert_close(feats, want, atol=2e-2, rtol=2e-2)
    assert float((feats[0] - feats[1]).abs().max()) > 1e-3  # different captions, different features
