"""Generation parity with upstream: MoMask (``momask/generate/``) and BAMM (``bamm/generate/``).

Upstream ran its own generate loops on the tiny checkpoints with fixed seeds and recorded the token ids, the decoded
features and per-step intermediates. Here hmu's models, loaded strictly with hmu's loaders, run the same call
sequence: token ids must be identical (same float32 logits, same RNG draws in the same order and layout) and
features/logits equal to atol = rtol = 1e-5. Every size, seed and sampling argument is read from the fixture.
The end-to-end tests run the same case through ``src.gen``'s MotionGenerator / BAMMGenerator (frame lengths in,
un-normalised features out), so a wrong schedule, step count or guidance scale there fails too.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_momask_util import momask_root, tiny_configs, tiny_runs

TOL = {"atol": 1e-5, "rtol": 1e-5}
BAMM_RUN = "2000-01-01-00-00-00_tiny_bamm"


# ---------------------------------------------------------------- fixtures
def with_generate_io(root, family: str):
    """``root`` when it holds the recorded generation (``generate/io.npz``); the test is skipped otherwise."""
    if not (root / "generate" / "io.npz").is_file():
        pytest.skip(f"no {family}/generate fixture")
    return root


def generate_io(root) -> dict:
    """The recorded generation's inputs and outputs (``generate/io.npz``) as a dict of arrays."""
    return dict(np.load(root / "generate" / "io.npz"))


@pytest.fixture(scope="module")
def mroot(fixtures):
    return with_generate_io(momask_root(fixtures), "momask")


@pytest.fixture(scope="module")
def mio(mroot):
    return generate_io(mroot)


@pytest.fixture(scope="module")
def momask_models(mroot):
    """(vq, mask transformer, residual transformer) from the tiny runs, through hmu's strict loaders."""
    from src.common.paths import Paths
    from src.models import checkpoint as C

    runs = tiny_runs(mroot)
    paths = Paths.default(checkpoints_dir=mroot / "tiny" / "checkpoints")
    cfg = json.loads((mroot / "generate" / "config.json").read_text())["checkpoints"]

    def ds_name(kind, rel):
        run = runs[kind]
        assert rel.startswith(run.name + "/"), (kind, rel, run)  # the fixture's checkpoint is the run we load
        return run.parent.name, run.name, rel.rsplit("/", 1)[-1]

    ds, name, ckpt = ds_name("vq", cfg["vq"])
    vq = C.load_vq(paths, ds, name, ckpt=ckpt, input_width=tiny_configs(mroot)["vq"]["input_width"])[0]
    ds, name, ckpt = ds_name("mask", cfg["mask_transformer"])
    mt = C.load_mask_transformer(paths, ds, name, ckpt=ckpt)[0]
    ds, name, ckpt = ds_name("res", cfg["residual_transformer"])
    rt = C.load_res_transformer(paths, ds, name, ckpt=ckpt)[0]
    return vq.eval(), mt.eval(), rt.eval()


@pytest.fixture(autouse=True)
def _one_thread():
    """Upstream recorded with one thread; float32 sums (hence logits near a sampling boundary) may depend on it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _runs(io, key="mask_seeds"):
    return list(range(len(io[key])))


def _close(got, want):
    np.testing.assert_allclose(got.detach().cpu().numpy(), want, **TOL)


class _Recorder:
    """Wrap a bound method, recording (args, kwargs, output) of each call; used for per-step intermediates."""

    def __init__(self, monkeypatch, obj, name):
        self.calls = []
        orig = getattr(obj, name)

        def wrapped(*args, **kwargs):
            out = orig(*args, **kwargs)
            self.calls.append((args, kwargs, out))
            return out

        monkeypatch.setattr(obj, name, wrapped)


class _FixedText:
    """Text encoder stand-in: caption "i" -> row i of the fixture's text features (upstream stubbed CLIP the same)."""

    def __init__(self, feats):
        self.feats = torch.from_numpy(feats)

    def encode(self, texts):
        return self.feats[[int(t) for t in texts]]


