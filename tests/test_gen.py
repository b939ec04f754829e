"""Generation: seeded determinism, lengths, raw features, no global RNG, the CLI's files."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train_momask import train_tiny

from src.gen.generate import MotionGenerator
from src.models.momask import RVQVAE, LengthEstimator, MaskTransformer, ResidualTransformer

DIM = 263


class BagEncoder:
    """Deterministic toy text encoder: a fixed vector per word, summed."""

    dim = 12

    def encode(self, texts):
        out = torch.zeros(len(texts), self.dim)
        for i, t in enumerate(texts):
            for w in t.split():
                g = torch.Generator().manual_seed(sum(map(ord, w)))
                out[i] += torch.randn(self.dim, generator=g)
        return out


def tiny_generator(*, with_len: bool = False, mean=None, std=None, res: bool = True) -> MotionGenerator:
    torch.manual_seed(0)
    vq = RVQVAE(input_width=DIM, nb_code=10, code_dim=8, down_t=2, stride_t=2, width=8, depth=1,
                dilation_growth_rate=3, num_quantizers=3)
    vq.train()
    vq(torch.randn(4, 16, DIM))  # codebooks from data
    vq.eval()
    kw = {"code_dim": 8, "num_tokens": 10, "latent_dim": 16, "ff_size": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.1,
              "clip_dim": BagEncoder.dim}
    mask = MaskTransformer(**kw, cond_drop_prob=0.1)
    rt = ResidualTransformer(**kw, num_quantizers=3, cond_drop_prob=0.2, share_weight=True) if res else None
    le = LengthEstimator(input_size=BagEncoder.dim, output_size=12) if with_len else None
    return MotionGenerator(vq=vq, mask=mask, res=rt, text_encoder=BagEncoder(),
                           mean=np.arange(DIM, dtype=np.float32) if mean is None else mean,
                           std=np.ones(DIM, np.float32) if std is None else std, len_estimator=le,
                           max_motion_length=48, time_steps=4)


def g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_same_seed_same_motions_and_lengths():
    gen = tiny_generator()
    caps, lens = ["a person kicks", "a person walks", "a person waves"], [40, 17, 100]
    a = gen.generate(caps, lens, generator=g(3))
    b = gen.generate(caps, lens, generator=g(3))
    c = gen.generate(caps, lens, generator=g(4))
    assert [x.shape for x in a] == [(40, DIM), (16, DIM), (48, DIM)]  # floor to units, capped at max length
    assert all(x.dtype == np.float32 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_batching_does_not_change_a_seeded_run():
    caps, lens = ["a person kicks"] * 5, [20] * 5
    one = tiny_generator()
    one.batch_size = 2
    x = one.generate(caps, lens, generator=g(0))
    y = one.generate(caps, lens, generator=g(0))
    assert all(np.array_equal(p, q) for p, q in zip(x, y)) and len(x) == 5


def test_global_rng_and_model_modes_untouched():
    gen = tiny_generator()
    gen.mask.train()
    state = torch.get_rng_state()
    gen.generate(["a person jumps"], [24], generator=g(1))
    assert torch.equal(state, torch.get_rng_state())
    assert gen.mask.training and not gen.vq.training


def test_features_are_un_normalised():
    mean = np.linspace(-1, 1, DIM).astype(np.float32)
    gen = tiny_generator(mean=mean, std=np.zeros(DIM, np.float32))  # std 0: every frame is the mean
    (out,) = gen.generate(["a person waves"], [12], generator=g(0))
    assert np.allclose(out, mean[None])


def test_lengths_from_estimator_when_missing():
    with pytest.raises(Exception, match="length estimator"):
        tiny_generator().generate(["a person kicks"], None, generator=g(0))
    gen = tiny_generator(with_len=True)
    out = gen.generate(["a person kicks", "a person walks"], [None, 20], generator=g(0))
    assert len(out[0]) % 4 == 0 and 4 <= len(out[0]) <= 48 and len(out[1]) == 20
    again = gen.generate(["a person kicks", "a person walks"], [None, 20], generator=g(0))
    assert np.array_equal(out[0], again[0])


def test_base_layer_only():
    gen = tiny_generator(res=False)
    (out,) = gen.generate(["a person kicks"], [16], generator=g(0))
    assert out.shape == (16, DIM)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("gen"))


def test_cli_writes_files_and_is_seeded(tiny_runs, tmp_path, capsys):
    from src.gen.__main__ import main

    ckpt, data = tiny_runs
    prompts = tmp_path / "p.txt"
    prompts.write_text("a person kicks#40\na person walks\n")
    base = ["--name", "mask", "--res_name", "res", "--dataset_name", "synth", "--text_path", str(prompts),
            "--repeat_times", "2", "--seed", "5", "--checkpoints_dir", str(ckpt), "--dataset_dir", str(data),
            "--no_animate"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--out", str(tmp_path / "b")]) == 0
    index = json.loads((tmp_path / "a/prompts.json").read_text())
    assert index["vq_name"] == "vq" and index["seed"] == 5 and len(index["items"]) == 4
    for item in index["items"]:
        f = np.load(tmp_path / "a" / item["features"])
        j = np.load(tmp_path / "a" / item["joints"])
        assert f.shape == (item["length"], DIM) and j.shape == (item["length"], 22, 3)
        assert np.array_equal(f, np.load(tmp_path / "b" / item["features"]))
    assert index["items"][0]["length"] == 40 and index["items"][1]["requested_length"] is None
    # an existing index is not overwritten without --force
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "a"), "--force", "--text_prompt", "x"]) == 2  # both prompt flags


def _read_video(path):
    import imageio_ffmpeg

    frames = imageio_ffmpeg.read_frames(str(path))
    meta = next(frames)
    w, h = meta["size"]
    return [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in frames]


def test_cli_animates_by_default_and_writes_bvh(tiny_runs, tmp_path):
    """Upstream's gen_t2m.py writes a video per motion: so does src.gen, titled with the prompt; --bvh adds a BVH
    whose forward kinematics keeps the root path and the bones' directions."""
    from src.gen.__main__ import main
    from src.viz import bvh
    from src.viz.compare import ffmpeg_exe

    if ffmpeg_exe() is None:
        pytest.skip("no ffmpeg from imageio-ffmpeg")
    ckpt, data = tiny_runs
    base = ["--name", "mask", "--res_name", "res", "--dataset_name", "synth", "--text_prompt", "a person kicks",
            "--motion_length", "40", "--checkpoints_dir", str(ckpt), "--dataset_dir", str(data), "--no_progress"]
    assert main([*base, "--out", str(tmp_path / "a"), "--bvh"]) == 0
    item = json.loads((tmp_path / "a/prompts.json").read_text())["items"][0]
    frames = _read_video(tmp_path / "a" / item["video"])
    assert len(frames) == item["length"] == 40
    top = frames[0][:30].astype(int)                      # the title band: dark text on white
    assert (top.sum(-1) < 200).sum() > 50
    joints = np.load(tmp_path / "a" / item["joints"])
    m = bvh.read(tmp_path / "a" / item["bvh"])
    P = m.positions()[:, [m.names.index(n) for n in bvh.T2M_JOINT_NAMES]]
    assert P.shape == joints.shape and np.abs(P[:, 0] - joints[:, 0]).max() < 1e-4
    assert main([*base, "--out", str(tmp_path / "b"), "--no_animate"]) == 0
    assert not (tmp_path / "b" / "animations").exists()
    assert "video" not in json.loads((tmp_path / "b/prompts.json").read_text())["items"][0]


