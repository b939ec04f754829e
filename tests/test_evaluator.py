"""T2M evaluator: parity with upstream's tiny finest.tar and io.npz, released manifest, strict loading, API properties."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from src.common.errors import HmuError
from src.models.evaluator import (
    MODULE_KEYS,
    Evaluator,
    EvaluatorConfig,
    MotionEncoderBiGRUCo,
    MovementConvEncoder,
    TextEncoderBiGRUCo,
    evaluator_checkpoint_path,
)

ATOL = RTOL = 1e-5


@pytest.fixture(scope="module")
def fx(fixtures):
    d = fixtures / "evaluator"
    tiny = json.loads((d / "tiny_config.json").read_text())
    cfg = EvaluatorConfig.from_dict(tiny["tiny_config"])
    return {"dir": d, "cfg": cfg, "tiny": tiny, "io": dict(np.load(d / "io.npz")),
            "manifest": json.loads((d / "manifest_released.json").read_text())}


@pytest.fixture(scope="module")
def ev(fx):
    return Evaluator.from_checkpoint(fx["dir"] / "tiny_finest.tar", fx["cfg"])


def test_co_embeddings_match_upstream(ev, fx):
    io = fx["io"]
    t, m, order = ev.get_co_embeddings(io["word_embs"], io["pos_ohot"], io["cap_lens"], io["motions"], io["m_lens"])
    assert (io["m_lens"][order] == io["m_lens_sorted"]).all()
    # Ties in m_lens may be ordered differently by another numpy; the stored order is the reference.
    t, m, order = ev.get_co_embeddings(io["word_embs"], io["pos_ohot"], io["cap_lens"], io["motions"], io["m_lens"],
                                       order=io["align_idx"])
    np.testing.assert_allclose(t.numpy(), io["text_embedding"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(m.numpy(), io["motion_embedding"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(t.numpy(), io["text_embedding_ericguo"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(m.numpy(), io["motion_embedding_ericguo"], atol=ATOL, rtol=RTOL)


def test_movements_match_upstream(ev, fx):
    io = fx["io"]
    with torch.no_grad():
        mv = ev.movement_encoder(torch.from_numpy(io["motions"][io["align_idx"]][..., :-4]))
    assert mv.shape == io["movements"].shape
    np.testing.assert_allclose(mv.numpy(), io["movements"], atol=ATOL, rtol=RTOL)


def test_input_order_api(ev, fx):
    io = fx["io"]
    t = ev.encode_text(io["word_embs"], io["pos_ohot"], io["cap_lens"])
    np.testing.assert_allclose(t.numpy(), io["text_embedding_input_order"], atol=ATOL, rtol=RTOL)
    m = ev.encode_motion(io["motions"], io["m_lens"])
    np.testing.assert_allclose(m.numpy()[io["align_idx"]], io["motion_embedding"], atol=ATOL, rtol=RTOL)


def test_input_order_is_permutation_equivariant(ev, fx):
    io = fx["io"]
    perm = np.random.default_rng(0).permutation(len(io["m_lens"]))
    t = ev.encode_text(io["word_embs"], io["pos_ohot"], io["cap_lens"]).numpy()
    tp = ev.encode_text(io["word_embs"][perm], io["pos_ohot"][perm], io["cap_lens"][perm]).numpy()
    np.testing.assert_allclose(tp, t[perm], atol=1e-6)
    m = ev.encode_motion(io["motions"], io["m_lens"]).numpy()
    mp = ev.encode_motion(io["motions"][perm], io["m_lens"][perm]).numpy()
    np.testing.assert_allclose(mp, m[perm], atol=1e-6)


def test_padding_beyond_length_is_ignored(ev, fx):
    io = fx["io"]
    noisy = io["motions"].copy()
    for i, n in enumerate(io["m_lens"]):
        # frames past floor(len/4)*4 + a conv receptive field margin do not reach any kept movement frame
        keep = (n // 4) * 4 + 4
        noisy[i, keep:] = 123.0
    np.testing.assert_allclose(ev.encode_motion(noisy, io["m_lens"]).numpy(),
                               ev.encode_motion(io["motions"], io["m_lens"]).numpy(), atol=1e-6)


def test_seeded_init_reproduces_tiny_checkpoint(fx):
    # Upstream's build_models builds movement, text, motion in that order after torch.manual_seed(0).
    torch.manual_seed(0)
    fresh = Evaluator(fx["cfg"])
    ckpt = torch.load(fx["dir"] / "tiny_finest.tar", map_location="cpu", weights_only=True)
    for name in MODULE_KEYS:
        sd = getattr(fresh, name).state_dict()
        for k, v in ckpt[name].items():
            torch.testing.assert_close(sd[k], v, atol=0, rtol=0)


def test_tiny_state_dict_matches_manifest(fx):
    man = fx["tiny"]["state_dict_manifest"]
    model = Evaluator(fx["cfg"])
    for name in MODULE_KEYS:
        sd = getattr(model, name).state_dict()
        assert list(sd) == list(man[name])
        assert {k: list(v.shape) for k, v in sd.items()} == {k: v["shape"] for k, v in man[name].items()}


def test_released_manifest_keys_and_shapes(fx):
    man = fx["manifest"]
    cfg = EvaluatorConfig.from_dict(man["config"])
    assert cfg == EvaluatorConfig()  # our defaults are the released sizes
    # Build on the meta device: no memory, exact shapes.
    with torch.device("meta"):
        model = Evaluator(cfg)
    for name in MODULE_KEYS:
        sd = getattr(model, name).state_dict()
        assert list(sd) == list(man[name]), name
        for k, v in sd.items():
            assert list(v.shape) == man[name][k]["shape"], k
            assert str(v.dtype).replace("torch.", "") == man[name][k]["dtype"], k
        assert sum(v.numel() for v in sd.values()) == man["param_counts"][name]


def test_module_constructors_are_keyword_only():
    with pytest.raises(TypeError):
        TextEncoderBiGRUCo(300, 15, 8, 6)  # type: ignore[misc]
    with pytest.raises(TypeError):
        MotionEncoderBiGRUCo(8, 10, 6)  # type: ignore[misc]
    with pytest.raises(TypeError):
        MovementConvEncoder(8, 12, 8)  # type: ignore[misc]


def test_save_round_trip_in_released_format(ev, fx, tmp_path):
    p = tmp_path / "finest.tar"
    ev.save(p, epoch=3, it=99)
    raw = torch.load(p, map_location="cpu", weights_only=True)
    assert list(raw) == fx["tiny"]["tiny_ckpt_top_level_keys"]
    back = Evaluator.from_checkpoint(p, fx["cfg"])
    assert back.epoch == 3
    io = fx["io"]
    np.testing.assert_array_equal(back.encode_motion(io["motions"], io["m_lens"]).numpy(),
                                  ev.encode_motion(io["motions"], io["m_lens"]).numpy())
    with pytest.raises(HmuError, match="already exists"):
        ev.save(p)
    ev.save(p, force=True)


def test_wrong_dims_give_one_line_error(fx):
    bad = EvaluatorConfig.from_dict({**fx["cfg"].to_dict(), "dim_text_hidden": 9})
    with pytest.raises(HmuError) as ei:
        Evaluator.from_checkpoint(fx["dir"] / "tiny_finest.tar", bad)
    msg = str(ei.value)
    assert "\n" not in msg and "tiny_finest.tar" in msg and "text_encoder" in msg and "hidden" in msg


def test_missing_and_foreign_checkpoints(fx, tmp_path):
    with pytest.raises(HmuError, match="not found"):
        Evaluator.from_checkpoint(tmp_path / "nope.tar", fx["cfg"])
    p = tmp_path / "partial.tar"
    ckpt = torch.load(fx["dir"] / "tiny_finest.tar", map_location="cpu", weights_only=True)
    del ckpt["text_encoder"]["hidden"]
    ckpt["text_encoder"]["extra.weight"] = torch.zeros(1)
    torch.save(ckpt, p)
    with pytest.raises(HmuError) as ei:
        Evaluator.from_checkpoint(p, fx["cfg"])
    msg = str(ei.value)
    assert "partial.tar" in msg and "missing" in msg and "hidden" in msg and "extra.weight" in msg and "\n" not in msg
    q = tmp_path / "nomod.tar"
    torch.save({"epoch": 1}, q)
    with pytest.raises(HmuError, match="lacks text_encoder"):
        Evaluator.from_checkpoint(q, fx["cfg"])


def test_checkpoint_path_layout(tmp_path):
    p = evaluator_checkpoint_path(tmp_path, "t2m")
    assert p == tmp_path / "HumanML3D" / "text_mot_match" / "model" / "finest.tar"
    alt = tmp_path / "t2m" / "text_mot_match" / "model"
    alt.mkdir(parents=True)
    (alt / "finest.tar").write_bytes(b"")
    assert evaluator_checkpoint_path(tmp_path, "HumanML3D") == alt / "finest.tar"


def test_config_for_dataset():
    assert EvaluatorConfig.for_dataset("t2m") == EvaluatorConfig()
    assert EvaluatorConfig.for_dataset("KIT-ML").dim_pose == 251
    assert EvaluatorConfig.for_dataset("synth", dim_text_hidden=8).dim_text_hidden == 8


def test_too_short_motion_is_rejected(ev, fx):
    io = fx["io"]
    with pytest.raises(ValueError, match="unit_length"):
        ev.encode_motion(io["motions"][:2], np.array([3, 40]))
