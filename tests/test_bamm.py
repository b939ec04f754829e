"""BAMM: fixture parity, strict loading that drops no trained weight, attention rules, generation, training loss."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from src.common.errors import HmuError
from src.models.bamm import (
    BAMMConfig,
    BAMMTransConfig,
    BAMMTransformer,
    checkpoint_state,
    load_bamm,
    load_bamm_run,
    manifest_mismatch,
)

TOL = {"atol": 1e-5, "rtol": 1e-5}
RUN_NAME = "2000-01-01-00-00-00_tiny_bamm"
# The three tensors upstream's models/loaders.py pops before a strict=False load (left at random init).
UPSTREAM_DROPPED = ("output_process.poseFinal.weight", "output_process.poseFinal.bias", "token_emb.weight")


@pytest.fixture(scope="module")
def bamm_dir(fixtures):
    return fixtures / "bamm"


@pytest.fixture(scope="module")
def tiny_cfg(bamm_dir):
    c = json.loads((bamm_dir / "tiny" / "config.json").read_text())["config"]
    return BAMMConfig(code_dim=c["code_dim"], num_tokens=c["num_tokens"], latent_dim=c["latent_dim"],
                      ff_size=c["ff_size"], num_layers=c["n_layers"], num_heads=c["n_heads"], dropout=c["dropout"],
                      clip_dim=c["clip_dim"], cond_drop_prob=c["cond_drop_prob"], trans=c["trans"])


@pytest.fixture(scope="module")
def run_dir(bamm_dir):
    return bamm_dir / "tiny" / "checkpoints" / "t2m" / RUN_NAME


@pytest.fixture(scope="module")
def model(run_dir, tiny_cfg):
    return load_bamm(run_dir / "model" / "latest.tar", tiny_cfg)


@pytest.fixture(scope="module")
def io(bamm_dir):
    return {k: torch.from_numpy(v) for k, v in np.load(bamm_dir / "tiny" / "io.npz").items()}


def close(a, b):
    torch.testing.assert_close(a, b, **TOL)


# ---------------------------------------------------------------- parity
def test_config_ids_match_fixture(bamm_dir, tiny_cfg):
    c = json.loads((bamm_dir / "tiny" / "config.json").read_text())["config"]
    assert (tiny_cfg.end_id, tiny_cfg.pad_id, tiny_cfg.mask_id) == (c["end_id"], c["pad_id"], c["mask_id"])


def test_logits_parity(model, io):
    ids, text = io["ids"], io["text_feat"]
    with torch.no_grad():
        close(model.trans_forward(ids, text, force_mask=False), io["logits_cond"])
        close(model.trans_forward(ids, text, force_mask=True), io["logits_uncond"])
        close(model.forward_with_cond_scale(ids, text, cond_scale=4), io["logits_cfg4"])
        close(model.trans_forward(ids, text, force_mask=False, cond_idx=io["cond_idx"]), io["logits_cond_condidx"])
        close(model.forward_with_cond_scale(ids, text, cond_scale=3, cond_idx=io["cond_idx"]),
              io["logits_cfg3_condidx"])
    assert io["logits_cond"].shape[-1] == ids.shape[1] + 1  # the text position is kept: L + 1 outputs


def test_attention_mask_parity(model, io):
    b, n = io["cond_idx"].shape
    assert torch.equal(model.attention_mask(io["cond_idx"], batch=b, length=n), io["attn_mask_condidx"])


def test_uncond_batch_doubling_in_eval(model, io):
    with torch.no_grad():
        both = model.trans_forward(io["ids"], io["text_feat"], force_mask=None)
    close(both, torch.cat([io["logits_cond"], io["logits_uncond"]]))


# ---------------------------------------------------------------- strict loading: no trained weight dropped
@pytest.mark.parametrize("which", ["latest.tar", "net_best_fid.tar"])
def test_every_file_tensor_is_loaded(run_dir, tiny_cfg, which):
    blob = torch.load(run_dir / "model" / which, map_location="cpu", weights_only=True)
    file_state = blob["t2m_transformer"]
    loaded = load_bamm(run_dir / "model" / which, tiny_cfg).state_dict()
    assert set(loaded) == set(file_state)
    for k, v in file_state.items():
        assert torch.equal(loaded[k], v), k
    # Upstream's loader would have left these at init; ours carries the trained values, which differ from init.
    torch.manual_seed(0)
    fresh = BAMMTransformer(tiny_cfg).state_dict()
    for k in UPSTREAM_DROPPED:
        assert torch.equal(loaded[k], file_state[k]) and not torch.equal(fresh[k], file_state[k])


def test_upstream_loader_pattern_drops_trained_weights(run_dir, tiny_cfg):
    """Re-enact upstream's pop + strict=False + filtered assertion to show what it silently leaves untrained."""
    file_state = dict(torch.load(run_dir / "model" / "latest.tar", weights_only=True)["t2m_transformer"])
    torch.manual_seed(0)
    m = BAMMTransformer(tiny_cfg)
    for k in UPSTREAM_DROPPED:
        file_state.pop(k)
    missing, unexpected = m.load_state_dict(file_state, strict=False)
    missing = [k for k in missing if k not in UPSTREAM_DROPPED]
    assert not unexpected and all(k.startswith("clip_model.") for k in missing)  # upstream's check passes...
    trained = torch.load(run_dir / "model" / "latest.tar", weights_only=True)["t2m_transformer"]
    sd = m.state_dict()
    assert all(not torch.equal(sd[k], trained[k]) for k in UPSTREAM_DROPPED)  # ...yet these stayed random


