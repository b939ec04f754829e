"""The evaluation's fast motion encoding: ``input_emb`` folded into the GRU equals the plain encoder (1e-5), follows
in-place weight updates, and leaves the state dict alone."""
from __future__ import annotations

import numpy as np
import torch

from src.models.evaluator import MotionEncoderBiGRUCo

TOL = {"atol": 1e-5, "rtol": 1e-5}


def _inputs(seed=0, n=23, t=17, d=10):
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(1, t + 1, (n,), generator=g).sort(descending=True).values
    return torch.randn(n, t, d, generator=g), lens


def test_fused_motion_encoder_equals_plain_and_follows_weight_updates():
    torch.manual_seed(0)
    enc = MotionEncoderBiGRUCo(input_size=10, hidden_size=16, output_size=8).eval()
    keys = set(enc.state_dict())
    x, lens = _inputs()
    with torch.no_grad():
        np.testing.assert_allclose(enc.forward_fused(x, lens).numpy(), enc(x, lens).numpy(), **TOL)
        for p in (enc.input_emb.weight, enc.input_emb.bias, enc.gru.weight_ih_l0_reverse, enc.gru.bias_hh_l0):
            p.add_(0.3 * torch.randn_like(p))   # an in-place update (an optimiser step): the folded GRU is rebuilt
            np.testing.assert_allclose(enc.forward_fused(x, lens).numpy(), enc(x, lens).numpy(), **TOL)
    assert set(enc.state_dict()) == keys
    x2, lens2 = _inputs(1)
    with torch.no_grad():
        np.testing.assert_allclose(enc.forward_fused(x2, lens2).numpy(), enc(x2, lens2).numpy(), **TOL)
