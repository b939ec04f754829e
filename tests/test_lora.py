"""LoRA adapters (src/models/lora.py) on MoMask's masked/residual transformers and BAMM: identity at init, merge
equals the unmerged forward at any runtime scale, every adapted layer acts, strict adapter files.

Reference values come from an independent computation: the adapter's delta ``s * alpha/r * B @ A`` added to the
weights of a copy of the *original* model by hand (never through ``merge``)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from src.common.errors import HmuError
from src.models.bamm.config import BAMMConfig
from src.models.bamm.model import BAMMTransformer
from src.models.lora import (LoRAConfig, LoRALinear, add_lora, adapters, describe, load_lora, load_lora_state_dict,
                             lora_parameters, lora_scale, lora_state_dict, merge, read_lora, save_lora, set_scale)
from src.models.momask.transformer import MaskTransformer, ResidualTransformer

CLIP, K, LAYERS, E = 6, 10, 2, 16


def _mask():
    torch.manual_seed(0)
    return MaskTransformer(code_dim=8, num_tokens=K, latent_dim=E, ff_size=24, num_layers=LAYERS, num_heads=2,
                           dropout=0.1, clip_dim=CLIP, cond_drop_prob=0.1).eval()


def _bamm():
    torch.manual_seed(0)
    return BAMMTransformer(BAMMConfig(code_dim=8, num_tokens=K, latent_dim=E, ff_size=24, num_layers=LAYERS,
                                      num_heads=2, dropout=0.1, clip_dim=CLIP, cond_drop_prob=0.1)).eval()


def _res():
    torch.manual_seed(0)
    return ResidualTransformer(num_quantizers=3, code_dim=8, num_tokens=K, latent_dim=E, ff_size=24,
                               num_layers=LAYERS, num_heads=2, dropout=0.1, clip_dim=CLIP, cond_drop_prob=0.1).eval()


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, K, (3, 7), generator=g)
    cond = torch.randn(3, CLIP, generator=g)
    return ids, cond


def _fwd(model, kind="mask"):
    ids, cond = _inputs()
    cond = cond.to(next(model.parameters()).dtype)
    with torch.no_grad():
        if kind == "bamm":
            return model.trans_forward(ids, cond, force_mask=False)
        return model.trans_forward(ids, cond, torch.zeros(3, 7, dtype=torch.bool))


MODELS = {"mask": _mask, "bamm": _bamm}


def _randomize_b(model, seed=2, std=0.3):
    """Trained-looking adapters: B is zero at init, so give every B random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in [(n, p) for n, p in model.named_parameters() if "lora_B" in n]:
            p.copy_(torch.randn(p.shape, generator=g) * std)


def _hand_merged(base: nn.Module, adapted: nn.Module, s: float) -> nn.Module:
    """The original model with s * alpha/r * B @ A added to each adapted weight, written out by hand per layer."""
    ref = copy.deepcopy(base)
    coef = s * adapted_cfg(adapted).alpha / adapted_cfg(adapted).rank
    with torch.no_grad():
        for i in range(LAYERS):
            lay_a = adapted.seqTransEncoder.layers[i]
            lay_r = ref.seqTransEncoder.layers[i]
            dq = lay_a.self_attn.parametrizations.in_proj_weight[0]
            blocks = [getattr(dq, f"lora_B_{k}") @ getattr(dq, f"lora_A_{k}") for k in "qkv"]
            lay_r.self_attn.in_proj_weight += coef * torch.cat(blocks, 0)
            do = lay_a.self_attn.out_proj.parametrizations.weight[0]
            lay_r.self_attn.out_proj.weight += coef * (do.lora_B_out @ do.lora_A_out)
            for name in ("linear1", "linear2"):
                ad = getattr(lay_a, name)
                getattr(lay_r, name).weight += coef * (ad.lora_B @ ad.lora_A)
    return ref


def adapted_cfg(model):
    return adapters(model)[0][1].cfg


# ------------------------------------------------------------------------------------------------ placement
@pytest.mark.parametrize("kind", ["mask", "bamm"])
def test_adapters_on_every_attention_and_ff_layer(kind):
    base = MODELS[kind]()
    m = add_lora(base, LoRAConfig(rank=4, alpha=8))
    d = describe(m)
    assert {k: d[k] for k in ("q", "k", "v", "out", "ff")} == {"q": LAYERS, "k": LAYERS, "v": LAYERS,
                                                                "out": LAYERS, "ff": 2 * LAYERS}
    # per layer: q,k,v (3 pairs of (4,16)/(16,4)), out (4,16)/(16,4), linear1 (4,16)/(24,4), linear2 (4,24)/(16,4)
    per_layer = 4 * (4 * E + E * 4) + (4 * E + 24 * 4) + (4 * 24 + E * 4)
    assert d["parameters"] == LAYERS * per_layer
    trainable = {id(p) for p in m.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in lora_parameters(m)}
    # the argument is untouched
    assert not any("lora" in k or "parametrizations" in k for k in base.state_dict())
    assert all(type(lay.linear1) is nn.Linear for lay in base.seqTransEncoder.layers)


