"""MoMask parity against upstream fixtures: strict loads, forward outputs, released-size manifests."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_momask_util import load_manifest, model_from_manifest_config, momask_root, tiny_configs, tiny_runs

TOL = {"atol": 1e-5, "rtol": 1e-5}


@pytest.fixture(scope="module")
def root(fixtures):
    return momask_root(fixtures)


@pytest.fixture(scope="module")
def io(root):
    return dict(np.load(root / "tiny" / "io.npz"))


@pytest.fixture(scope="module")
def runs(root):
    return tiny_runs(root)


@pytest.fixture(scope="module")
def paths(root):
    from src.common.paths import Paths

    return Paths.default(checkpoints_dir=root / "tiny" / "checkpoints")


def _load(kind, runs, paths, root, ckpt=None):
    """Load the tiny run of ``kind`` through our loaders (default file: upstream's default for that kind)."""
    from src.models import checkpoint as C

    run = runs[kind]
    ckpt = ckpt or ("finest.tar" if kind == "len" else "net_best_fid.tar")
    ds, name = run.parent.name, run.name
    if kind == "vq":
        return C.load_vq(paths, ds, name, ckpt=ckpt, input_width=tiny_configs(root)["vq"]["input_width"])[0]
    if kind == "mask":
        return C.load_mask_transformer(paths, ds, name, ckpt=ckpt)[0]
    if kind == "res":
        return C.load_res_transformer(paths, ds, name, ckpt=ckpt)[0]
    le = tiny_configs(root)["len_est"]
    return C.load_len_estimator(paths, ds, name, ckpt=ckpt, input_size=le["input_size"],
                                output_size=le["output_size"])[0]


def _close(got, want):
    np.testing.assert_allclose(got.detach().numpy(), want, **TOL)


def test_every_tiny_checkpoint_loads_strictly(root, runs, paths):
    from src.models.checkpoint import read_checkpoint

    assert set(runs) == {"vq", "mask", "res", "len"}
    n = 0
    for kind, run in runs.items():
        for tar in sorted((run / "model").glob("*.tar")):
            model = _load(kind, runs, paths, root, ckpt=tar.name)
            sd, _ = read_checkpoint(tar, kind)
            assert set(sd) == set(model.state_dict())
            n += 1
    assert n >= 4


@pytest.mark.parametrize("which", ["real", "rand"])
def test_vq_parity(which, io, runs, paths, root):
    vq = _load("vq", runs, paths, root)
    x = torch.from_numpy(io[f"vq_in_{which}"])
    with torch.no_grad():
        idx, codes = vq.encode(x)
        assert idx.dtype == torch.int64
        np.testing.assert_array_equal(idx.numpy(), io[f"vq_{which}_code_idx"])
        _close(codes, io[f"vq_{which}_all_codes"])
        out, commit, perplexity = vq(x)
        _close(out, io[f"vq_{which}_forward_out"])
        _close(commit, io[f"vq_{which}_forward_commit_loss"])
        _close(perplexity, io[f"vq_{which}_forward_perplexity"])
        ids = torch.from_numpy(io[f"vq_{which}_code_idx"])
        _close(vq.forward_decoder(ids), io[f"vq_{which}_decoded"])
        _close(vq.forward_decoder(ids[..., :1]), io[f"vq_{which}_decoded_q1"])


def test_mask_transformer_parity(io, runs, paths, root):
    mt = _load("mask", runs, paths, root)
    ids, text = torch.from_numpy(io["mt_ids"]), torch.from_numpy(io["text_feat"])
    pad = torch.from_numpy(io["mt_padding_mask"])
    with torch.no_grad():
        _close(mt.trans_forward(ids, text, pad), io["mt_logits"])
        _close(mt.trans_forward(ids, text, pad, force_mask=True), io["mt_logits_uncond"])
        _close(mt.forward_with_cond_scale(ids, text, pad, cond_scale=4), io["mt_logits_cfg4"])


def test_residual_transformer_parity(io, runs, paths, root):
    rt = _load("res", runs, paths, root)
    ids, text = torch.from_numpy(io["rt_all_ids"]), torch.from_numpy(io["text_feat"])
    pad = torch.from_numpy(io["mt_padding_mask"])
    with torch.no_grad():
        token, proj = rt.process_embed_proj_weight()
        _close(token, io["rt_token_embed_weight"])
        _close(proj, io["rt_output_proj_weight"])
        for q in range(1, ids.shape[-1]):
            hist = rt.history_sum(ids, q)
            _close(hist, io[f"rt_q{q}_history_sum"])
            _close(rt.forward_with_cond_scale(hist, q, text, pad, cond_scale=1), io[f"rt_q{q}_logits"])
            _close(rt.forward_with_cond_scale(hist, q, text, pad, cond_scale=2), io[f"rt_q{q}_logits_cfg2"])


def test_length_estimator_parity(io, runs, paths, root):
    le = _load("len", runs, paths, root)
    with torch.no_grad():
        logits = le(torch.from_numpy(io["le_in"]))
    _close(logits, io["le_logits"])
    _close(logits.softmax(-1), io["le_probs"])


def test_manifests_match_state_dicts(root):
    """Every released-size manifest: our state dict has exactly its keys, shapes and dtypes (built on meta)."""
    manifests = sorted((root / "manifests").glob("*.json"))
    assert manifests
    for mf in manifests:
        m = load_manifest(mf)
        cls_name = m["class"].split("::")[-1]
        with torch.device("meta"):
            model = model_from_manifest_config(cls_name, m["config"])
        ours = {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()}
        want = {k: [list(s), d] for k, (s, d) in m["state_dict"].items()}
        assert ours == want, f"{mf.name}: {sorted(set(ours) ^ set(want))[:5]}"
        n_params = m.get("n_params", m.get("n_params_wo_clip"))
        if n_params is not None:
            assert sum(p.numel() for p in model.parameters()) == n_params, mf.name


def test_opt_txt_builds_released_models(root):
    """The upstream-written opt.txt files, read by our configs, build models matching the manifests."""
    from src.config import MaskTransConfig, ResTransConfig, VQConfig
    from src.models.momask import build_mask_transformer, build_res_transformer, build_vq

    man = root / "manifests"
    if not (man / "vq_opt.txt").is_file():
        pytest.skip("no opt.txt manifests")
    vq_cfg = VQConfig.load(man / "vq_opt.txt")
    builders = {"vq": lambda: build_vq(vq_cfg),
                "mtrans": lambda: build_mask_transformer(MaskTransConfig.load(man / "mtrans_opt.txt"), vq_cfg),
                "rtrans": lambda: build_res_transformer(ResTransConfig.load(man / "rtrans_opt.txt"), vq_cfg)}
    for stem, build in builders.items():
        if not (man / f"{stem}.json").is_file():
            continue
        want = {k: tuple(s) for k, (s, _) in load_manifest(man / f"{stem}.json")["state_dict"].items()}
        with torch.device("meta"):
            model = build()
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == want, stem
