"""Transition artefacts at LCR's replaced codes (src.eval.transitions) on a tiny 263-d MoMask."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from src.common.seed import torch_generator
from src.data.motion import feature_dim, recover_from_ric
from src.eval.quality import quality_metrics
from src.eval.transitions import removed_codes, replaced_frame_masks, transition_figures
from src.gen.generate import MotionGenerator
from src.methods.lcr.edit import codebook_layers, lcr_checkpoint, replace_codes
from src.models.momask.transformer import MaskTransformer, ResidualTransformer
from src.models.momask.vq import RVQVAE
from test_gen import BagEncoder

D = feature_dim(22)
CAPS = ["a person kicks", "a person walks", "a person waves", "someone jumps"]
LENS = [40, 32, 48, 36]


def tiny_263(seed: int = 0) -> MotionGenerator:
    torch.manual_seed(seed)
    vq = RVQVAE(input_width=D, nb_code=6, code_dim=8, down_t=2, stride_t=2, width=8, depth=1,
                dilation_growth_rate=3, num_quantizers=2)
    vq.train()
    vq(torch.randn(4, 16, D))
    vq.eval()
    kw = {"code_dim": 8, "num_tokens": 6, "latent_dim": 16, "ff_size": 32, "num_layers": 1, "num_heads": 2,
          "dropout": 0.1, "clip_dim": BagEncoder.dim}
    return MotionGenerator(vq=vq, mask=MaskTransformer(**kw, cond_drop_prob=0.1),
                           res=ResidualTransformer(**kw, num_quantizers=2, cond_drop_prob=0.2, share_weight=True),
                           text_encoder=BagEncoder(), mean=np.zeros(D, np.float32), std=np.full(D, 0.05, np.float32),
                           max_motion_length=48, time_steps=4)


def _most_used_code(gen) -> int:
    _, ids = gen.generate_coded(CAPS, LENS, generator=torch_generator(7))
    return int(np.bincount(np.concatenate([i[:, 0] for i in ids])).argmax())


def _lcr(gen, codes, *, alpha: float = 1.0):
    edited = copy.copy(gen)
    edited.vq = replace_codes(gen.vq, {0: codes}, alpha=alpha, generator=torch.Generator().manual_seed(0))
    return edited


def test_removed_codes_from_an_lcr_checkpoint(tmp_path):
    gen = tiny_263()
    path = tmp_path / "net_best_fid.tar"
    torch.save(lcr_checkpoint(gen.vq, {0: [3, 1], 1: []}), path)
    assert removed_codes(path) == {0: [3, 1]}
    assert removed_codes({"removed_codes": [[2], [5]]}) == {0: [2], 1: [5]}
    with pytest.raises(Exception, match="removed_codes"):
        removed_codes({"vq_model": {}})


def test_masks_by_hand():
    ids = [np.array([[1, 0], [2, 5], [1, 1], [4, 4]])]
    (m,) = replaced_frame_masks(ids, {0: [2], 1: [4]}, unit=2, pad=1)
    # tokens 1 (layer 0 code 2) and 3 (layer 1 code 4) -> frames 2-3 and 6-7, widened by one frame each side
    assert m.tolist() == [False, True, True, True, True, True, True, True]
    (m0,) = replaced_frame_masks(ids, {0: [2]}, unit=2, pad=0)
    assert m0.tolist() == [False, False, True, True, False, False, False, False]


def test_same_seed_same_ids_and_the_original_side_is_the_original_model():
    gen = tiny_263()
    code = _most_used_code(gen)
    edited = _lcr(gen, [code])
    out = transition_figures(gen, edited, {0: [code]}, CAPS, LENS, seed=7, pad=2)
    assert out["ids_equal"]        # LCR edits the codebook only: the transformers sample the same ids
    # the original's figures are those of the original model's own generation with the seed (independent path)
    feats = gen.generate(CAPS, LENS, generator=torch_generator(7))
    _, ids = edited.generate_coded(CAPS, LENS, generator=torch_generator(7))
    masks = replaced_frame_masks(ids, {0: [code]}, unit=4, pad=2)
    ref = quality_metrics([recover_from_ric(f.astype(np.float64), 22) for f in feats], masks=masks)
    assert out["original"]["masked_jerk_mean"] == pytest.approx(ref["masked_jerk_mean"], rel=1e-9)
    assert out["original"]["jerk_mean"] == pytest.approx(ref["jerk_mean"], rel=1e-9)
    assert out["masked_frames"] == sum(int(m.sum()) for m in masks) > 0
    hits = sum(int((i[:, 0] == code).sum()) for i in ids)
    assert out["replaced_tokens"] == hits


def test_an_unchanged_codebook_gives_identical_figures_and_a_far_replacement_a_jerkier_transition():
    gen = tiny_263()
    code = _most_used_code(gen)
    same = transition_figures(gen, copy.copy(gen), {0: [code]}, CAPS, LENS, seed=7)
    assert same["edited"]["masked_jerk_mean"] == same["original"]["masked_jerk_mean"]
    # replace the code's row by a vector far from every code: a jump in the latent at those tokens
    far = copy.copy(gen)
    far.vq = copy.deepcopy(gen.vq)
    with torch.no_grad():
        book = codebook_layers(far.vq)[0].codebook
        book[code] = book[code] + 20 * book.std()
    out = transition_figures(gen, far, {0: [code]}, CAPS, LENS, seed=7)
    assert out["edited"]["masked_jerk_mean"] > 1.5 * out["original"]["masked_jerk_mean"]
    assert out["edited"]["masked_frames"] == out["original"]["masked_frames"] == out["masked_frames"]


def test_bench_lcr_transitions_end_to_end(synth_root, tmp_path, capsys):
    """The bench on tiny random runs: an LCR run of 8 codes (censor file, no selection), then the table and JSON."""
    import json

    from helpers_methods import MASK, RES, VQ, make_dataset, make_runs

    from bench.lcr_transitions import main as bench
    from src.methods.lcr.__main__ import main as lcr

    data = make_dataset(synth_root, tmp_path / "dataset")
    ck = make_runs(tmp_path / "checkpoints", data)
    flags = ["--checkpoints_dir", str(ck), "--dataset_dir", str(data)]
    codes = tmp_path / "codes.json"
    codes.write_text(json.dumps([list(range(0, 32, 4))]))
    assert lcr(["--dataset_name", "synth", "--vq_name", VQ, "--concept", "violence", "--name", "rvq_lcr",
                "--censor_codes_files", str(codes), "--no_progress", *flags]) == 0
    out = tmp_path / "t.json"
    argv = ["--dataset_name", "synth", "--name", MASK, "--res_name", RES, "--lcr_name", "rvq_lcr", "--split",
            "kw_splits/test-w-violence", "--n", "6", "--json", str(out), *flags]
    assert bench(argv) == 0
    text = capsys.readouterr().out
    assert "masked_jerk_mean" in text and "same code ids: True" in text
    res = json.loads(out.read_text())
    assert res["ids_equal"] and res["masked_frames"] > 0 and res["config"]["lcr_name"] == "rvq_lcr"
    assert bench(argv) == 2   # refuses to overwrite without --force
