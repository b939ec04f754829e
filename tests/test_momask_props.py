"""Property tests of the MoMask models on tiny random CPU models (no fixtures needed)."""
from __future__ import annotations

import pytest
import torch

from src.models.momask import RVQVAE, LengthEstimator, MaskTransformer, ResidualTransformer
from src.models.momask.tools import cosine_schedule, decode_start, lengths_to_mask, top_k

SIZES = {"code_dim": 8, "num_tokens": 10, "latent_dim": 16, "ff_size": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.1,
             "clip_dim": 12}


def tiny_vq(**kw):
    args = {"input_width": 7, "nb_code": 10, "code_dim": 8, "down_t": 2, "stride_t": 2, "width": 16, "depth": 2,
                "dilation_growth_rate": 3, "num_quantizers": 3, "quantize_dropout_prob": 0.5, "mu": 0.9}
    args.update(kw)
    return RVQVAE(**args)


def trained_vq(seed=0, **kw):
    torch.manual_seed(seed)
    vq = tiny_vq(**kw)
    vq.train()
    with torch.no_grad():
        vq(torch.randn(4, 16, 7))  # first training pass initialises the codebooks from data
    return vq.eval()


def test_vq_decode_of_encode_equals_forward():
    vq = trained_vq()
    x = torch.randn(2, 16, 7)
    with torch.no_grad():
        idx, codes = vq.encode(x)
        assert idx.shape == (2, 4, 3) and codes.shape == (3, 2, 8, 4)
        out, _, _ = vq(x)
        torch.testing.assert_close(vq.forward_decoder(idx), out, atol=1e-5, rtol=1e-5)
        # a missing layer (-1) equals dropping that layer
        torch.testing.assert_close(vq.forward_decoder(torch.cat([idx[..., :1], -torch.ones_like(idx[..., 1:])], -1)),
                                   vq.forward_decoder(idx[..., :1]))


def test_vq_training_updates_codebook_and_quantize_dropout():
    torch.manual_seed(0)
    vq = tiny_vq(quantize_dropout_prob=1.0)
    vq.train()
    before = vq.quantizer.layers[0].codebook.clone()
    _, idx, _loss, _ = vq.quantizer(vq.encoder(torch.randn(3, 7, 16)), force_dropout_index=0)
    assert not torch.equal(before, vq.quantizer.layers[0].codebook)  # EMA init/update happened
    assert (idx[..., 1:] == -1).all() and (idx[..., 0] >= 0).all()
    out, commit, _ = vq(torch.randn(3, 16, 7))
    (out.pow(2).mean() + commit).backward()
    assert vq.encoder.model[0].weight.grad is not None


def test_dead_codes_are_reset_to_data():
    torch.manual_seed(0)
    q = RVQVAE(input_width=4, nb_code=6, code_dim=4, down_t=1, stride_t=2, width=8, depth=1,
               dilation_growth_rate=2, num_quantizers=1, mu=0.5).quantizer.layers[0]
    q.train()
    x = torch.randn(2, 4, 5)
    q(x)
    q.codebook[0] = 1e6  # a code no vector is near
    q.code_count[0] = 0.0
    q(x)
    assert q.codebook[0].abs().max() < 1e3


def test_loaded_codebook_is_not_reinitialised():
    src = trained_vq()
    vq = tiny_vq()
    vq.load_state_dict(src.state_dict())
    vq.train()
    cb = vq.quantizer.layers[0].codebook.clone()
    vq.quantizer.layers[0].mu = 1.0  # EMA with mu=1 keeps the loaded centres
    with torch.no_grad():
        vq(torch.randn(2, 16, 7))
    torch.testing.assert_close(vq.quantizer.layers[0].codebook, cb)


def test_mask_transformer_padding_and_cfg():
    torch.manual_seed(0)
    mt = MaskTransformer(cond_drop_prob=0.1, **SIZES).eval()
    ids = torch.randint(0, 10, (2, 6))
    text = torch.randn(2, 12)
    pad = lengths_to_mask(torch.tensor([6, 4]), 6).logical_not()
    with torch.no_grad():
        full = mt.trans_forward(ids, text, pad)
        # padded positions do not influence valid ones
        ids2 = ids.clone()
        ids2[1, 4:] = mt.pad_id
        torch.testing.assert_close(mt.trans_forward(ids2, text, pad)[1, :, :4], full[1, :, :4])
        un = mt.trans_forward(ids, text, pad, force_mask=True)
        torch.testing.assert_close(mt.forward_with_cond_scale(ids, text, pad, cond_scale=3), un + 3 * (full - un))
        torch.testing.assert_close(mt.forward_with_cond_scale(ids, text, pad, cond_scale=1), full)
    assert full.shape == (2, 10, 6)


