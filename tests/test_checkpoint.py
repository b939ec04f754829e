"""Checkpoint files: upstream format, strict loads with one-line errors, atomic saves, no fall-back."""
from __future__ import annotations

import shutil

import pytest
import torch
from test_momask_util import momask_root, tiny_configs, tiny_runs

from src.common.errors import HmuError
from src.common.paths import Paths
from src.config import VQConfig
from src.models import checkpoint as C
from src.models.momask import RVQVAE, LengthEstimator


def tiny_vq():
    return RVQVAE(input_width=5, nb_code=6, code_dim=4, down_t=1, stride_t=2, width=8, depth=1,
                  dilation_growth_rate=2, num_quantizers=2)


def test_save_load_round_trip_in_upstream_format(tmp_path):
    torch.manual_seed(0)
    model = tiny_vq()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[5], gamma=0.1)
    meta = C.make_hmu_meta(VQConfig(name="tiny", nb_code=6))
    best = C.save_checkpoint(tmp_path / "net_best_fid.tar", kind="vq", model=model, epoch=3, hmu_meta=meta)
    latest = C.save_checkpoint(tmp_path / "latest.tar", kind="vq", model=model, epoch=3, optimizer=opt,
                               scheduler=sched, total_it=42)
    raw = torch.load(best, weights_only=True)
    assert set(raw) == {"vq_model", "ep", "hmu_meta"} and raw["hmu_meta"]["config"]["nb_code"] == "6"
    assert set(torch.load(latest, weights_only=True)) == {"vq_model", "opt_vq_model", "scheduler", "ep", "total_it"}
    other = tiny_vq()
    C.load_weights(other, best, "vq")
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k
    opt2 = torch.optim.AdamW(other.parameters(), lr=1e-3)
    sched2 = torch.optim.lr_scheduler.MultiStepLR(opt2, milestones=[5])
    assert C.resume_training(latest, kind="vq", model=other, optimizer=opt2, scheduler=sched2) == (3, 42)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    with pytest.raises(HmuError, match="already exists"):
        C.save_checkpoint(best, kind="vq", model=model, epoch=4, force=False)


def test_edit_meta_records_method_args_and_source_hash(tmp_path):
    src = C.save_checkpoint(tmp_path / "src.tar", kind="len", model=LengthEstimator(input_size=4, output_size=3),
                            epoch=0)
    meta = C.make_hmu_meta({"name": "x"}, method="uce", args={"lamb": 0.5, "concepts": ["kick"]}, source=src)
    assert meta["method"] == "uce" and meta["args"]["lamb"] == 0.5 and len(meta["source_sha256"]) == 64
    out = C.save_checkpoint(tmp_path / "edited.tar", kind="len", model=LengthEstimator(input_size=4, output_size=3),
                            epoch=0, hmu_meta=meta)
    assert torch.load(out, weights_only=True)["hmu_meta"]["source_sha256"] == meta["source_sha256"]
    assert set(torch.load(src, weights_only=True)) == {"estimator", "epoch", "niter"}


def _saved(tmp_path, sd, key="vq_model", name="net_best_fid.tar"):
    p = tmp_path / name
    torch.save({key: sd, "ep": 0}, p)
    return p


def test_mismatches_are_reported_not_ignored(tmp_path):
    model = tiny_vq()
    sd = model.state_dict()
    wrong = dict(sd)
    wrong["encoder.model.0.weight"] = torch.zeros(3, 3, 3)
    with pytest.raises(HmuError) as e:
        C.load_weights(tiny_vq(), _saved(tmp_path, wrong), "vq")
    msg = str(e.value)
    assert "\n" not in msg and "net_best_fid.tar" in msg and "encoder.model.0.weight" in msg and "shape" in msg
    missing = {k: v for k, v in sd.items() if k != "quantizer.layers.1.codebook"}
    with pytest.raises(HmuError, match=r"1 missing keys \(quantizer.layers.1.codebook\)"):
        C.load_weights(tiny_vq(), _saved(tmp_path, missing), "vq")
    extra = dict(sd, **{"decoder.extra.weight": torch.zeros(1)})
    with pytest.raises(HmuError, match=r"1 unexpected keys \(decoder.extra.weight\)"):
        C.load_weights(tiny_vq(), _saved(tmp_path, extra), "vq")