def test_a_found_length_estimator_of_other_text_features_is_skipped_a_named_one_refused(tmp_path, synth_root, caplog):
    """The estimator reads the transformer's text features: one trained on another encoder's (384-d MiniLM against a
    512-d transformer) is not used when merely found (evaluation does not need it), and is an error when named."""
    import logging

    from helpers_methods import MASK, RES, make_dataset, make_runs

    from src.common.errors import HmuError
    from src.gen.generate import load_generator
    from src.models.checkpoint import save_checkpoint
    from src.models.momask import build_len_estimator

    ds = make_dataset(synth_root, tmp_path / "ds")
    ck = make_runs(tmp_path / "ck", ds)  # transformers read 512-d text features
    save_checkpoint(ck / "synth" / "length_estimator" / "model" / "finest.tar", kind="len",
                    model=build_len_estimator(input_size=384), epoch=1)
    kw = {"dataset_name": "synth", "name": MASK, "res_name": RES, "checkpoints_dir": ck, "dataset_dir": ds}
    with caplog.at_level(logging.WARNING, logger="src.gen.generate"):
        gen = load_generator(**kw)
    assert gen.len_estimator is None
    assert "length estimator 'length_estimator' not used" in caplog.text and "384" in caplog.text
    with pytest.raises(HmuError, match="does not fit LengthEstimator"):
        load_generator(**kw, len_name="length_estimator")
    save_checkpoint(ck / "synth" / "length_estimator" / "model" / "finest.tar", kind="len",
                    model=build_len_estimator(input_size=512), epoch=1)
    assert load_generator(**kw).len_estimator is not None  # a fitting one is found and used


