"""Method CLIs on tiny random runs: new runs only, sources untouched, only the intended weights change, bad inputs."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.common.errors import HmuError
from helpers_methods import MASK, RES, VQ, make_dataset, make_runs, tree_hashes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env(synth_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("methods")
    data = make_dataset(synth_root, base / "dataset")
    ck = make_runs(base / "checkpoints", data)
    return {"ck": ck, "data": data, "flags": ["--checkpoints_dir", str(ck), "--dataset_dir", str(data)]}


def _load(path):
    from src.common.io import torch_load

    return torch_load(path)


def _sources(env):
    return {n: tree_hashes(env["ck"] / "synth" / n) for n in (VQ, MASK, RES)}


def test_help_is_instant():
    for mod in ("lcr", "uce", "rece", "finetune", "retrain", "pipeline"):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", f"src.methods.{mod}", "--help"], cwd=REPO, capture_output=True,
                           text=True, timeout=60, check=False)
        assert r.returncode == 0 and "usage" in r.stdout, (mod, r.stderr)
        assert time.perf_counter() - t < 3.0, mod
        assert "torch" not in r.stderr


def test_lcr_cli_changes_only_selected_rows(env):
    import torch

    from src.methods.lcr.__main__ import main

    before = _sources(env)
    assert main(["--dataset_name", "synth", "--concept", "violence", "--vq_name", VQ, "--name", "lcr_a",
                 "--select", "upstream", "--code_prune", "3", "--no_progress", *env["flags"]]) == 0
    assert _sources(env) == before  # sources read only
    src = _load(env["ck"] / "synth" / VQ / "model" / "net_best_fid.tar")["vq_model"]
    out_dir = env["ck"] / "synth" / "lcr_a"
    new = _load(out_dir / "model" / "net_best_fid.tar")
    sel = new["hmu_meta"]["selected_codes"]["0"]
    assert new["removed_codes"][0] == sel and 3 <= len(sel) <= 6
    assert new["hmu_meta"]["method"] == "lcr"
    assert new["hmu_meta"]["source_sha256"] == before[VQ]["model/net_best_fid.tar"]
    for k, v in src.items():
        if k == "quantizer.layers.0.codebook":
            changed = (new["vq_model"][k] != v).any(dim=1).nonzero().flatten().tolist()
            assert changed == sorted(sel)
        else:
            assert torch.equal(new["vq_model"][k], v), k
    assert (out_dir / "meta" / "mean.npy").is_file() and (out_dir / "opt.txt").read_text().count("name: lcr_a") == 1
    from src.common.paths import Paths
    from src.models.checkpoint import load_vq

    load_vq(Paths.default(checkpoints_dir=env["ck"]), "synth", "lcr_a")  # strict loader accepts the new run


@pytest.mark.parametrize("method", ["uce", "rece"])
def test_text_edit_cli_changes_only_cond_emb(env, method):
    import torch

    from src.methods.rece.__main__ import main as main_rece
    from src.methods.uce.__main__ import main as main_uce

    before = _sources(env)
    fn = main_uce if method == "uce" else main_rece
    out = f"{method}_a"
    assert fn(["--dataset_name", "synth", "--concept", "violence", "--trans_name", MASK, "--res_name", RES,
               "--name", out, *env["flags"]]) == 0
    assert _sources(env) == before
    for src_name, new_name, key in ((MASK, out, "t2m_transformer"), (RES, f"{out}_res", "res_transformer")):
        src = _load(env["ck"] / "synth" / src_name / "model" / "net_best_fid.tar")[key]
        new = _load(env["ck"] / "synth" / new_name / "model" / "net_best_fid.tar")
        assert new["hmu_meta"]["method"] == method
        for k, v in src.items():
            if k == "cond_emb.weight":
                assert not torch.allclose(new[key][k], v), new_name
            else:
                assert torch.equal(new[key][k], v), (new_name, k)


def _fails(fn, argv, needle, env, out_name):
    rc = fn(argv)
    assert rc == 2
    assert not (env["ck"] / "synth" / out_name).exists()
    assert not list((env["ck"] / "synth").glob(f".{out_name}.partial*"))


def test_bad_inputs_one_line_no_output(env, capsys, tmp_path):
    from src.methods.lcr.__main__ import main as lcr
    from src.methods.uce.__main__ import main as main_uce

    base = ["--dataset_name", "synth", "--vq_name", VQ, "--no_progress", *env["flags"]]
    cases = [
        (lcr, [*base, "--concept", "nonsense", "--name", "bad1"], "unknown concept", "bad1"),
        (lcr, [*base, "--concept", "violence", "--name", "bad2", "--code_prune", "999"], "codebook", "bad2"),
        (lcr, [*base, "--concept", "violence", "--name", "lcr_a"], "already exists", "lcr_a_never"),
    ]
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cases.append((lcr, [*base, "--concept", "violence", "--name", "bad3", "--forget_split", str(empty)], "empty",
                  "bad3"))
    cases.append((main_uce, ["--dataset_name", "synth", "--concept", "violence", "--trans_name", VQ, "--res_name",
                             "none", "--name", "bad4", *env["flags"]], "", "bad4"))
    if not (env["ck"] / "synth" / "lcr_a").exists():  # the "already exists" case needs a run of that name
        assert lcr([*base, "--concept", "violence", "--name", "lcr_a", "--select", "upstream", "--code_prune", "3"]) == 0
    for fn, argv, needle, out in cases:
        capsys.readouterr()
        _fails(fn, argv, needle, env, out)
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and len(err.splitlines()) == 1, err
        assert needle in err, (needle, err)


def test_model_without_cond_emb():
    from torch import nn

    from src.common.errors import HmuError
    from src.methods.edit_targets import find_cond_emb

    with pytest.raises(HmuError, match="cond_emb"):
        find_cond_emb(nn.Sequential(nn.Linear(3, 3)))


@pytest.mark.slow
def test_finetune_writes_new_run_and_resumes(env):
    import torch

    from src.methods.finetune import main

    before = _sources(env)
    argv = ["--dataset_name", "synth", "--concept", "violence", "--trans_name", MASK, "--res_name", RES,
            "--name", "ft_a", "--max_epoch", "1", "--batch_size", "32", "--no_progress", *env["flags"]]
    assert main(argv) == 0
    assert _sources(env) == before
    out = env["ck"] / "synth" / "ft_a" / "model"
    assert main(argv) == 2  # exists, neither --is_continue nor --force
    argv[argv.index("--max_epoch") + 1] = "2"
    assert main([*argv, "--is_continue"]) == 0
    latest = _load(out / "latest.tar")
    assert latest["ep"] == 2
    best = _load(out / "net_best_fid.tar")
    assert best["hmu_meta"]["method"] == "finetune" and best["hmu_meta"]["wall_time_s"] > 0
    src = _load(env["ck"] / "synth" / MASK / "model" / "net_best_fid.tar")["t2m_transformer"]
    assert any(not torch.equal(best["t2m_transformer"][k], v) for k, v in src.items())


def test_pipeline_plan_and_retrain_argv():
    from src.methods.pipeline import parse_pipeline, plan
    from src.config.command import parse_config
    from src.methods.retrain import RetrainConfig
    from src.methods.retrain import trainer_argv

    args, rest = parse_pipeline(["lcr", "violence", "synth", "--vq_name", "v", "--trans_name", "m",
                                                  "--res_name", "r", "--code_prune", "8"])
    steps = plan(args, rest)
    assert [s[0] for s in steps] == ["src.methods.lcr", "src.eval.t2m_unlearn"]
    assert "--code_prune" in steps[0][1] and "--code_prune" not in steps[1][1]
    ev = steps[1][1]
    # upstream's lcr.sh name, lcr<code_prune>_<dataset>_<concept> (the README evaluates it by that name)
    assert ev[ev.index("--vq_name") + 1] == "lcr8_synth_violence" and ev[ev.index("--name") + 1] == "m"
    args, rest = parse_pipeline(["rece_uce", "violence", "synth", "--no_eval"])
    assert [s[0] for s in plan(args, rest)] == ["src.methods.uce", "src.methods.rece"]
    a = parse_config(RetrainConfig, ["--name", "dr", "--", "--max_epoch", "2"], prog="retrain")
    argv = trainer_argv("mask", a, split="kw_splits/train-wo-violence", val_split="kw_splits/val-wo-violence",
                        preset="tiny", vq_name="dr_vq")
    assert argv[argv.index("--split") + 1] == "kw_splits/train-wo-violence"
    assert argv[argv.index("--vq_name") + 1] == "dr_vq" and argv[-2:] == ["--max_epoch", "2"]


def test_finetune_presets_fill_only_unset_flags():
    """budget = the quickstart's short run; upstream = both parts, 500 epochs, batch 64, the resumed lr 2e-5."""
    from src.config.command import parse_config
    from src.methods.finetune import FinetuneConfig, with_preset

    def cfg(*argv):
        return with_preset(parse_config(FinetuneConfig, ["--name", "x", *argv], prog="finetune"))

    a = cfg()
    assert (a.train_parts, a.max_epoch, a.lr, a.warm_up_iter, a.batch_size) == ("mask", 5, 1e-4, 0, None)
    a = cfg("--preset", "upstream")
    # batch_ft_t2m.sh: --is_continue --max_epoch 1000 from the released epoch 500, batch 64, both transformers;
    # lr 2e-4 x gamma 0.1 (resumed past the 50,000-iteration milestone), warm-up (2,000 iterations) long over
    assert (a.train_parts, a.max_epoch, a.lr, a.warm_up_iter, a.batch_size) == ("mask,res", 500, 2e-5, 0, 64)
    a = cfg("--preset", "upstream", "--max_epoch", "3", "--train_parts", "mask")
    assert (a.train_parts, a.max_epoch, a.lr) == ("mask", 3, 2e-5)