def test_only_clip_model_keys_are_dropped(tmp_path):
    sd = tiny_vq().state_dict()
    with_clip = dict(sd, **{"clip_model.token_embedding.weight": torch.zeros(2), "clip_model.ln.bias": torch.zeros(1)})
    C.load_weights(tiny_vq(), _saved(tmp_path, with_clip), "vq")
    for bad in ("clip_modelx.weight", "net.clip_model.weight", "clip.weight"):
        with pytest.raises(HmuError, match="unexpected"):
            C.load_weights(tiny_vq(), _saved(tmp_path, dict(sd, **{bad: torch.zeros(1)})), "vq")


def test_legacy_keys_missing_entry_and_corrupt_files(tmp_path):
    sd = tiny_vq().state_dict()
    C.load_weights(tiny_vq(), _saved(tmp_path, sd, key="net"), "vq")
    with pytest.raises(HmuError, match="no model entry"):
        C.load_weights(tiny_vq(), _saved(tmp_path, sd, key="model"), "vq")
    bad = tmp_path / "corrupt.tar"
    good = _saved(tmp_path, sd)
    bad.write_bytes(good.read_bytes()[:100])
    with pytest.raises(HmuError, match="corrupt.tar"):
        C.load_weights(tiny_vq(), bad, "vq")
    with pytest.raises(HmuError, match="not found"):
        C.load_weights(tiny_vq(), tmp_path / "absent.tar", "vq")


def test_no_fall_back_to_another_file(fixtures, tmp_path):
    root = momask_root(fixtures)
    run = tiny_runs(root)["vq"]
    ckpts = tmp_path / "checkpoints"
    dst = ckpts / run.parent.name / run.name
    shutil.copytree(run, dst)
    (dst / "model" / "net_best_fid.tar").rename(dst / "model" / "base.tar")
    paths = Paths.default(checkpoints_dir=ckpts)
    width = tiny_configs(root)["vq"]["input_width"]
    with pytest.raises(HmuError, match="net_best_fid.tar"):
        C.load_vq(paths, run.parent.name, run.name, input_width=width)
    _model, cfg, d = C.load_vq(paths, run.parent.name, run.name, ckpt="base.tar", input_width=width)
    assert d == dst and cfg.name == run.name
    mean, std = C.load_mean_std(d)
    assert mean.shape == std.shape == (width,)


def test_upstream_latest_resumes_with_optimizer(fixtures):
    root = momask_root(fixtures)
    run = tiny_runs(root)["vq"]
    paths = Paths.default(checkpoints_dir=run.parent.parent)
    model, cfg, _ = C.load_vq(paths, run.parent.name, run.name, ckpt="latest.tar",
                              input_width=tiny_configs(root)["vq"]["input_width"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg.milestones, gamma=cfg.gamma)
    ep, it = C.resume_training(run / "model" / "latest.tar", kind="vq", model=model, optimizer=opt, scheduler=sched)
    assert (ep, it) == (0, 0)
    wrong_opt = torch.optim.AdamW(list(model.parameters())[:3])
    with pytest.raises(HmuError, match="optimizer state"):
        C.resume_training(run / "model" / "latest.tar", kind="vq", model=model, optimizer=wrong_opt)


def test_run_dirs_and_aliases(tmp_path):
    paths = Paths.default(checkpoints_dir=tmp_path)
    d = C.init_run_dir(paths, "HumanML3D", "mine", VQConfig(name="mine"))
    assert (d / "opt.txt").is_file() and (d / "model").is_dir() and d.parent.parent == tmp_path
    with pytest.raises(HmuError, match="already exists"):
        C.init_run_dir(paths, "HumanML3D", "mine", VQConfig(name="mine"))
    assert C.find_run_dir(paths, "t2m", "mine") == d
    up = tmp_path / "t2m" / "released"
    up.mkdir(parents=True)
    assert C.find_run_dir(paths, "HumanML3D", "released") == up
    with pytest.raises(HmuError, match="not found"):
        C.find_run_dir(paths, "HumanML3D", "nothing")


def test_meta_device_model_loads_with_assign(tmp_path):
    p = _saved(tmp_path, tiny_vq().state_dict())
    with torch.device("meta"):
        m = tiny_vq()
    C.load_weights(m, p, "vq")
    assert not any(t.is_meta for t in m.state_dict().values())