def test_cli_sampling_defaults_are_the_librarys():
    """src.gen's flags declare the sampling defaults without importing the library (instant --help): they must be
    src.gen.generate.SAMPLING_DEFAULTS."""
    from src.gen.__main__ import parse
    from src.gen.generate import SAMPLING_DEFAULTS

    assert parse(["--name", "x", "--text_prompt", "a person walks"]).sampling() == SAMPLING_DEFAULTS


def test_gen_t2m_alias_takes_gen_flags_and_run_name_is_ext():
    from src.common.errors import HmuError
    from src.config.command import parse_config
    from src.momask_codes.gen_t2m import GenT2MConfig

    cfg = parse_config(GenT2MConfig, ["--name", "m", "--text_prompt", "kick", "--skip_viz", "--which_epoch", "latest"],
                       prog="x")
    assert cfg.gen.name == "m" and cfg.skip_viz and cfg.gen.ckpt == "latest.tar" and cfg.gen.animate
    assert not cfg.resolved().animate and cfg.resolved().ext == "text2motion"   # MoMask's --ext default
    for argv in (["--ext", "exp1"], ["--run_name", "exp1"], ["--run_name", "exp1", "--ext", "exp1"]):
        assert parse_config(GenT2MConfig, ["--name", "m", "--text_prompt", "k", *argv], prog="x").resolved().ext \
            == "exp1"
    with pytest.raises(HmuError, match="two folders"):
        parse_config(GenT2MConfig, ["--name", "m", "--text_prompt", "k", "--run_name", "a", "--ext", "b"], prog="x")
    with pytest.raises(HmuError, match="plain folder name"):
        parse_config(GenT2MConfig, ["--name", "m", "--text_prompt", "k", "--ext", "../x"], prog="x")
    with pytest.raises(HmuError, match="exactly one of --text_prompt"):
        parse_config(GenT2MConfig, ["--name", "m"], prog="x")


def test_output_folder_is_generation_ext(tmp_path, monkeypatch):
    """One folder for both spellings: generation/<ext>/ under --generation_dir, env HMU_GENERATION, <repo>/generation;
    --out overrides."""
    from src.common.paths import REPO_ROOT
    from src.gen.__main__ import parse

    base = ["--name", "x", "--text_prompt", "a person walks"]
    monkeypatch.delenv("HMU_GENERATION", raising=False)
    assert parse(base).output_folder() == REPO_ROOT / "generation" / "text2motion"
    assert parse([*base, "--ext", "exp1"]).output_folder() == REPO_ROOT / "generation" / "exp1"
    monkeypatch.setenv("HMU_GENERATION", str(tmp_path / "env"))
    assert parse([*base, "--ext", "e"]).output_folder() == tmp_path / "env" / "e"
    assert parse([*base, "--ext", "e", "--generation_dir", str(tmp_path / "g")]).output_folder() == tmp_path / "g/e"
    assert parse([*base, "--out", str(tmp_path / "o")]).output_folder() == tmp_path / "o"