def test_pipeline_evaluates_the_residual_the_preset_trains():
    from src.methods.pipeline import parse_pipeline, plan

    for extra, res in (([], "r"), (["--preset", "upstream"], "ft_res"), (["--train_parts", "mask,res"], "ft_res"),
                       (["--preset", "upstream", "--train_parts", "mask"], "r")):
        args, rest = parse_pipeline(["finetune", "violence", "synth", "--vq_name", "v",
                                                      "--trans_name", "m", "--res_name", "r", "--out_name", "ft",
                                                      *extra])
        ev = plan(args, rest)[1][1]
        assert ev[ev.index("--res_name") + 1] == res, extra


def test_lcr_combined_is_the_union_of_per_sub_concept_selections(env, tmp_path):
    """--just_select_codes per sub-concept, --censor_codes_files of the files, and --combined agree on the union."""
    from src.data.split import main as split_main
    from src.methods.lcr.__main__ import _read_block_yaml_lists, main, union_codes

    for c in ("kick", "punch_jab_box_hit_beat"):
        if not (env["data"] / "synth" / "kw_splits" / f"train_val-w-{c}.txt").is_file():
            assert split_main(["synth", c, "--dataset_dir", str(env["data"])]) == 0
    base = ["--dataset_name", "synth", "--vq_name", VQ, "--select", "upstream", "--no_progress", *env["flags"]]
    files = []
    for c, k in (("kick", "4"), ("punch_jab_box_hit_beat", "2")):
        f = tmp_path / f"{c}.json"
        assert main([*base, "--concept", c, "--code_prune", k, "--name", f"sel_{c}", "--just_select_codes",
                     "--codes_out", str(f)]) == 0
        files.append(f)
        assert not (env["ck"] / "synth" / f"sel_{c}").exists()  # no run written
    import json

    per = [json.loads(f.read_text()) for f in files]
    union = sorted(set(per[0][0]) | set(per[1][0]))
    assert per[0][0] != per[1][0]  # the two selections differ (on synth's data one may hold the other)
    assert main([*base, "--concept", "violence", "--name", "lcr_files", "--censor_codes_files", *map(str, files)]) == 0
    assert _load(env["ck"] / "synth" / "lcr_files" / "model" / "net_best_fid.tar")["removed_codes"][0] == union
    assert main([*base, "--concept", "violence", "--name", "lcr_comb", "--combined",
                 "--sub_concepts", "kick:4,punch_jab_box_hit_beat:2"]) == 0
    assert _load(env["ck"] / "synth" / "lcr_comb" / "model" / "net_best_fid.tar")["removed_codes"][0] == union
    # upstream's files are yaml.safe_dump(codes, default_flow_style=False)
    assert _read_block_yaml_lists("- - 3\n  - 17\n- - 5\n", Path("x.yaml")) == [[3, 17], [5]]
    assert union_codes([[[3, 1], [9]], [[1, 2]]], [0, 1]) == {0: [1, 2, 3], 1: [9]}