def test_residual_transformer_takes_adapters_too():
    d = describe(add_lora(_res(), LoRAConfig(rank=2, alpha=2)))
    assert d["q"] == d["out"] == LAYERS and d["ff"] == 2 * LAYERS


def test_targets_subset_and_errors():
    m = add_lora(_mask(), LoRAConfig(rank=2, alpha=2, targets=("v", "ff")))
    d = describe(m)
    assert (d["q"], d["k"], d["v"], d["out"], d["ff"]) == (0, 0, LAYERS, 0, 2 * LAYERS)
    with pytest.raises(HmuError):
        add_lora(nn.Sequential(nn.ReLU()), LoRAConfig())
    for bad in ({"rank": 0}, {"alpha": 0.0}, {"dropout": 1.0}, {"targets": ("qk",)}, {"targets": ()}):
        with pytest.raises(HmuError):
            LoRAConfig(**bad)


# ------------------------------------------------------------------------------------------------ forward
@pytest.mark.parametrize("kind", ["mask", "bamm"])
def test_fresh_adapter_is_identity(kind):
    base = MODELS[kind]()
    m = add_lora(base, LoRAConfig(rank=4, alpha=8), generator=torch.Generator().manual_seed(0))
    assert torch.equal(_fwd(base, kind), _fwd(m, kind))
    with lora_scale(m, -3.0):
        assert torch.allclose(_fwd(base, kind), _fwd(m, kind), atol=0, rtol=0)


