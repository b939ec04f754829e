"""BAMM end to end on a tiny HumanML3D-layout dataset: training files reload strictly, load_generator picks BAMM from
opt.txt and generates seeded motions of the requested lengths, UCE on a BAMM run edits only ``cond_emb``, and the
pipeline/evaluation CLIs name BAMM runs apart from MoMask's."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train_momask import TINY_TRANS, TINY_VQ, make_tiny_dataset, run_main

from src.common.errors import HmuError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """vq + MoMask residual + BAMM (1 epoch each) -> (checkpoints dir, dataset dir)."""
    base = tmp_path_factory.mktemp("bamm")
    dirs = (base / "checkpoints", make_tiny_dataset(base / "dataset"))
    assert run_main("src.train.vq", "--name", "vq", *TINY_VQ, dirs=dirs) == 0
    assert run_main("src.train.residual", "--name", "res", "--vq_name", "vq", *TINY_TRANS, dirs=dirs) == 0
    assert run_main("src.train.bamm", "--name", "bamm", "--vq_name", "vq", *TINY_TRANS, dirs=dirs) == 0
    return dirs


def _gen(dirs, **kw):
    from src.gen.generate import load_generator

    ckpt, data = dirs
    return load_generator(dataset_name="synth", name="bamm", res_name="res", checkpoints_dir=ckpt, dataset_dir=data,
                          **kw)


def test_help_is_fast():
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "src.train.bamm", "--help"], cwd=REPO, capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0 and "--trans" in r.stdout
    assert time.perf_counter() - t0 < 5


def test_training_files_reload_strictly(runs):
    from src.common.io import torch_load
    from src.config import VQConfig
    from src.gen.generate import run_family
    from src.models.bamm import BAMMTransformer, load_bamm_run
    from src.models.bamm.load import checkpoint_state

    run = runs[0] / "synth" / "bamm"
    opt = (run / "opt.txt").read_text()
    assert "\ntrans: official\n" in opt and "\nmodel_family: bamm\n" in opt
    assert run_family(run / "opt.txt") == "bamm"
    assert run_family(runs[0] / "synth" / "res" / "opt.txt") == "momask"
    latest = torch_load(run / "model" / "latest.tar")
    assert {"t2m_transformer", "opt_t2m_transformer", "ep"} <= set(latest)
    vq_cfg = VQConfig.load(runs[0] / "synth" / "vq" / "opt.txt")
    for which in ("latest.tar", "net_best_fid.tar"):
        model, cfg = load_bamm_run(run, vq=vq_cfg, which=which)  # strict: every key, every shape
        assert isinstance(model, BAMMTransformer) and cfg.trans == "official"
        saved = checkpoint_state(torch_load(run / "model" / which), source=which)
        for k, v in model.state_dict().items():  # every trained tensor is the file's, none left at init
            torch.testing.assert_close(v, saved[k], rtol=0, atol=0)


def test_generation_is_seeded_with_requested_lengths(runs):
    from src.gen.generate import BAMMGenerator

    gen = _gen(runs)
    assert isinstance(gen, BAMMGenerator) and gen.sources["family"] == "bamm" and gen.len_estimator is None
    caps, lens = ["a person kicks", "a person walks slowly", "a person waves"], [40, 64, 19]
    a = gen.generate(caps, lens, generator=torch.Generator().manual_seed(3))
    b = gen.generate(caps, lens, generator=torch.Generator().manual_seed(3))
    c = gen.generate(caps, lens, generator=torch.Generator().manual_seed(4))
    assert [len(x) for x in a] == [40, 64, 16]  # floor to whole tokens, as MoMask
    assert all(x.shape[1] == 263 for x in a)
    for x, y in zip(a, b):
        assert (x == y).all()
    assert any(x.shape != y.shape or not (x == y).all() for x, y in zip(a, c))


def test_missing_length_is_predicted_by_bamm(runs):
    gen = _gen(runs)
    out = gen.generate(["a person kicks", "a person jumps"], [None, 32], generator=torch.Generator().manual_seed(0))
    assert len(out[1]) == 32
    assert len(out[0]) % gen.unit_length == 0 and gen.unit_length <= len(out[0]) <= gen.max_tokens * gen.unit_length


def test_family_mismatch_is_one_line(runs):
    with pytest.raises(HmuError, match="bamm run"):
        _gen(runs, model="momask")


def test_uce_on_bamm_changes_only_cond_emb(runs):
    from src.common.io import torch_load
    from src.methods.uce.__main__ import main as main_uce

    ckpt, data = runs
    rc = main_uce(["--dataset_name", "synth", "--model", "bamm", "--trans_name", "bamm", "--res_name", "none",
                   "--name", "bamm_uce", "--forget_text", "kicks", "--retain_text", "walks", "waves",
                   "--checkpoints_dir", str(ckpt), "--dataset_dir", str(data)])
    assert rc == 0
    before = torch_load(ckpt / "synth" / "bamm" / "model" / "net_best_fid.tar")["t2m_transformer"]
    after = torch_load(ckpt / "synth" / "bamm_uce" / "model" / "net_best_fid.tar")["t2m_transformer"]
    assert set(before) == set(after)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= {"cond_emb.weight", "cond_emb.bias"}
    from src.gen.generate import BAMMGenerator, load_generator, run_family

    assert run_family(ckpt / "synth" / "bamm_uce" / "opt.txt") == "bamm"  # the edit stays a BAMM run
    edited = load_generator(dataset_name="synth", name="bamm_uce", res_name="res", checkpoints_dir=ckpt,
                            dataset_dir=data)
    assert isinstance(edited, BAMMGenerator)


def test_pipeline_names_bamm_runs_apart():
    from src.methods.pipeline import parse_pipeline, plan

    args, rest = parse_pipeline(["rece_uce", "violence", "synth", "--model", "bamm", "--trans_name",
                                                  "bamm_tiny", "--res_name", "tres_tiny", "--vq_name", "rvq_tiny"])
    steps = plan(args, rest)
    names = [a[a.index("--name") + 1] for _, a in steps]
    assert names == ["bamm_uce_violence", "bamm_rece_violence", "bamm_uce_violence", "bamm_rece_violence"]
    evals = [a for m, a in steps if m == "src.eval.t2m_unlearn"]
    assert all(a[a.index("--model") + 1] == "bamm" for a in evals)
    args, rest = parse_pipeline(["lcr", "violence", "synth", "--model", "bamm"])
    assert next(a[a.index("--name") + 1] for _, a in plan(args, rest)) == "bamm_lcr16_synth_violence"
    args, rest = parse_pipeline(["finetune", "violence", "synth", "--model", "bamm"])
    with pytest.raises(HmuError, match="--model bamm"):
        plan(args, rest)


def test_eval_run_name_marks_bamm():
    from src.eval.t2m_unlearn import parse

    assert parse(["--model", "bamm", "--method", "uce", "--name", "x"]).results_name() == "synth_bamm_uce_violence_s0"
    assert parse(["--method", "uce", "--name", "x"]).results_name() == "synth_uce_violence_s0"