def _rewrite(run_dir, tmp_path, edit):
    blob = torch.load(run_dir / "model" / "latest.tar", map_location="cpu", weights_only=True)
    state = dict(blob["t2m_transformer"])
    edit(state)
    blob["t2m_transformer"] = state
    out = tmp_path / "latest.tar"
    torch.save(blob, out)
    return out


def test_renamed_key_fails_loudly(run_dir, tiny_cfg, tmp_path):
    path = _rewrite(run_dir, tmp_path, lambda s: s.__setitem__("token_embedding.weight", s.pop("token_emb.weight")))
    with pytest.raises(HmuError) as e:
        load_bamm(path, tiny_cfg)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "token_emb.weight" in msg and "token_embedding.weight" in msg


@pytest.mark.parametrize("edit, needle", [
    (lambda s: s.pop("output_process.poseFinal.weight"), "missing"),
    (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), "unexpected"),
    (lambda s: s.__setitem__("token_emb.weight", torch.zeros(18, 16)), "shape"),
])
def test_missing_unexpected_and_shape_fail(run_dir, tiny_cfg, tmp_path, edit, needle):
    path = _rewrite(run_dir, tmp_path, edit)
    with pytest.raises(HmuError, match=needle):
        load_bamm(path, tiny_cfg)


def test_clip_keys_are_the_only_ones_skipped(run_dir, tiny_cfg, tmp_path, model):
    path = _rewrite(run_dir, tmp_path, lambda s: s.__setitem__("clip_model.positional_embedding", torch.zeros(3)))
    again = load_bamm(path, tiny_cfg)
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v)
    with pytest.raises(HmuError, match="t2m_transformer"):
        checkpoint_state({"net": {}}, source="x.tar")


def test_missing_file_and_no_fallback(run_dir, tiny_cfg, tmp_path):
    with pytest.raises(HmuError, match="base.tar|not found"):
        load_bamm(tmp_path / "model" / "base.tar", tiny_cfg)
    with pytest.raises(HmuError, match="nope.tar"):
        load_bamm_run(run_dir, code_dim=16, num_tokens=16, which="nope.tar")


def test_load_run_reads_opt(run_dir, model):
    m, opt = load_bamm_run(run_dir, code_dim=16, num_tokens=16)
    assert opt.trans == "official" and opt.name == RUN_NAME and m.config == model.config
    with pytest.raises(HmuError, match="code_dim"):
        load_bamm_run(run_dir)


def test_released_manifest_and_opt(bamm_dir):
    manifest = json.loads((bamm_dir / "manifest.json").read_text())
    assert manifest_mismatch(manifest) is None
    bad = json.loads(json.dumps(manifest))
    bad["state_dict"]["output_process.poseFinal.weight"][0] = [512, 384]
    assert "poseFinal" in manifest_mismatch(bad)
    text = (bamm_dir / "released_opt.txt").read_text()
    opt = BAMMTransConfig.from_text(text)
    assert opt.to_text() == text and opt.trans == "official" and opt.checkpoints_dir == "./log/t2m"
    cfg = opt.model_config(code_dim=manifest["config"]["code_dim"], num_tokens=manifest["config"]["num_tokens"])
    assert (cfg.latent_dim, cfg.num_layers, cfg.num_heads) == (384, 8, 6)