def test_mask_transformer_train_loss_and_generate():
    torch.manual_seed(0)
    mt = MaskTransformer(cond_drop_prob=0.5, **SIZES)
    g = torch.Generator().manual_seed(1)
    loss, pred, acc = mt(torch.randint(0, 10, (3, 6)), torch.randn(3, 12), torch.tensor([6, 3, 5]), generator=g)
    loss.backward()
    assert torch.isfinite(loss) and 0 <= acc <= 1 and pred.shape == (3, 6)
    lens = torch.tensor([5, 2])
    text = torch.randn(2, 12)
    out1 = mt.generate(text, lens, timesteps=4, cond_scale=2, generator=torch.Generator().manual_seed(3))
    out2 = mt.generate(text, lens, timesteps=4, cond_scale=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out1, out2) and mt.training  # seeded, and the training flag is restored
    assert out1.shape == (2, 5) and (out1[1, 2:] == -1).all() and ((out1[0] >= 0) & (out1[0] < 10)).all()


@pytest.mark.parametrize("share_weight", [True, False])
def test_residual_transformer(share_weight):
    torch.manual_seed(0)
    rt = ResidualTransformer(num_quantizers=4, cond_drop_prob=0.2, share_weight=share_weight, **SIZES)
    token, proj = rt.process_embed_proj_weight()
    assert token.shape == proj.shape == (3, 11, 8)
    if share_weight:  # projection of layer q and embedding of layer q+1 are one table
        torch.testing.assert_close(proj[:-1], token[1:])
    ids = torch.randint(0, 10, (2, 5, 4))
    lens = torch.tensor([5, 3])
    loss, _, _ = rt(ids, torch.randn(2, 12), lens, generator=torch.Generator().manual_seed(0))
    loss.backward()
    out = rt.generate(ids[..., 0], torch.randn(2, 12), lens, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 5, 4) and torch.equal(out[0, :, 0], ids[0, :, 0]) and (out[1, 3:] == -1).all()
    assert rt.generate(ids[..., 0], torch.randn(2, 12), lens, num_res_layers=1).shape == (2, 5, 2)


def test_residual_transformer_rejects_shared_codebook():
    with pytest.raises(ValueError):
        ResidualTransformer(num_quantizers=3, cond_drop_prob=0.2, shared_codebook=True, **SIZES)


def test_schedule_and_topk():
    assert cosine_schedule(torch.tensor(0.0)) == 1 and abs(cosine_schedule(torch.tensor(1.0))) < 1e-6
    t = top_k(torch.tensor([[0.1, 0.5, 0.3, 0.9]]), thres=0.5)
    assert torch.isinf(t).sum() == 2 and t[0, 3] == 0.9 and t[0, 1] == 0.5


def test_length_estimator_shape():
    assert LengthEstimator(input_size=12, output_size=7)(torch.randn(3, 12)).shape == (3, 7)


def test_no_device_names_in_library_code():
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "src"
    files = list((root / "models" / "momask").glob("*.py")) + [root / "models" / "checkpoint.py",
                                                                root / "models" / "text_encoders.py"]
    for f in files:
        assert not re.search(r"\.cuda\(|['\"]cuda", f.read_text()), f


def test_gumbel_noise_is_finite_and_gumbel_distributed():
    """Regression: the inner clamp must apply to -log(u), else every value is NaN and training collapses to code 0."""
    import torch

    from src.models.momask.vq import _gumbel_noise

    g = _gumbel_noise(torch.zeros(200_000), torch.Generator().manual_seed(0))
    assert torch.isfinite(g).all()
    # Standard Gumbel: mean = Euler-Mascheroni constant, variance = pi^2 / 6.
    assert abs(g.mean().item() - 0.5772) < 0.01
    assert abs(g.var().item() - 3.14159 ** 2 / 6) < 0.03