@pytest.mark.parametrize("kind", ["mask", "bamm"])
@pytest.mark.parametrize("s", [1.0, -1.0, -2.5])
def test_adapted_forward_equals_hand_added_delta(kind, s):
    """The adapted model at runtime scale s computes what the original model computes with each weight replaced by
    W + s * alpha/r * B @ A (written out by hand per layer: q/k/v rows of in_proj, out_proj, linear1, linear2)."""
    base = MODELS[kind]().double()
    m = add_lora(base, LoRAConfig(rank=3, alpha=6, dropout=0.2))
    _randomize_b(m)
    set_scale(m, s)
    ref = _hand_merged(base, m, s)
    got, want = _fwd(m, kind), _fwd(ref, kind)
    assert not torch.allclose(_fwd(base, kind), got, atol=1e-3)   # the adapters do something
    assert torch.allclose(got, want, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", ["mask", "bamm"])
@pytest.mark.parametrize("alpha_neg", [1.0, 2.0])
def test_merge_equals_unmerged_negated_forward(kind, alpha_neg):
    """merge(m, -alpha) forward == the adapted forward at runtime scale -alpha, to 1e-6 (float32), and merge leaves
    the adapted model as it was."""
    base = MODELS[kind]()
    m = add_lora(base, LoRAConfig(rank=4, alpha=16, dropout=0.05))
    _randomize_b(m, std=0.05)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    merged = merge(m, -alpha_neg)
    with lora_scale(m, -alpha_neg):
        want = _fwd(m, kind)
    got = _fwd(merged, kind)
    assert (got - want).abs().max().item() < 1e-6
    assert not torch.allclose(got, _fwd(base, kind), atol=1e-3)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert all(a.scale == 1.0 for _, a in adapters(m))
    # a plain model again: the original class, keys, shapes and requires_grad flags; loads strictly
    assert type(merged) is type(base) and not adapters(merged)
    assert list(merged.state_dict()) == list(base.state_dict())
    fresh = MODELS[kind]()
    fresh.load_state_dict(merged.state_dict(), strict=True)
    assert {n: p.requires_grad for n, p in merged.named_parameters()} == \
        {n: p.requires_grad for n, p in base.named_parameters()}


def test_merge_keeps_a_frozen_token_embedding_frozen():
    base = _mask()
    base.load_and_freeze_token_emb(torch.randn(K, 8))
    merged = merge(add_lora(base, LoRAConfig(rank=2, alpha=2)), -1.0)
    assert not merged.token_emb.weight.requires_grad and merged.cond_emb.weight.requires_grad


def test_sign_of_the_scale_matters():
    """Planted-bug guard: +alpha and -alpha give different models, and -alpha is the hand-written W - alpha*coef*BA."""
    base = _mask().double()
    m = add_lora(base, LoRAConfig(rank=3, alpha=3))
    _randomize_b(m)
    neg, pos = _fwd(merge(m, -2.0)), _fwd(merge(m, 2.0))
    assert not torch.allclose(neg, pos, atol=1e-3)
    assert torch.allclose(neg, _fwd(_hand_merged(base, m, -2.0)), atol=1e-10)


@pytest.mark.parametrize("which", ["q", "k", "v", "out", "linear1", "linear2"])
def test_every_adapter_acts_on_the_output(which):
    """Setting one adapter's B (one layer, one kind) changes the output: no adapter is bypassed (a wrapper around
    MultiheadAttention.out_proj would be: the attention reads out_proj.weight, never calls the module)."""
    m = add_lora(_mask().double(), LoRAConfig(rank=2, alpha=2, dropout=0.0))
    base_out = _fwd(m)
    lay = m.seqTransEncoder.layers[LAYERS - 1]
    if which in "qkv":
        b = getattr(lay.self_attn.parametrizations.in_proj_weight[0], f"lora_B_{which}")
    elif which == "out":
        b = lay.self_attn.out_proj.parametrizations.weight[0].lora_B_out
    else:
        b = getattr(lay, which).lora_B
    with torch.no_grad():   # random rows: a constant row would be a uniform shift that the next LayerNorm removes
        b.copy_(torch.randn(b.shape, generator=torch.Generator().manual_seed(3), dtype=b.dtype))
    assert not torch.allclose(_fwd(m), base_out, atol=1e-4)


def test_a_module_wrapper_on_out_proj_would_be_bypassed():
    """Why out_proj is a parametrization: nn.MultiheadAttention ignores a replaced out_proj module's forward."""
    mha = nn.MultiheadAttention(8, 2).eval()
    x = torch.randn(5, 2, 8)
    ref = mha(x, x, x, need_weights=False)[0]
    wrapped = copy.deepcopy(mha)

    class Doubling(nn.Linear):
        def forward(self, x):  # a module-level change the attention never calls
            return 2 * super().forward(x)

    d = Doubling(8, 8)
    d.load_state_dict(mha.out_proj.state_dict())
    wrapped.out_proj = d
    assert torch.equal(wrapped(x, x, x, need_weights=False)[0], ref)


def test_ff_dropout_only_in_training():
    m = add_lora(_mask(), LoRAConfig(rank=2, alpha=2, dropout=0.5, targets=("ff",)))
    _randomize_b(m)
    lin = m.seqTransEncoder.layers[0].linear1
    assert isinstance(lin, LoRALinear)
    x = torch.randn(4, E)
    lin.eval()
    a, b = lin(x), lin(x)
    assert torch.equal(a, b)
    lin.train()
    torch.manual_seed(0)
    assert not torch.allclose(lin(x), a)


def test_training_moves_only_the_adapters():
    base = _mask().train()
    m = add_lora(base, LoRAConfig(rank=2, alpha=4)).train()
    frozen = {k: v.clone() for k, v in m.state_dict().items() if "lora_" not in k}
    opt = torch.optim.SGD(lora_parameters(m), lr=0.1)
    ids, cond = _inputs()
    loss, _, _ = m(ids, cond, torch.tensor([7, 5, 6]), generator=torch.Generator().manual_seed(0))
    loss.backward()
    grads = [p.grad for p in lora_parameters(m)]
    assert all(g is not None for g in grads)
    # at init B = 0, so A gets no gradient but every B does
    assert all(g.abs().sum() > 0 for (n, p), g in zip([(n, p) for n, p in m.named_parameters() if p.requires_grad],
                                                      grads) if "lora_B" in n)
    opt.step()
    assert all(torch.equal(frozen[k], v) for k, v in m.state_dict().items() if k in frozen)


# ------------------------------------------------------------------------------------------------ files
def test_save_and_load_strictly(tmp_path):
    base = _mask()
    m = add_lora(base, LoRAConfig(rank=3, alpha=6))
    _randomize_b(m)
    path = tmp_path / "adapter.pt"
    save_lora(path, m, meta={"concept": "violence"})
    cfg, state, meta = read_lora(path)
    assert cfg == LoRAConfig(rank=3, alpha=6) and meta == {"concept": "violence"}
    assert set(state) == set(lora_state_dict(m)) and len(state) == LAYERS * (4 * 2 + 2 * 2)
    again = load_lora(path, base)
    with lora_scale(m, -1.0), lora_scale(again, -1.0):
        assert torch.equal(_fwd(m), _fwd(again))

    # strict: a missing layer, an extra key, a wrong shape, NaN, a model of another rank
    target = add_lora(base, LoRAConfig(rank=3, alpha=6))
    key = next(iter(state))
    for broken in ({k: v for k, v in state.items() if k != key},
                   {**state, "seqTransEncoder.layers.9.linear1.lora_A": state[key]},
                   {**state, key: state[key][:, :-1]},
                   {**state, key: state[key] * float("nan")}):
        with pytest.raises(HmuError):
            load_lora_state_dict(target, broken)
    with pytest.raises(HmuError):
        load_lora_state_dict(add_lora(base, LoRAConfig(rank=2, alpha=6)), state)
    with pytest.raises(HmuError):
        load_lora_state_dict(base, state)


def test_read_lora_rejects_other_files(tmp_path):
    from src.common.io import atomic_torch_save

    p = tmp_path / "x.pt"
    atomic_torch_save({"state_dict": {}}, p)
    with pytest.raises(HmuError):
        read_lora(p)
