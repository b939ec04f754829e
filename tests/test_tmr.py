"""TMR: parity with upstream fixtures, strict run-dir loading, retrieval metrics, text side."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from src.common.errors import HmuError
from src.metrics.retrieval import (
    all_contrastive_metrics,
    contrastive_metrics,
    gt_ranks,
    guo_batches,
    guo_protocol_metrics,
)
from src.models.tmr import (
    MODULE_NAMES,
    TMR,
    TMRConfig,
    collate_token_features,
    get_score_matrix,
    get_sim_matrix,
    info_nce_with_filtering,
    kl_loss,
    lengths_to_mask,
    load_tmr,
    manifest_mismatch,
    negative_filter_mask,
    slice_token_features,
)

TOL = {"atol": 1e-5, "rtol": 1e-5}


@pytest.fixture(scope="module")
def tmr_dir(fixtures):
    return fixtures / "tmr"


@pytest.fixture(scope="module")
def io(tmr_dir):
    return {k: torch.from_numpy(v) for k, v in np.load(tmr_dir / "tiny" / "io.npz").items()}


@pytest.fixture(scope="module")
def model(tmr_dir):
    return load_tmr(tmr_dir / "tiny" / "run_dir")


def close(a, b):
    torch.testing.assert_close(a, b, **TOL)


# ---------------------------------------------------------------- loading
def test_load_matches_every_file_tensor(model, tmr_dir):
    for name in MODULE_NAMES:
        state = torch.load(tmr_dir / "tiny" / "run_dir" / "last_weights" / f"{name}.pt", weights_only=True)
        ours = getattr(model, name).state_dict()
        assert set(ours) == set(state)
        for k, v in state.items():
            assert torch.equal(ours[k], v), f"{name}.{k}"
    assert not model.training


def _copy_run(tmr_dir, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(tmr_dir / "tiny" / "run_dir", dst)
    for p in dst.rglob("*"):
        p.chmod(0o644 if p.is_file() else 0o755)
    return dst


def test_load_renamed_key_fails_in_one_line(tmr_dir, tmp_path):
    run = _copy_run(tmr_dir, tmp_path)
    f = run / "last_weights" / "text_encoder.pt"
    sd = torch.load(f, weights_only=True)
    sd["tokens_renamed"] = sd.pop("tokens")
    torch.save(sd, f)
    with pytest.raises(HmuError) as e:
        load_tmr(run)
    msg = str(e.value)
    assert "\n" not in msg and "text_encoder.pt" in msg and "tokens" in msg and "tokens_renamed" in msg


def test_load_shape_mismatch_and_missing_module(tmr_dir, tmp_path):
    run = _copy_run(tmr_dir, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"]["text_encoder"]["nfeats"] = 512
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(HmuError, match=r"text_encoder\.pt.*projection\.weight"):
        load_tmr(run)
    cfg["model"]["text_encoder"]["nfeats"] = 768
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "last_weights" / "motion_decoder.pt").unlink()
    with pytest.raises(HmuError, match="motion_decoder"):
        load_tmr(run)
    # Retrieval-only use may skip the decoder explicitly.
    assert isinstance(load_tmr(run, modules=("motion_encoder", "text_encoder")), TMR)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(HmuError, match="config.json"):
        load_tmr(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(HmuError, match="config.json"):
        load_tmr(tmp_path)


def test_load_from_lightning_checkpoint(model, tmr_dir, tmp_path):
    run = _copy_run(tmr_dir, tmp_path)
    shutil.rmtree(run / "last_weights")
    (run / "logs" / "checkpoints").mkdir(parents=True)
    state = {f"{n}.{k}": v for n in MODULE_NAMES for k, v in getattr(model, n).state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, run / "logs" / "checkpoints" / "last.ckpt")
    again = load_tmr(run)
    for k, v in again.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    assert not (run / "last_weights").exists()  # nothing written beside the user's checkpoint


def test_released_manifest_keys_shapes(tmr_dir):
    manifest = json.loads((tmr_dir / "manifest.json").read_text())
    assert manifest_mismatch(manifest) is None
    cfg = TMRConfig.from_dict(manifest["constructor_config_model"])
    with torch.device("meta"):
        m = TMR.from_config(cfg)
    for name, count in manifest["param_counts"].items():
        assert sum(p.numel() for p in getattr(m, name).parameters()) == count
    bad = json.loads(json.dumps(manifest))
    bad["state_dict_per_module"]["motion_encoder"]["tokens"][0] = [3, 256]
    assert "tokens" in manifest_mismatch(bad)


def test_config_roundtrip(tmr_dir):
    d = json.loads((tmr_dir / "tiny" / "run_dir" / "config.json").read_text())["model"]
    cfg = TMRConfig.from_dict(d)
    assert cfg.to_dict() == d
    assert TMRConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(HmuError, match="unknown"):
        TMRConfig.from_dict({**d, "bogus": 1})


# ---------------------------------------------------------------- parity
def test_encoder_outputs_parity(model, io):
    with torch.inference_mode():
        close(model.text_encoder(io["text_x"], io["text_mask"]), io["text_encoder_out"])
        close(model.motion_encoder(io["motion_x"], io["motion_mask"]), io["motion_encoder_out"])
        for mod in ("text", "motion"):
            lat, (mu, logvar) = model.encode(io[f"{mod}_x"], io[f"{mod}_mask"], sample_mean=True,
                                             return_distribution=True)
            close(lat, io[f"{mod}_latent"])
            close(mu, io[f"{mod}_mu"])
            close(logvar, io[f"{mod}_logvar"])


def test_encoder_slow_path_parity(model, io):
    # With grad enabled PyTorch takes the non-fused path; upstream recorded that output too.
    for mod in ("text", "motion"):
        lat = model.encode(io[f"{mod}_x"], io[f"{mod}_mask"], sample_mean=True)
        close(lat.detach(), io[f"{mod}_latent_slowpath"])


def test_sim_score_decode_parity(model, io):
    lat_t, lat_m = io["text_latent"], io["motion_latent"]
    close(get_sim_matrix(lat_t, lat_m), io["sim_matrix"])
    close(get_score_matrix(lat_t, lat_m), io["score_matrix"])
    with torch.inference_mode():
        close(model.decode(lat_m, mask=io["motion_mask"]), io["decoded_from_motion_latent"])
        close(model.decode(lat_t, mask=io["motion_mask"]), io["decoded_from_text_latent"])
        close(model.decode(lat_m, lengths=io["motion_lengths"]), io["decoded_from_motion_latent"])


def test_losses_parity(model, io):
    model.sample_mean = True
    try:
        losses = model.compute_loss(text_x=io["text_x"], text_mask=io["text_mask"], motion_x=io["motion_x"],
                                    motion_mask=io["motion_mask"], sent_emb=io["sent_emb"])
    finally:
        model.sample_mean = False
    assert list(losses) == ["recons", "kl", "latent", "contrastive", "loss"]
    for k, v in losses.items():
        close(v.detach(), io[f"loss_{k}"])


def test_infonce_kl_filter_parity(io):
    t, m, s = io["text_latent"], io["motion_latent"], io["sent_emb"]
    close(info_nce_with_filtering(t, m, s, temperature=0.1, threshold_selfsim=0.8), io["infonce_filtered_t0.1"])
    close(info_nce_with_filtering(t, m, None, temperature=0.1, threshold_selfsim=0.8), io["infonce_unfiltered_t0.1"])
    close(info_nce_with_filtering(t, m, s, temperature=0.7, threshold_selfsim=0.8), io["infonce_filtered_t0.7"])
    close(kl_loss((io["text_mu"], io["text_logvar"]), (io["motion_mu"], io["motion_logvar"])), io["kl_text_motion"])
    assert torch.equal(negative_filter_mask(s, threshold_selfsim=0.8), io["loss_filter_mask"])


# ---------------------------------------------------------------- properties
def test_padding_does_not_change_encoding(model, io):
    x, mask = io["motion_x"][1:2], io["motion_mask"][1:2]
    n = int(io["motion_lengths"][1])
    with torch.no_grad():
        full = model.encode(x, mask, sample_mean=True)
        cropped = model.encode(x[:, :n], mask[:, :n], sample_mean=True)
        garbage = x.clone()
        garbage[:, n:] = 123.0
        noisy = model.encode(garbage, mask, sample_mean=True)
    close(full, cropped)
    close(full, noisy)


def test_sampling_uses_generator(model, io):
    x, mask = io["text_x"], io["text_mask"]
    with torch.no_grad():
        a = model.encode(x, mask, generator=torch.Generator().manual_seed(1))
        b = model.encode(x, mask, generator=torch.Generator().manual_seed(1))
        mu = model.encode(x, mask, sample_mean=True)
        zero = model.encode(x, mask, fact=0.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.allclose(a, mu)
    close(zero, mu)


def test_modality_auto_and_errors(model, io):
    with torch.no_grad():
        close(model.encode(io["text_x"], io["text_mask"], sample_mean=True),
              model.encode(io["text_x"], io["text_mask"], modality="text", sample_mean=True))
    with pytest.raises(ValueError, match="features"):
        model.encode(torch.zeros(1, 3, 5), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask= or lengths="):
        model.decode(io["text_latent"])


def test_tiny_training_step_reduces_loss():
    torch.manual_seed(0)
    from src.models.tmr import DecoderConfig, EncoderConfig
    small = {"latent_dim": 8, "ff_size": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.0}
    cfg = TMRConfig(motion_encoder=EncoderConfig(nfeats=5, **small), text_encoder=EncoderConfig(nfeats=7, **small),
                    motion_decoder=DecoderConfig(nfeats=5, **small))
    model = TMR.from_config(cfg).train()
    mask = lengths_to_mask([6, 4, 5, 3])
    mx, tx = torch.randn(4, 6, 5) * mask[..., None], torch.randn(4, 6, 7) * mask[..., None]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(30):
        loss = model.compute_loss(text_x=tx, text_mask=mask, motion_x=mx, motion_mask=mask, generator=g)["loss"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first


# ---------------------------------------------------------------- retrieval metrics
def test_metrics_parity(tmr_dir, io):
    ref = json.loads((tmr_dir / "tiny" / "metrics.json").read_text())
    sims, emb = io["sim_matrix"].numpy(), io["sent_emb"].numpy()
    m, t2m, m2t = all_contrastive_metrics(sims, return_ranks=True)
    assert m == ref["normal"]
    np.testing.assert_array_equal(t2m, io["t2m_cols"].numpy())
    np.testing.assert_array_equal(m2t, io["m2t_cols"].numpy())
    unrounded = all_contrastive_metrics(sims, rounding=None)
    assert unrounded.keys() == ref["normal_unrounded"].keys()
    for k, v in ref["normal_unrounded"].items():
        assert unrounded[k] == pytest.approx(v, abs=1e-9)
    m, t2m, m2t = all_contrastive_metrics(sims, emb=emb, threshold=0.95, return_ranks=True)
    assert m == ref["threshold_0.95"]
    np.testing.assert_array_equal(t2m, io["t2m_cols_threshold"].numpy())
    np.testing.assert_array_equal(m2t, io["m2t_cols_threshold"].numpy())


def test_tie_averaging(tmr_dir, io):
    ref = json.loads((tmr_dir / "tiny" / "metrics.json").read_text())["tie_case_t2m_only"]
    tie = io["tie_sim_matrix"].numpy()
    np.testing.assert_array_equal(gt_ranks(tie), io["tie_cols"].numpy())
    assert contrastive_metrics(tie, rounding=None) == ref


def test_metrics_properties():
    eye = np.eye(12)
    m = all_contrastive_metrics(eye)
    assert m["t2m/R01"] == 100.0 and m["m2t/MedR"] == 1.0 and m["t2m/len"] == 12.0
    flat = np.ones((4, 4))
    np.testing.assert_array_equal(gt_ranks(flat), [1.5] * 4)  # all tied: mean of positions 0..3
    with pytest.raises(HmuError, match="square"):
        all_contrastive_metrics(np.ones((2, 3)))


def test_guo_batches_match_legacy_numpy_shuffle():
    idx = np.arange(70)
    np.random.seed(0)
    np.random.shuffle(idx)
    batches = guo_batches(70, batch_size=32, seed=0)
    assert len(batches) == 2
    np.testing.assert_array_equal(np.concatenate(batches), idx[:64])
    out = guo_protocol_metrics(lambda b: np.eye(len(b)), 70)
    assert out["t2m/R01"] == 100.0 and out["t2m/len"] == 32.0


# ---------------------------------------------------------------- text side
def test_token_feature_helpers():
    feats = [torch.ones(3, 4), 2 * torch.ones(1, 4)]
    x, mask = collate_token_features(feats)
    assert x.shape == (2, 3, 4) and mask.tolist() == [[True] * 3, [True, False, False]]
    assert float(x[1, 1:].abs().sum()) == 0.0
    flat = torch.cat(feats)
    back = slice_token_features(flat, [(0, 3), (3, 4)])
    assert all(torch.equal(a, b) for a, b in zip(back, feats))


def test_text_model_missing_dir_is_one_line(tmp_path):
    from src.models.tmr import LocalTextModel
    with pytest.raises(HmuError) as e:
        LocalTextModel(tmp_path / "distilbert-base-uncased")
    assert "distilbert-base-uncased" in str(e.value) and "\n" not in str(e.value)


def test_transformers_is_not_imported_eagerly():
    code = "import sys, src.models.tmr, src.metrics.retrieval; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("conftest").REPO))
    assert out.stdout.strip() == "False"


def test_local_text_model_tiny(tmp_path):
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "person", "walks", "runs", "forward"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = transformers.BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(words), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=16, max_position_embeddings=32)
    transformers.BertModel(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    from src.models.tmr import LocalTextModel
    lm = LocalTextModel(tmp_path)
    x, mask = lm.token_features(["a person walks forward", "a person runs"])
    assert x.shape == (2, 6, 8) and mask.sum(1).tolist() == [6, 5]  # [CLS] and [SEP] included
    assert float(x[1, 5].abs().sum()) == 0.0
    emb = lm.sentence_embeddings(["a person walks forward", "a person runs"])
    close(emb.norm(dim=1), torch.ones(2))