def test_pipeline_code_prune_sweep_and_combined():
    from src.common.errors import HmuError
    from src.methods.pipeline import parse_pipeline, plan

    args, rest = parse_pipeline(["lcr", "violence", "synth", "--vq_name", "v", "--trans_name", "m",
                                                  "--res_name", "r", "--code_prune_sweep", "32", "8",
                                                  "--select", "upstream"])
    steps = plan(args, rest)
    assert [s[0] for s in steps] == ["src.methods.lcr"] * 2 + ["src.eval.t2m_unlearn"] * 2
    for (_, a), k in zip(steps[:2], ("32", "8")):
        assert a[a.index("--code_prune") + 1] == k and a[a.index("--name") + 1] == f"lcr{k}_synth_violence"
        assert "upstream" in a
    for (_, e), k in zip(steps[2:], ("32", "8")):
        assert e[e.index("--vq_name") + 1] == f"lcr{k}_synth_violence" and e[e.index("--method") + 1] == f"lcr{k}"
    args, rest = parse_pipeline(["lcr", "violence", "synth", "--combined"])
    steps = plan(args, rest)
    assert "--combined" in steps[0][1] and steps[0][1][steps[0][1].index("--name") + 1] == "lcr_combined_violence"
    args, rest = parse_pipeline(["lcr", "violence", "synth", "--code_prune_sweep", "8",
                                                  "--code_prune", "4"])
    with pytest.raises(HmuError, match="sweep"):
        plan(args, rest)