def test_unsupported_trans_kind():
    with pytest.raises(HmuError, match="t2mgpt"):
        BAMMConfig(code_dim=4, num_tokens=4, trans="t2mgpt")


# ---------------------------------------------------------------- properties
def test_cond_emb_like_momask(model, tiny_cfg):
    from src.methods.edit_targets import find_cond_emb
    assert isinstance(model.cond_emb, torch.nn.Linear)
    assert (model.cond_emb.in_features, model.cond_emb.out_features) == (tiny_cfg.clip_dim, tiny_cfg.latent_dim)
    assert [name for name, _ in find_cond_emb(model)] == ["cond_emb"]


def test_causal_without_cond_idx(model, io):
    ids, text = io["ids"][:1].clone(), io["text_feat"][:1]
    j = 4
    other = ids.clone()
    other[0, j] = (ids[0, j] + 1) % model.num_tokens
    with torch.no_grad():
        a, b = model.trans_forward(ids, text), model.trans_forward(other, text)
    # Token j sits at sequence position j + 1: outputs 0..j cannot see it, later ones can.
    close(a[..., : j + 1], b[..., : j + 1])
    assert not torch.allclose(a[..., j + 1:], b[..., j + 1:])


def test_known_tokens_visible_everywhere(model, io):
    ids, text = io["ids"][:1].clone(), io["text_feat"][:1]
    j = 6
    cond_idx = torch.full_like(ids, model.pad_id)
    cond_idx[0, j] = ids[0, j]
    other = ids.clone()
    other[0, j] = (ids[0, j] + 1) % model.num_tokens
    cond_other = cond_idx.clone()
    cond_other[0, j] = other[0, j]
    with torch.no_grad():
        a = model.trans_forward(ids, text, cond_idx=cond_idx)
        b = model.trans_forward(other, text, cond_idx=cond_other)
    assert not torch.allclose(a[..., 0], b[..., 0])  # even the first output sees the known future token
    mask = model.attention_mask(cond_idx, batch=1, length=ids.shape[1])[0]
    assert mask[:, j + 1].all() and mask[j + 1].tolist() == [i in (0, j + 1) for i in range(ids.shape[1] + 1)]


def test_cfg_needs_eval(tiny_cfg, io):
    m = BAMMTransformer(tiny_cfg).train()
    with pytest.raises(RuntimeError, match="eval"):
        m.forward_with_cond_scale(io["ids"], io["text_feat"])


@pytest.mark.parametrize("predict_length", [True, False])
def test_generate_shapes_lengths_and_seed(model, io, predict_length):
    text = io["text_feat"]
    m_lens = torch.tensor([3, 7])
    out1, len1 = model.generate(text, m_lens, predict_length=predict_length, generator=torch.Generator().manual_seed(3))
    out2, len2 = model.generate(text, m_lens, predict_length=predict_length, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out1, out2) and torch.equal(len1, len2)
    assert out1.shape == (2, 8)  # width from the requested lengths (+ upstream's END slot), not a hard-coded 49
    if not predict_length:
        assert len1.tolist() == [3, 7]
    for row, n in zip(out1, len1.tolist()):
        assert 1 <= n <= 7
        assert (row[:n] >= 0).all() and (row[:n] < model.num_tokens).all() and (row[n:] == -1).all()
    assert model.training is False


def test_generate_max_len(model, io):
    out, lens = model.generate(io["text_feat"], torch.tensor([2, 3]), max_len=12, predict_length=False,
                               generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 13) and lens.tolist() == [2, 3]  # max_len steps + the END slot
    assert (out[:, 3:] == -1).all()
    with pytest.raises(ValueError, match="lengths"):
        model.generate(io["text_feat"], torch.tensor([2, 30]), max_len=12)


def test_training_loss_backward_and_decreases():
    torch.manual_seed(0)
    cfg = BAMMConfig(code_dim=8, num_tokens=10, latent_dim=16, ff_size=32, num_layers=1, num_heads=2, dropout=0.0,
                     clip_dim=6, cond_drop_prob=0.1)
    m = BAMMTransformer(cfg).train()
    ids = torch.randint(0, 10, (4, 8))
    m_lens = torch.tensor([8, 5, 3, 6])
    text = torch.randn(4, 6)
    opt = torch.optim.AdamW(m.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(20):
        loss, pred, acc = m(ids, text, m_lens, generator=g)
        assert pred.shape == (4, 9) and 0.0 <= acc <= 1.0 and torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
