"""MoMask training CLIs: instant --help, presets, a tiny end-to-end run (files in upstream's key format), resume,
refusal to overwrite. The tiny dataset here is random smooth features in the HumanML3D layout (not synth), so the
tests do not depend on the procedural generator."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CLIS = ("src.train.vq", "src.train.mask", "src.train.residual", "src.train.length", "src.gen.__main__")
WORDS = ["a", "person", "walks", "kicks", "waves", "jumps", "forward", "slowly", "and", "then"]


def make_tiny_dataset(root: Path, *, n: int = 24, seed: int = 0) -> Path:
    """HumanML3D-layout folder ``root/synth`` (n motions of 40-76 frames, captions, splits, Mean/Std, glove)."""
    rng = np.random.default_rng(seed)
    d = root / "synth"
    for sub in ("new_joint_vecs", "texts", "glove"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    ids = []
    feats = []
    for i in range(n):
        t = int(rng.integers(10, 20)) * 4
        f = np.cumsum(rng.normal(0, 0.05, (t, 263)), axis=0).astype(np.float32)
        mid = f"{i:06d}"
        np.save(d / "new_joint_vecs" / f"{mid}.npy", f)
        verb = WORDS[2 + i % 4]
        (d / "texts" / f"{mid}.txt").write_text(f"a person {verb}#a/DET person/NOUN {verb}/VERB#0.0#0.0\n"
                                                f"a person {verb} slowly#a/DET#0.0#0.0\n")
        ids.append(mid)
        feats.append(f)
    allf = np.concatenate(feats)
    np.save(d / "Mean.npy", allf.mean(0))
    np.save(d / "Std.npy", allf.std(0) + 1e-3)
    for name, part in (("train", ids[:16]), ("val", ids[16:20]), ("test", ids[20:]), ("all", ids)):
        (d / f"{name}.txt").write_text("\n".join(part) + "\n")
    np.save(d / "glove" / "our_vab_data.npy", rng.standard_normal((len(WORDS), 300)).astype(np.float32))
    with open(d / "glove" / "our_vab_words.pkl", "wb") as fh:
        pickle.dump(WORDS, fh)
    with open(d / "glove" / "our_vab_idx.pkl", "wb") as fh:
        pickle.dump({w: i for i, w in enumerate(WORDS)}, fh)
    return root


TINY_VQ = ["--nb_code", "16", "--code_dim", "16", "--width", "16", "--depth", "1", "--num_quantizers", "2",
           "--window_size", "16", "--batch_size", "8", "--epoch_size", "32", "--max_epoch", "1"]
TINY_TRANS = ["--latent_dim", "16", "--n_layers", "1", "--n_heads", "2", "--ff_size", "32", "--batch_size", "8",
              "--max_epoch", "1"]


def run_main(module: str, *args: str, dirs: tuple[Path, Path]) -> int:
    import importlib

    ckpt, data = dirs
    mod = importlib.import_module(module)
    return mod.main([*args, "--checkpoints_dir", str(ckpt), "--dataset_dir", str(data), "--no_progress"])


def train_tiny(base: Path) -> tuple[Path, Path]:
    """Train vq/mask/res/length tiny runs under ``base`` -> (checkpoints dir, dataset dir)."""
    data = make_tiny_dataset(base / "dataset")
    dirs = (base / "checkpoints", data)
    assert run_main("src.train.vq", "--name", "vq", *TINY_VQ, dirs=dirs) == 0
    assert run_main("src.train.mask", "--name", "mask", "--vq_name", "vq", *TINY_TRANS, dirs=dirs) == 0
    assert run_main("src.train.residual", "--name", "res", "--vq_name", "vq", *TINY_TRANS, dirs=dirs) == 0
    assert run_main("src.train.length", "--name", "length_estimator", "--batch_size", "8", "--max_epoch", "1",
                    dirs=dirs) == 0
    return dirs


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("momask"))


# ------------------------------------------------------------------------------------------------------------ --help

@pytest.mark.parametrize("module", CLIS)
def test_help_is_fast_and_lazy(module):
    t = time.time()
    r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "--name" in r.stdout
    assert time.time() - t < 2.0
    probe = f"import sys, {module} as m; m.build_parser(); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=False)
    assert r.stdout.strip() == "False", r.stderr


# ------------------------------------------------------------------------------------------------------------ presets

def _args(module: str, *argv: str):
    import importlib

    return vars(importlib.import_module(module).build_parser().parse_args(["--name", "x", *argv]))


def test_preset_defaults_and_flag_precedence():
    from src.config import MaskTransConfig, VQConfig
    from src.train.options import resolve_config
    from src.train.presets import TINY

    cfg = resolve_config(VQConfig, _args("src.train.vq", "--dataset_name", "synth"), "vq")
    assert cfg.extra["preset"] == "tiny" and cfg.nb_code == TINY["vq"]["nb_code"] and cfg.num_quantizers >= 2
    cfg = resolve_config(VQConfig, _args("src.train.vq", "--dataset_name", "t2m"), "vq")
    assert cfg.extra["preset"] == "released" and (cfg.nb_code, cfg.num_quantizers) == (512, 6)
    cfg = resolve_config(VQConfig, _args("src.train.vq", "--code_dim", "32", "--nb_code", "7"), "vq")
    assert (cfg.code_dim, cfg.output_emb_width, cfg.nb_code) == (32, 32, 7)
    cfg = resolve_config(MaskTransConfig, _args("src.train.mask", "--split", "kw_splits/train_val-wo-violence"),
                         "mask")
    assert cfg.extra["split"] == "kw_splits/train_val-wo-violence"
    assert (cfg.text_encoder, cfg.clip_dim) == ("minilm", 384)  # the synth default (issue 15)
    assert "split: kw_splits/train_val-wo-violence" in cfg.to_text()


def test_text_encoder_flag_sets_the_feature_size():
    from src.config import LenEstConfig, MaskTransConfig
    from src.train.options import resolve_config

    cfg = resolve_config(MaskTransConfig, _args("src.train.mask", "--dataset_name", "t2m", "--text_encoder", "minilm"),
                         "mask")
    assert (cfg.text_encoder, cfg.clip_dim) == ("minilm", 384)
    cfg = resolve_config(MaskTransConfig, _args("src.train.mask", "--text_encoder", "clip"), "mask")
    assert (cfg.text_encoder, cfg.clip_dim) == ("clip", 512)
    cfg = resolve_config(MaskTransConfig, _args("src.train.mask", "--text_encoder", "embedded"), "mask")
    assert cfg.text_encoder == "embedded" and cfg.clip_dim == 384  # any size: the tiny preset's
    cfg = resolve_config(LenEstConfig, _args("src.train.length", "--text_encoder", "clip"), "len",
                         aliases={"clip_dim": "input_size"})
    assert cfg.input_size == 512


def test_epoch_order_and_schedule():
    from src.config import VQConfig
    from src.train.feed import epoch_order
    from src.train.engine import make_optimizer

    a = epoch_order(10, batch_size=3, seed=1, epoch=2)
    assert [list(x) for x in a] == [list(x) for x in epoch_order(10, batch_size=3, seed=1, epoch=2)]
    assert len(a) == 3 and len({int(i) for b in a for i in b}) == 9  # drop_last, no repeats
    assert [list(x) for x in a] != [list(x) for x in epoch_order(10, batch_size=3, seed=1, epoch=3)]
    assert sum(len(b) for b in epoch_order(100, batch_size=4, seed=0, epoch=0, limit=20)) == 20

    import torch

    model = torch.nn.Linear(2, 2)
    opt, sched = make_optimizer(model, VQConfig(lr=1.0, warm_up_iter=3, milestones=[5], gamma=0.1))
    lrs = []
    for _ in range(7):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 0.1, 0.1])


# ------------------------------------------------------------------------------------------------------------ runs

def test_tiny_runs_write_upstream_files(tiny_runs):
    import torch

    from src.common.paths import Paths
    from src.config import VQConfig
    from src.models.checkpoint import load_len_estimator, load_mask_transformer, load_res_transformer, load_vq

    ckpt, data = tiny_runs
    root = ckpt / "synth"
    load = lambda p: torch.load(p, map_location="cpu", weights_only=True)
    vq = root / "vq"
    assert {"vq_model", "opt_vq_model", "scheduler", "ep", "total_it"} <= set(load(vq / "model/latest.tar"))
    assert {"vq_model", "ep"} <= set(load(vq / "model/net_best_fid.tar"))
    assert np.load(vq / "meta/mean.npy").shape == (263,) and np.load(vq / "meta/std.npy").shape == (263,)
    assert VQConfig.load(vq / "opt.txt").nb_code == 16
    logs = [json.loads(line) for line in (vq / "train_log.jsonl").read_text().splitlines()]
    test = [r for r in logs if r.get("event") == "test"]
    assert test and np.isfinite(test[0]["test_mpjpe_mm"]) and test[0]["test_n"] == 4
    assert {"t2m_transformer", "opt_t2m_transformer", "ep"} <= set(load(root / "mask/model/latest.tar"))
    for f in ("net_best_acc.tar", "net_best_fid.tar"):
        assert "t2m_transformer" in load(root / "mask/model" / f)
    assert load(root / "mask/model/net_best_fid.tar")["hmu_meta"]["selected_by"] == "val_acc"
    # no evaluator in this checkpoints folder: the criterion that chose net_best_fid.tar is in opt.txt
    for run, criterion in (("vq", "val_mpjpe_mm"), ("mask", "val_acc"), ("res", "val_loss")):
        assert f"best_by: {criterion}" in (root / run / "opt.txt").read_text(), run
    for f in ("latest.tar", "net_best_loss.tar", "net_best_fid.tar"):
        assert "res_transformer" in load(root / "res/model" / f)
    assert {"estimator", "epoch", "niter"} <= set(load(root / "length_estimator/model/finest.tar"))
    assert {"estimator", "opt_estimator", "epoch", "niter"} <= set(load(root / "length_estimator/model/latest.tar"))
    # every file loads strictly into a model built from its opt.txt
    paths = Paths.default(checkpoints_dir=ckpt, dataset_dir=data)
    _, vq_cfg, _ = load_vq(paths, "synth", "vq")
    load_mask_transformer(paths, "synth", "mask", vq_cfg=vq_cfg)
    load_res_transformer(paths, "synth", "res", vq_cfg=vq_cfg)
    load_len_estimator(paths, "synth", "length_estimator")


def test_existing_run_needs_force_or_is_continue(tiny_runs, capsys):
    import torch

    ckpt, data = tiny_runs
    dirs = (ckpt, data)
    assert run_main("src.train.vq", "--name", "vq", *TINY_VQ, dirs=dirs) == 2
    assert "--is_continue" in capsys.readouterr().err
    assert run_main("src.train.mask", "--name", "nope", "--vq_name", "vq", "--is_continue", *TINY_TRANS,
                    dirs=dirs) == 2
    # resume: one more epoch from latest.tar, logged as epoch 2
    assert run_main("src.train.vq", "--name", "vq", "--is_continue", "--max_epoch", "2", dirs=dirs) == 0
    latest = torch.load(ckpt / "synth/vq/model/latest.tar", map_location="cpu", weights_only=True)
    assert latest["ep"] == 2
    epochs = [json.loads(x).get("epoch") for x in (ckpt / "synth/vq/train_log.jsonl").read_text().splitlines()]
    assert 2 in epochs
    assert "max_epoch: 2" in (ckpt / "synth/vq/opt.txt").read_text()


def test_force_starts_over(tmp_path):
    data = make_tiny_dataset(tmp_path / "dataset")
    dirs = (tmp_path / "ck", data)
    assert run_main("src.train.length", "--name", "le", "--batch_size", "8", "--max_epoch", "2", dirs=dirs) == 0
    assert run_main("src.train.length", "--name", "le", "--batch_size", "8", "--max_epoch", "1", "--force",
                    dirs=dirs) == 0
    log = (tmp_path / "ck/synth/le/train_log.jsonl").read_text().splitlines()
    assert max(json.loads(x).get("epoch", 0) for x in log) == 1


def test_missing_vq_name_is_one_line_error(tmp_path, capsys):
    data = make_tiny_dataset(tmp_path / "dataset", n=24)
    assert run_main("src.train.mask", "--name", "m", dirs=(tmp_path / "ck", data)) == 2
    assert "--vq_name" in capsys.readouterr().err


def test_reconstruction_mpjpe_counts_and_crops():
    import torch

    from src.models.momask import RVQVAE
    from src.train.vq import reconstruction_mpjpe

    torch.manual_seed(0)
    vq = RVQVAE(input_width=263, nb_code=8, code_dim=8, down_t=2, stride_t=2, width=8, depth=1,
                dilation_growth_rate=3, num_quantizers=2)
    vq.train()
    vq(torch.randn(2, 16, 263))  # initialise codebooks from data
    rng = np.random.default_rng(0)
    motions = [rng.normal(size=(t, 263)).astype(np.float32) for t in (3, 16, 18, 21)]
    out = reconstruction_mpjpe(vq, motions, mean=np.zeros(263, np.float32), std=np.ones(263, np.float32),
                               joints_num=22)
    assert out["n"] == 3 and out["mpjpe_mm"] > 0 and out["mpjpe_local_mm"] > 0
    assert vq.training  # mode restored


# ------------------------------------------------------------------------------------------------ best by FID

def _train_tiny_evaluator(ckpt: Path, data: Path) -> None:
    from src.data.word_vectorizer import save_vocabulary

    words = [*WORDS, "unk"]
    vectors = np.random.default_rng(0).standard_normal((len(words), 300)).astype(np.float32)
    save_vocabulary(data / "synth" / "glove", vectors, words, {w: i for i, w in enumerate(words)})
    import src.train.evaluator as trainer

    small = [f"--{k}" for k in ("dim_text_hidden", "dim_coemb_hidden", "dim_motion_hidden", "dim_movement_enc_hidden",
                                "dim_movement_latent")]
    assert trainer.main(["--max_epoch", "1", "--batch_size", "8", "--checkpoints_dir", str(ckpt), "--dataset_dir",
                         str(data), "--no_progress", *[a for k in small for a in (k, "8")]]) == 0


@pytest.mark.slow
def test_with_an_evaluator_net_best_fid_is_chosen_by_fid(tmp_path):
    """With checkpoints/<ds>/text_mot_match present, vq/mask/residual evaluate FID every --eval_every_e epochs and
    keep the lowest as net_best_fid.tar (opt.txt: best_by fid); --save_every_e keeps E%04d.tar."""
    import torch

    data = make_tiny_dataset(tmp_path / "dataset")
    ckpt = tmp_path / "ck"
    dirs = (ckpt, data)
    _train_tiny_evaluator(ckpt, data)
    assert run_main("src.train.vq", "--name", "vq", *TINY_VQ, "--max_epoch", "2", dirs=dirs) == 0
    assert run_main("src.train.mask", "--name", "mask", "--vq_name", "vq", *TINY_TRANS, "--max_epoch", "3",
                    "--eval_every_e", "2", "--save_every_e", "2", dirs=dirs) == 0
    assert run_main("src.train.residual", "--name", "res", "--vq_name", "vq", *TINY_TRANS, dirs=dirs) == 0
    assert run_main("src.train.bamm", "--name", "bamm", "--vq_name", "vq", *TINY_TRANS, "--eval_every_e", "1",
                    dirs=dirs) == 0
    root = ckpt / "synth"
    load = lambda p: torch.load(p, map_location="cpu", weights_only=True)
    for run, evaluated in (("vq", [1, 2]), ("mask", [2, 3]), ("res", [1]), ("bamm", [1])):
        assert "best_by: fid" in (root / run / "opt.txt").read_text(), run
        logs = [json.loads(x) for x in (root / run / "train_log.jsonl").read_text().splitlines()]
        fids = {r["epoch"]: r["eval_fid"] for r in logs if "eval_fid" in r}
        assert sorted(fids) == evaluated, run
        best = load(root / run / "model" / "net_best_fid.tar")
        assert best["hmu_meta"]["selected_by"] == "fid", run
        assert best["hmu_meta"]["fid"] == min(fids.values()), run
        assert fids[best["ep"]] == min(fids.values()), run
    assert (root / "vq/model/net_best_mpjpe.tar").is_file()  # the validation choice, kept beside it
    assert (root / "mask/model/net_best_acc.tar").is_file() and (root / "mask/model/E0002.tar").is_file()
    assert not (root / "mask/model/E0001.tar").exists() and not (root / "mask/model/E0003.tar").exists()
    assert "t2m_transformer" in load(root / "mask/model/E0002.tar")
    # --eval_every_e 0: select by validation even with an evaluator
    assert run_main("src.train.residual", "--name", "res0", "--vq_name", "vq", *TINY_TRANS, "--eval_every_e", "0",
                    dirs=dirs) == 0
    assert "best_by: val_loss" in (root / "res0" / "opt.txt").read_text()
    assert "eval_fid" not in (root / "res0" / "train_log.jsonl").read_text()


def test_vq_fid_hook_is_zero_for_a_perfect_reconstruction():
    """The hook's FID is FID(ground truth, reconstruction): 0 when the VQ gives its input back, > 0 otherwise."""
    import torch

    from src.train.fid import vq_fid_hook

    class Identity(torch.nn.Module):
        downsample = 4

        def __init__(self, noise: float):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.noise = noise

        def encode(self, x):
            return x, None

        def forward_decoder(self, x):
            return x + self.noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))

    class Embed:  # a fixed evaluator: the mean feature of each motion
        def encode_motions(self, motions):
            return np.stack([np.concatenate([m.mean(0), m.std(0)]) for m in motions]).astype(np.float64)

    rng = np.random.default_rng(0)
    motions = [rng.normal(size=(int(rng.integers(3, 9)) * 4, 3)).astype(np.float32) for _ in range(40)]
    mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    assert vq_fid_hook(Embed(), Identity(0.0), motions, mean=mean, std=std)(1)["fid"] == pytest.approx(0, abs=1e-6)
    assert vq_fid_hook(Embed(), Identity(1.0), motions, mean=mean, std=std)(1)["fid"] > 0.1