def test_pipeline_checks_every_method_flag_before_any_step(capsys):
    """A method flag is parsed into the method's config while planning: a typo or a bad value stops the pipeline
    before the first step (it once surfaced only when that step started, after earlier steps had run)."""
    from src.methods.pipeline import parse_pipeline, plan

    for bad in (["--select", "nonsense"], ["--code_prunee", "3"], ["--alpha", "nan"]):
        cfg, rest = parse_pipeline(["lcr", "violence", "synth", *bad])
        with pytest.raises((SystemExit, HmuError)):
            plan(cfg, rest)
    cfg, rest = parse_pipeline(["finetune", "violence", "synth", "--max_epoch", "0"])
    with pytest.raises(HmuError, match="--max_epoch"):
        plan(cfg, rest)
    # what the method step gets is its config written back: the method's own flags survive, defaults are left out
    cfg, rest = parse_pipeline(["lcr", "violence", "synth", "--select", "upstream", "--alpha", "0.5"])
    argv = plan(cfg, rest)[0][1]
    assert argv[argv.index("--select") + 1] == "upstream" and argv[argv.index("--alpha") + 1] == "0.5"
    assert "--batch_size" not in argv


def test_lcr_scripts_pass_through(tmp_path):
    text = (REPO / "scripts" / "eval" / "lcr_combined.sh").read_text()
    assert 'python -m src.methods.pipeline lcr "$@" --combined' in text
    assert "--code_prune_sweep" in (REPO / "scripts" / "eval" / "lcr.sh").read_text()
