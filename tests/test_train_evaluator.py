"""Evaluator training CLI on a toy folder: released layout, loadable by T2MEvaluator.load, learns to match."""
from __future__ import annotations

import pytest


@pytest.mark.slow
def test_train_evaluator_writes_released_layout_and_loads(tmp_path, cli):
    from src.models.evaluator import EvaluatorConfig
    from src.models.t2m_evaluator import T2MEvaluator
    from helpers_evaluator import train_toy_evaluator
    from tests.test_eval_loop import DIM, toy_words

    r = train_toy_evaluator(cli, tmp_path, n=48, max_epoch=3)
    root, w = tmp_path / "dataset" / "synth", toy_words(48)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "ck" / "synth" / "text_mot_match"
    for p in ("model/finest.tar", "meta/mean.npy", "meta/std.npy", "opt.txt"):
        assert (run / p).is_file(), p
    ev = T2MEvaluator.load(checkpoints_dir=tmp_path / "ck", dataset_name="synth", glove_dir=root / "glove")
    assert ev.model.config == EvaluatorConfig.for_dataset("synth", dim_pose=DIM, dim_word=w.dim_word,
                                                          dim_text_hidden=8, dim_coemb_hidden=8, dim_motion_hidden=8,
                                                          dim_movement_enc_hidden=8, dim_movement_latent=8)
    assert ev.encode_texts([["a/DET", "w1/NOUN"]]).shape == (1, 8)
    r2 = cli("src.train.evaluator", "--dataset_name", "synth", "--dataset_dir", str(tmp_path / "dataset"),
             "--checkpoints_dir", str(tmp_path / "ck"))
    assert r2.returncode == 2 and "already exists" in r2.stderr


def test_contrastive_loss_definition():
    import torch

    from src.train.evaluator import contrastive_loss

    a, b = torch.zeros(2, 3), torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])   # distances 5 and 0
    assert float(contrastive_loss(a, b, torch.zeros(2), 10.0)) == pytest.approx((25 + 0) / 2, rel=1e-4)
    assert float(contrastive_loss(a, b, torch.ones(2), 10.0)) == pytest.approx((25 + 100) / 2, rel=1e-4)
