"""Classifier-free guidance as one doubled-batch forward (``cfg_batch``) equals upstream's two forwards.

Logits within 1e-5 of the two-pass ones (computed here from ``trans_forward`` with the condition and with a zeroed
one, i.e. upstream's definition, not from the code under test), the same token ids for the same seed, and the
generator passes the option down to both transformers.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_gen import BagEncoder, g, tiny_generator

from src.models.momask import MaskTransformer, ResidualTransformer
from src.models.momask.tools import lengths_to_mask

KW = {"code_dim": 8, "num_tokens": 10, "latent_dim": 32, "ff_size": 64, "num_layers": 2, "num_heads": 4,
      "dropout": 0.1, "clip_dim": 12}
TOL = {"atol": 1e-5, "rtol": 1e-5}


def _two_pass(mt, *args, scale, res_q=None):
    """uncond + (cond - uncond) * scale from two separate trans_forward calls (upstream's forward_with_cond_scale)."""
    if res_q is None:
        ids, cond, pad = args
        c = mt.trans_forward(ids, cond, pad)
        u = mt.trans_forward(ids, torch.zeros_like(cond), pad)
    else:
        codes, cond, pad = args
        q = torch.full((codes.shape[0],), res_q, dtype=torch.long)
        c = mt.output_project(mt.trans_forward(codes, q, cond, pad), q - 1)
        u = mt.output_project(mt.trans_forward(codes, q, torch.zeros_like(cond), pad), q - 1)
    return u + (c - u) * scale


@pytest.mark.parametrize("share_weight", [False, True])
def test_batched_guidance_logits_equal_two_forwards(share_weight):
    torch.manual_seed(0)
    mt = MaskTransformer(**KW, cond_drop_prob=0.1).eval()
    rt = ResidualTransformer(**KW, num_quantizers=4, cond_drop_prob=0.1, share_weight=share_weight).eval()
    if not share_weight:
        with torch.no_grad():
            rt.output_proj_bias.normal_()  # zero at init: make the bias term count
    B, T = 9, 13
    lens = torch.tensor([13, 12, 9, 7, 7, 5, 3, 2, 1])
    pad = ~lengths_to_mask(lens, T)
    cond = torch.randn(B, KW["clip_dim"])
    ids = torch.randint(0, KW["num_tokens"] + 1, (B, T))
    with torch.no_grad():
        ref = _two_pass(mt, ids, cond, pad, scale=4.0)
        for flag in (True, False):
            got = mt.forward_with_cond_scale(ids, cond, pad, cond_scale=4.0, cfg_batch=flag)
            np.testing.assert_allclose(got[~pad.unsqueeze(1).expand_as(got)].numpy(),
                                       ref[~pad.unsqueeze(1).expand_as(ref)].numpy(), **TOL)
        codes = torch.randn(B, T, KW["code_dim"])
        for q in (1, 2, 3):                      # every projection table, the last (shared: its own) included
            ref = _two_pass(rt, codes, cond, pad, scale=5.0, res_q=q)
            for flag in (True, False):
                got = rt.forward_with_cond_scale(codes, q, cond, pad, cond_scale=5.0, cfg_batch=flag)
                keep = ~pad.unsqueeze(1).expand_as(got)
                np.testing.assert_allclose(got[keep].numpy(), ref[keep].numpy(), **TOL)


def test_batched_guidance_same_ids_and_motions_and_option_reaches_both_transformers(monkeypatch):
    caps = ["a person kicks", "a person walks", "a person waves", "someone jumps high", "a b c"]
    lens = [40, 17, 100, 48, 8]
    on, off = tiny_generator(), tiny_generator()
    on.cfg_batch, off.cfg_batch = True, False
    seen = []
    for cls in (MaskTransformer, ResidualTransformer):
        orig = cls.forward_with_cond_scale

        def spy(self, *a, _orig=orig, _cls=cls, **k):
            seen.append((_cls.__name__, k.get("cfg_batch")))
            return _orig(self, *a, **k)
        monkeypatch.setattr(cls, "forward_with_cond_scale", spy)
    ids_on, len_on = on.generate_ids(caps, lens, generator=g(7))
    assert {s for s in seen} == {("MaskTransformer", True), ("ResidualTransformer", True)}
    seen.clear()
    ids_off, len_off = off.generate_ids(caps, lens, generator=g(7))
    assert {s for s in seen} == {("MaskTransformer", False), ("ResidualTransformer", False)}
    assert torch.equal(ids_on, ids_off) and torch.equal(len_on, len_off)
    for a, b in zip(on.generate(caps, lens, generator=g(3)), off.generate(caps, lens, generator=g(3))):
        np.testing.assert_allclose(a, b, **TOL)
    assert BagEncoder.dim == KW["clip_dim"]