def test_residual_by_default_as_the_evaluation():
    """No --res_name: the dataset's residual run, the one the evaluation defaults to; 'none' (or '') = base only."""
    from src.eval.t2m_unlearn import parse as eval_parse
    from src.gen.__main__ import parse

    for ds, want in (("synth", "tres_tiny"), ("t2m", "tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw")):
        got = parse(["--name", "x", "--text_prompt", "a", "--dataset_name", ds]).residual()
        assert got == want == eval_parse(["--dataset_name", ds]).resolved().res_name
    for off in ("none", "None", ""):
        assert parse(["--name", "x", "--text_prompt", "a", "--res_name", off]).residual() is None
    assert parse(["--name", "x", "--text_prompt", "a", "--res_name", "r2"]).residual() == "r2"


def test_alias_end_to_end_momask_prompt_file_and_ext(tiny_runs, tmp_path):
    """MoMask's command line and prompt file, unchanged through the alias: a ``text#NA`` line (length predicted),
    ``--ext exp1``; files in upstream's layout generation/exp1/joints/<k>/sample<k>_repeat<r>_len<L>.npy, BVHs beside
    the animations with MoMask's joint names."""
    from src.data.bvh import read as read_bvh
    from src.momask_codes.gen_t2m import main

    ckpt, data = tiny_runs
    prompts = tmp_path / "p.txt"
    prompts.write_text("a person performs a standing back kick.#NA\na person walks#40\n")
    gen_root = tmp_path / "generation"
    argv = ["--dataset_name", "synth", "--name", "mask", "--res_name", "res", "--text_path", str(prompts),
            "--ext", "exp1", "--repeat_times", "2", "--checkpoints_dir", str(ckpt), "--dataset_dir", str(data),
            "--generation_dir", str(gen_root), "--skip_viz", "--bvh", "--bvh_names", "momask", "--time_steps", "2"]
    assert main(argv) == 0
    out = gen_root / "exp1"
    assert sorted(p.name for p in gen_root.iterdir()) == ["exp1"]        # one folder, nothing elsewhere
    index = json.loads((out / "prompts.json").read_text())
    assert index["res_name"] == "res" and len(index["items"]) == 4
    na = [it for it in index["items"] if it["prompt_id"] == 0]
    assert all(it["requested_length"] is None and it["length"] % 4 == 0 and it["length"] >= 4 for it in na)
    for it in index["items"]:
        k, r, n = it["prompt_id"], it["repeat"], it["length"]
        stem = f"sample{k}_repeat{r}_len{n}"
        assert it["joints"] == f"joints/{k}/{stem}.npy" and it["features"] == f"features/{k}/{stem}.npy"
        assert np.load(out / it["joints"]).shape == (n, 22, 3)
        assert it["bvh"] == f"animations/{k}/{stem}.bvh"
        b = read_bvh(out / it["bvh"])
        assert b.names[0] == "Hips" and {"LeftUpLeg", "RightToe", "LeftForeArm"} <= set(b.names)
        assert "video" not in it
    assert [it["length"] for it in index["items"] if it["prompt_id"] == 1] == [40, 40]


def test_progress_and_loading_line_come_before_the_slow_parts(tiny_runs, tmp_path, caplog, monkeypatch):
    """A log line names the runs before loading starts, and the generation loop reports prompts x repeats."""
    import logging

    from src.gen.__main__ import main

    ckpt, data = tiny_runs
    seen = []
    import src.common.progress as prog

    real = prog.progress

    counted = []

    def spy(*a, **k):
        seen.append(k)
        bar = real(*a, **k)
        if k.get("desc") == "generating":
            update = bar.update
            bar.update = lambda n=1: (counted.append(n), update(n))[1]
        return bar

    monkeypatch.setattr(prog, "progress", spy)
    with caplog.at_level(logging.INFO):
        assert main(["--name", "mask", "--res_name", "res", "--dataset_name", "synth", "--text_prompt", "a person kicks",
                     "--motion_length", "24", "--repeat_times", "3", "--checkpoints_dir", str(ckpt), "--dataset_dir",
                     str(data), "--out", str(tmp_path / "o"), "--no_animate", "--time_steps", "2"]) == 0
    assert any("loading mask + residual res" in r.getMessage() for r in caplog.records)
    gen = [k for k in seen if k.get("desc") == "generating"]
    assert gen and gen[0]["total"] == 3 and sum(counted) == 3