# ---------------------------------------------------------------- MoMask
def _mask_generate(mt, io, r, generator=None):
    return mt.generate(torch.from_numpy(io["text_feat"]), torch.from_numpy(io["m_lens"]),
                       timesteps=int(io["gen_timesteps"]), cond_scale=float(io["gen_cond_scale"]),
                       temperature=float(io["gen_temperature"]), topk_filter_thres=float(io["gen_topk_filter_thres"]),
                       gsample=bool(io[f"r{r}_gsample"]), force_mask=bool(io["gen_force_mask"]), generator=generator)


def _res_generate(rt, io, ids, generator=None):
    return rt.generate(ids, torch.from_numpy(io["text_feat"]), torch.from_numpy(io["m_lens"]),
                       temperature=float(io["res_temperature"]), topk_filter_thres=float(io["res_topk_filter_thres"]),
                       cond_scale=float(io["res_cond_scale"]), generator=generator)


def test_momask_fixture_case(mio, momask_models):
    """The fixture's ids and sizes are those of the loaded models (else the parity below would be vacuous)."""
    _, mt, rt = momask_models
    assert (int(mio["mask_id"]), int(mio["pad_id_mask"]), int(mio["pad_id_res"])) == (mt.mask_id, mt.pad_id, rt.pad_id)
    assert (int(mio["num_tokens"]), int(mio["num_quantizers"])) == (mt.num_tokens, rt.num_quantizers)
    assert mio["m_lens"].tolist() == (mio["frame_lens"] // 4).tolist()
    assert {bool(mio[f"r{r}_gsample"]) for r in _runs(mio)} == {False, True}  # multinomial and Gumbel both covered


@pytest.mark.parametrize("r", [0, 1, 2])
def test_mask_transformer_generate_parity(r, mio, momask_models, monkeypatch):
    """Same global seed -> the same ids at every step; CFG logits of every step to 1e-5; as many steps as asked."""
    _, mt, _ = momask_models
    rec = _Recorder(monkeypatch, mt, "forward_with_cond_scale")
    torch.manual_seed(int(mio["mask_seeds"][r]))
    ids = _mask_generate(mt, mio, r)
    steps_in, logits = mio[f"r{r}_step_ids_in"], mio[f"r{r}_step_logits_cfg"]
    assert len(rec.calls) == int(mio["gen_timesteps"]) == len(steps_in)
    for s, (args, kwargs, out) in enumerate(rec.calls):
        np.testing.assert_array_equal(args[0].numpy(), steps_in[s], err_msg=f"ids fed at step {s}")
        np.testing.assert_allclose(out.numpy(), logits[s], **TOL, err_msg=f"CFG logits at step {s}")
    assert ids.dtype == torch.int64
    np.testing.assert_array_equal(ids.numpy(), mio[f"r{r}_ids_mask"])


@pytest.mark.parametrize("r", [0, 1, 2])
def test_mask_transformer_generate_with_generator(r, mio, momask_models):
    """hmu's explicit torch.Generator seeded like upstream's global RNG gives upstream's ids, and leaves the global
    RNG untouched."""
    _, mt, _ = momask_models
    torch.manual_seed(12345)
    before = torch.get_rng_state()
    ids = _mask_generate(mt, mio, r, generator=torch.Generator().manual_seed(int(mio["mask_seeds"][r])))
    np.testing.assert_array_equal(ids.numpy(), mio[f"r{r}_ids_mask"])
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("r", [0, 1, 2])
def test_residual_transformer_generate_parity(r, mio, momask_models, monkeypatch):
    """From upstream's base ids: Gumbel draws of shape (B, N, num_tokens + 1) per layer give upstream's ids."""
    _, _, rt = momask_models
    rec = _Recorder(monkeypatch, rt, "forward_with_cond_scale")
    torch.manual_seed(int(mio["res_seeds"][r]))
    all_ids = _res_generate(rt, mio, torch.from_numpy(mio[f"r{r}_ids_mask"]))
    hist, logits = mio[f"r{r}_res_history_sum"], mio[f"r{r}_res_logits_cfg"]
    assert len(rec.calls) == int(mio["num_quantizers"]) - 1 == len(hist)
    for q, (args, kwargs, out) in enumerate(rec.calls):
        _close(args[0], hist[q])
        _close(out, logits[q])
    np.testing.assert_array_equal(all_ids.numpy(), mio[f"r{r}_all_ids"])
    gen = _res_generate(rt, mio, torch.from_numpy(mio[f"r{r}_ids_mask"]),
                        generator=torch.Generator().manual_seed(int(mio["res_seeds"][r])))
    np.testing.assert_array_equal(gen.numpy(), mio[f"r{r}_all_ids"])


@pytest.mark.parametrize("n_classes,kept", [(10, 1), (16, 2), (17, 2), (21, 3), (512, 52), (513, 52)])
def test_top_k_keeps_upstreams_count(n_classes, kept):
    """upstream's top_k(logits, 0.9) keeps ceil((1 - 0.9) * K) logits (hand-computed; K = 16, 17 are the fixture's
    base and residual heads, 512/513 the released ones), the largest, and sets the rest to -inf."""
    from src.models.momask.tools import top_k

    x = torch.randn(3, 5, n_classes, generator=torch.Generator().manual_seed(n_classes))
    out = top_k(x, 0.9, dim=-1)
    finite = torch.isfinite(out)
    assert (finite.sum(-1) == kept).all()
    assert torch.equal(out[finite], x[finite])
    assert (x.masked_fill(finite, float("-inf")).amax(-1) <= x.masked_fill(~finite, float("inf")).amin(-1)).all()


@pytest.mark.parametrize("r", [0, 1, 2])
def test_vq_decode_parity(r, mio, momask_models):
    vq, _, _ = momask_models
    with torch.no_grad():
        _close(vq.forward_decoder(torch.from_numpy(mio[f"r{r}_all_ids"])), mio[f"r{r}_decoded"])


def _reseed_residual(monkeypatch, res, generator, seed, record):
    """Upstream's fixture reseeds the RNG between the base and the residual stage; do the same inside src.gen's
    pipeline (which otherwise draws both stages from one generator, as upstream's eval loop does)."""
    orig = res.generate

    def wrapped(*args, **kwargs):
        generator.manual_seed(seed)
        out = orig(*args, **kwargs)
        record.append(out)
        return out

    monkeypatch.setattr(res, "generate", wrapped)


@pytest.mark.parametrize("r", [0, 1, 2])
def test_motion_generator_parity(r, mio, momask_models, monkeypatch):
    """src.gen's MotionGenerator, given frame lengths and upstream's sampling arguments, reproduces the whole chain:
    base ids, residual ids and the decoded (here un-normalised with mean 0, std 1) features of each motion."""
    from src.gen.generate import MotionGenerator

    vq, mt, rt = momask_models
    dim = mio[f"r{r}_decoded"].shape[-1]
    gen = MotionGenerator(vq=vq, mask=mt, res=rt, text_encoder=_FixedText(mio["text_feat"]), mean=np.zeros(dim),
                          std=np.ones(dim), time_steps=int(mio["gen_timesteps"]),
                          cond_scale=float(mio["gen_cond_scale"]), res_cond_scale=float(mio["res_cond_scale"]),
                          temperature=float(mio["gen_temperature"]), topkr=float(mio["gen_topk_filter_thres"]),
                          gumbel_sample=bool(mio[f"r{r}_gsample"]))
    g = torch.Generator().manual_seed(int(mio["mask_seeds"][r]))
    got_ids: list = []
    _reseed_residual(monkeypatch, rt, g, int(mio["res_seeds"][r]), got_ids)
    n = len(mio["frame_lens"])
    feats = gen.generate([str(i) for i in range(n)], mio["frame_lens"].tolist(), generator=g)
    np.testing.assert_array_equal(got_ids[0].numpy(), mio[f"r{r}_all_ids"])
    unit = int(mio["frame_lens"][0] // mio["m_lens"][0])
    for k, f in enumerate(feats):
        frames = int(mio["m_lens"][k]) * unit
        np.testing.assert_allclose(f, mio[f"r{r}_decoded"][k, :frames], **TOL)


# ---------------------------------------------------------------- BAMM
@pytest.fixture(scope="module")
def broot(fixtures):
    return with_generate_io(fixtures / "bamm", "bamm")


@pytest.fixture(scope="module")
def bio(broot):
    return generate_io(broot)


@pytest.fixture(scope="module")
def bamm(broot):
    from src.models.bamm import BAMMConfig, load_bamm

    c = json.loads((broot / "tiny" / "config.json").read_text())["config"]
    cfg = BAMMConfig(code_dim=c["code_dim"], num_tokens=c["num_tokens"], latent_dim=c["latent_dim"],
                     ff_size=c["ff_size"], num_layers=c["n_layers"], num_heads=c["n_heads"], dropout=c["dropout"],
                     clip_dim=c["clip_dim"], cond_drop_prob=c["cond_drop_prob"], trans=c["trans"])
    path = broot / "tiny" / "checkpoints" / "t2m" / BAMM_RUN / "model" / "latest.tar"
    assert json.loads((broot / "generate" / "config.json").read_text())["bamm_checkpoint"].endswith(
        f"{BAMM_RUN}/model/latest.tar")
    return load_bamm(path, cfg)


@pytest.fixture(scope="module")
def bcase(broot):
    return json.loads((broot / "generate" / "config.json").read_text())["case"]


BAMM_CASES = [(r, mode) for r in (0, 1) for mode in ("predlen", "gtlen")]


def _seq_len(bio):
    return bio["r0_predlen_ids"].shape[1] - 1  # upstream's hard-coded 49 (ids carry one more END slot)


def test_bamm_fixture_case(bio, bamm, bcase):
    assert (int(bio["end_id"]), int(bio["pad_id"]), int(bio["mask_id"])) == (bamm.end_id, bamm.pad_id, bamm.mask_id)
    assert [r for r, _ in BAMM_CASES][::2] == list(range(len(bio["seeds"])))
    assert bio["m_lens"].tolist() == [f // 4 for f in bcase["frame_lens"]]
    # pass 2 picks its positions by torch's sort over tied scores, not simply the leading ones: the fixture holds a
    # case where they differ, so a "first round(len/2)" shortcut cannot pass the tests below
    p = "r0_predlen_"
    n_known_leading = [(row[:n] != bio["pad_id"]).tolist() for row, n in
                       zip(bio[p + "pass2_cond_idx"], bio[p + "pad_when_end_len"].tolist())]
    assert any(k != sorted(k) for k in n_known_leading)


@pytest.mark.parametrize("r,mode", BAMM_CASES)
def test_bamm_generate_parity(r, mode, bio, bamm, monkeypatch):
    """Both passes and the returned ids equal upstream's, for a predicted and for a given length."""
    p = f"r{r}_{mode}_"
    rec = _Recorder(monkeypatch, bamm, "_decode_pass")
    torch.manual_seed(int(bio["seeds"][r]))
    ids, lens = bamm.generate(torch.from_numpy(bio["text_feat"]), torch.from_numpy(bio["m_lens"]), cond_scale=4,
                              predict_length=mode == "predlen", max_len=_seq_len(bio))
    assert len(rec.calls) == 2
    (_, kw1, pass1), (args2, kw2, pass2) = rec.calls
    np.testing.assert_array_equal(pass1.numpy(), bio[p + "pass1_ids"])
    np.testing.assert_array_equal(args2[0].numpy(), bio[p + "pass2_idx_in"])
    np.testing.assert_array_equal(kw2["cond_idx"].numpy(), bio[p + "pass2_cond_idx"])
    assert kw2["cond_scale"] == int(bio[p + "pass2_cond_scale"])
    np.testing.assert_array_equal(pass2.numpy(), bio[p + "pass2_ids"])
    np.testing.assert_array_equal(ids.numpy(), bio[p + "pad_when_end_ids"])
    np.testing.assert_array_equal(lens.numpy(), bio[p + "pad_when_end_len"])
    # with an explicit generator: the same ids
    ids2, _ = bamm.generate(torch.from_numpy(bio["text_feat"]), torch.from_numpy(bio["m_lens"]), cond_scale=4,
                            predict_length=mode == "predlen", max_len=_seq_len(bio),
                            generator=torch.Generator().manual_seed(int(bio["seeds"][r])))
    assert torch.equal(ids, ids2)


@pytest.mark.parametrize("r,mode", BAMM_CASES)
def test_bamm_residual_and_decode_parity(r, mode, bio, momask_models):
    vq, _, rt = momask_models
    p = f"r{r}_{mode}_"
    assert bio[p + "res_m_lens"].tolist() == np.clip(bio[p + "pad_when_end_len"], 1, _seq_len(bio)).tolist()
    torch.manual_seed(int(bio["res_seeds"][r]))
    all_ids = rt.generate(torch.from_numpy(bio[p + "pad_when_end_ids"]), torch.from_numpy(bio["text_feat"]),
                          torch.from_numpy(bio[p + "res_m_lens"]), temperature=1.0, cond_scale=5)
    np.testing.assert_array_equal(all_ids.numpy(), bio[p + "all_ids"])
    if p + "decoded" in bio:
        with torch.no_grad():
            _close(vq.forward_decoder(all_ids), bio[p + "decoded"])


@pytest.mark.parametrize("r,mode", BAMM_CASES)
def test_bamm_generator_parity(r, mode, bio, bamm, momask_models, bcase, monkeypatch):
    """src.gen's BAMMGenerator: frame lengths given (gtlen) or none and no length estimator (predlen, BAMM's own END)
    -> upstream's residual ids and decoded features."""
    from src.gen.generate import BAMMGenerator

    vq, _, rt = momask_models
    p = f"r{r}_{mode}_"
    dim = bio["r0_predlen_decoded"].shape[-1]
    unit = bcase["frame_lens"][0] // int(bio["m_lens"][0])
    gen = BAMMGenerator(vq=vq, mask=bamm, res=rt, text_encoder=_FixedText(bio["text_feat"]), mean=np.zeros(dim),
                        std=np.ones(dim), max_motion_length=_seq_len(bio) * unit, cond_scale=bcase["cond_scale"],
                        res_cond_scale=5.0, temperature=float(bcase["temperature"]),
                        topkr=float(bcase["topk_filter_thres"]))
    g = torch.Generator().manual_seed(int(bio["seeds"][r]))
    got: list = []
    _reseed_residual(monkeypatch, rt, g, int(bio["res_seeds"][r]), got)
    n = len(bio["m_lens"])
    lengths = bcase["frame_lens"] if mode == "gtlen" else None
    feats = gen.generate([str(i) for i in range(n)], lengths, generator=g)
    np.testing.assert_array_equal(got[0].numpy(), bio[p + "all_ids"])
    assert [len(f) for f in feats] == (bio[p + "res_m_lens"] * unit).tolist()
    if p + "decoded" in bio:
        for k, f in enumerate(feats):
            np.testing.assert_allclose(f, bio[p + "decoded"][k, :len(f)], **TOL)