def test_residual_transformer_handles_a_one_token_motion():
    """Regression: the padding mask for [cond, layer, tokens] must be built even when the motion has a single token."""
    import torch

    from src.models.momask import ResidualTransformer

    torch.manual_seed(0)
    rt = ResidualTransformer(code_dim=8, num_tokens=6, latent_dim=16, ff_size=32, num_layers=1, num_heads=2,
                             dropout=0.0, clip_dim=12, cond_drop_prob=0.0, num_quantizers=3, share_weight=True,
                             shared_codebook=False).eval()
    codes = torch.randn(2, 1, 8)
    pad = torch.zeros(2, 1, dtype=torch.bool)
    out = rt.forward_with_cond_scale(codes, 1, torch.randn(2, 12), pad, cond_scale=2)
    assert out.shape[-1] == 1 and torch.isfinite(out).all()


@pytest.mark.parametrize("cls", [MaskTransformer, ResidualTransformer])
def test_batched_cfg_equals_two_passes(cls):
    """cfg_batch: one forward of the doubled batch gives the two-pass guidance logits (and the two passes stay
    available with cfg_batch=False)."""
    torch.manual_seed(0)
    kw = {"num_quantizers": 3} if cls is ResidualTransformer else {}
    m = cls(cond_drop_prob=0.1, **kw, **SIZES).eval()
    text = torch.randn(3, 12)
    pad = lengths_to_mask(torch.tensor([6, 4, 2]), 6).logical_not()
    if cls is ResidualTransformer:
        x, args = torch.randn(3, 6, 8), (1,)
    else:
        x, args = torch.randint(0, 10, (3, 6)), ()
    calls = []
    hook = m.seqTransEncoder.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[1]))
    with torch.no_grad():
        one = m.forward_with_cond_scale(x, *args, text, pad, cond_scale=4, cfg_batch=True)
        two = m.forward_with_cond_scale(x, *args, text, pad, cond_scale=4, cfg_batch=False)
    hook.remove()
    assert calls == [6, 3, 3]  # one pass of 2B rows, then two of B
    torch.testing.assert_close(one, two, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(one, m.forward_with_cond_scale(x, *args, text, pad, cond_scale=1))


def test_decode_start_is_all_mask_with_pads_never_remasked():
    """Hand-computed first state of mask-predict for lengths (2, 4): ids mask_id on valid positions and pad_id past
    the length; scores 0 where a token is to be predicted and 1e5 at pads (the lowest scores are re-masked)."""
    m_lens, pad, ids, scores = decode_start(torch.tensor([2, 4]), pad_id=9, mask_id=8, device="cpu")
    assert m_lens.tolist() == [2, 4]
    assert pad.tolist() == [[False, False, True, True], [False, False, False, False]]
    assert ids.tolist() == [[8, 8, 9, 9], [8, 8, 8, 8]]
    assert scores.tolist() == [[0.0, 0.0, 1e5, 1e5], [0.0, 0.0, 0.0, 0.0]]


def test_eval_mode_restores_the_modes_it_found_also_on_error():
    from src.common.modes import eval_mode

    m, k = torch.nn.Dropout(0.5).train(), torch.nn.Dropout(0.5).eval()
    with pytest.raises(RuntimeError):
        with eval_mode(m, None, k):
            assert not m.training and not k.training
            raise RuntimeError("inside")
    assert m.training and not k.training
    with eval_mode(m.eval()):
        pass
    assert not m.training


def test_remask_picks_the_scheduled_number_of_lowest_scores():
    """Hand-computed: at t=0 cos = 1 so every valid position (length) is re-masked; at t=1 cos = 0 so one (clamp);
    at t=2/3 cos(pi/3) = 0.5 of length 4 -> the 2 lowest scores. Pads (1e5) are never among them."""
    from src.models.momask.tools import remask

    scores = torch.tensor([[0.3, 0.1, 0.2, 0.9, 1e5], [0.5, 0.4, 1e5, 1e5, 1e5]])
    lens = torch.tensor([4, 2])
    assert remask(scores, lens, torch.tensor(0.0)).tolist() == [[True, True, True, True, False],
                                                                [True, True, False, False, False]]
    assert remask(scores, lens, torch.tensor(1.0)).tolist() == [[False, True, False, False, False],
                                                                [False, True, False, False, False]]
    assert remask(scores, lens, torch.tensor(2 / 3)).tolist()[0] == [False, True, True, False, False]
