"""--wandb: every trainer, the evaluation and the report log to wandb (offline without credentials) and to JSONL; a
missing wandb package fails first, in one line; the flag passes through the pipeline scripts and the quickstart.

Tests that need wandb skip when it is absent (it is in requirements-dev.txt); they run it with WANDB_MODE=offline and
read the keys back from the run folder (tests/wandb_offline.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from tests.test_train_momask import TINY_TRANS, TINY_VQ, make_tiny_dataset

REPO = Path(__file__).resolve().parents[1]


def _has_wandb() -> bool:
    try:
        import wandb  # noqa: F401
    except ImportError:
        return False
    return True


needs_wandb = pytest.mark.skipif(not _has_wandb(),
                                 reason="wandb is not installed (pip install -r requirements-dev.txt)")


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    """No credentials, no WANDB_MODE: what a new user has. HOME moves so ~/.netrc and wandb's settings are not read."""
    for k in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR", "NETRC", "WANDB_SILENT"):
        monkeypatch.setenv(k, "")  # recorded, so what wandb sets in this process is undone after the test
        monkeypatch.delenv(k)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return {"HOME": str(home), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def _run(*args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("HMU_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=e, capture_output=True, text=True,
                          timeout=timeout, check=False)


# --------------------------------------------------------------------------------------------- offline by default
def test_offline_is_the_default_without_credentials(offline_env, monkeypatch, tmp_path):
    from src.common.logging import default_wandb_mode

    assert default_wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert default_wandb_mode() == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    (tmp_path / "home" / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password p\n")
    assert default_wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the user's choice wins
    assert default_wandb_mode() == "disabled"


# ------------------------------------------------------------------------------------------ without the package
@pytest.fixture
def no_wandb(tmp_path):
    """PYTHONPATH entry whose ``wandb`` package fails to import, as when it is not installed."""
    d = tmp_path / "block"
    (d / "wandb").mkdir(parents=True)
    (d / "wandb" / "__init__.py").write_text("raise ImportError('No module named wandb')\n")
    return {"PYTHONPATH": f"{REPO}{os.pathsep}{d}"}


def _one_line_wandb_error(r: subprocess.CompletedProcess) -> None:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and "pip install wandb" in lines[0], r.stderr[-2000:]


@pytest.mark.parametrize("module,argv", [
    ("src.train.vq", ["--name", "v"]),
    ("src.train.mask", ["--name", "m", "--vq_name", "v"]),
    ("src.train.residual", ["--name", "r", "--vq_name", "v"]),
    ("src.train.length", ["--name", "l"]),
    ("src.train.evaluator", []),
    ("src.train.classifier", []),
    ("src.train.tmr", ["--name", "t"]),
    ("src.methods.finetune", ["--name", "ft"]),
    ("src.methods.retrain", ["--name", "dr"]),
    ("src.eval.t2m_unlearn", []),
    ("src.methods.pipeline", ["lcr", "violence", "synth"]),
    ("src.report", ["."]),
    ("src.quickstart", ["--fast"]),
])
def test_missing_wandb_fails_in_one_line_before_any_work(module, argv, no_wandb, tmp_path):
    roots = ["--checkpoints_dir", str(tmp_path / "ck"), "--dataset_dir", str(tmp_path / "ds")]
    if module in ("src.report", "src.methods.pipeline"):
        roots = roots if module == "src.methods.pipeline" else []
    extra = ["--results_dir", str(tmp_path / "res")] if module in ("src.quickstart", "src.eval.t2m_unlearn") else []
    r = _run(module, *argv, *roots, *extra, "--wandb", env=no_wandb, timeout=120)
    _one_line_wandb_error(r)
    assert not (tmp_path / "ck").exists() and not (tmp_path / "ds").exists() and not (tmp_path / "res").exists()


def test_eval_script_accepts_wandb(no_wandb, tmp_path):
    """``bash scripts/eval/lcr.sh violence synth --wandb`` once failed with "unrecognized arguments"."""
    env = {**no_wandb, "HMU_VENV": str(Path(sys.executable).parents[1])}
    e = dict(os.environ)
    e.update(env)
    r = subprocess.run(["bash", "scripts/eval/lcr.sh", "violence", "synth", "--wandb", "--checkpoints_dir",
                        str(tmp_path / "ck")], cwd=REPO, env=e, capture_output=True, text=True, timeout=300,
                       check=False)
    assert "unrecognized arguments" not in r.stderr
    _one_line_wandb_error(r)


# ----------------------------------------------------------------------------------------------- pass-through
def _wandb_flags(module: str, argv) -> dict:
    """The wandb flags a command reads from ``argv`` (its typed config, or its argparse parser); argv must parse."""
    import importlib

    mod = importlib.import_module(module)
    if hasattr(mod, "CONFIG"):
        from src.config.command import flat_dict, parse_config

        values = flat_dict(parse_config(mod.CONFIG, list(argv), prog=module))
    else:
        values = vars(mod.build_parser().parse_args(argv))
    return {k: v for k, v in values.items() if k.startswith("wandb")}


def test_pipeline_passes_wandb_to_training_and_evaluation():
    from src.methods.pipeline import parse_pipeline, plan

    def steps(method: str):
        args, rest = parse_pipeline([method, "violence", "synth", "--wandb", "--wandb_project", "p"])
        return plan(args, rest)

    for method in ("lcr", "rece_uce", "finetune", "retrain"):
        for module, argv in steps(method):
            wants = module in ("src.eval.t2m_unlearn", "src.methods.finetune", "src.methods.retrain")
            assert ("--wandb" in argv) == wants, (method, module)
            if wants:
                assert argv[argv.index("--wandb_project") + 1] == "p"
                import importlib

                from src.methods.pipeline import _entry

                _wandb_flags(_entry(module), argv)  # accepted as is


def test_quickstart_passes_wandb_to_every_stage_that_logs():
    import importlib

    from src.quickstart import FAST, FULL, plan

    wb = ["--wandb", "--wandb_project", "hmu", "--wandb_group", "qs"]
    for settings in (FULL, FAST):
        stages = plan(run="qs", settings=settings, seed=0, gpu=["--gpu_id", "-1"], ckpt=Path("/ck"), data=Path("/ds"),
                      results=Path("/res"), wandb=wb)
        for st in stages:
            logs = st.module.startswith(("src.train", "src.eval", "src.report")) or st.module in (
                "src.methods.finetune", "src.methods.retrain")
            assert ("--wandb" in st.argv) == logs, st.name
            if logs:
                wandb = _wandb_flags(st.module, st.argv)
                assert wandb["wandb"] and wandb["wandb_group"] == "qs", st.name
        no = plan(run="qs", settings=settings, seed=0, gpu=[], ckpt=Path("/ck"), data=Path("/ds"), results=Path("/r"))
        assert not any("--wandb" in st.argv for st in no)


# ----------------------------------------------------------------------------------------------- logged keys
@needs_wandb
def test_metric_logger_jsonl_and_offline_run(offline_env, tmp_path, monkeypatch):
    from src.common.logging import MetricLogger, WandbOptions
    from tests.wandb_offline import logged_keys

    monkeypatch.setenv("WANDB_MODE", "")  # set but empty counts as unset (wandb itself rejects "")
    logger = MetricLogger(tmp_path / "run" / "train_log.jsonl", wandb=WandbOptions(enabled=True), name="t",
                          config={"lr": 0.1})
    for i in range(1, 4):
        logger.log(step=i, loss=1.0 / i, note="text goes to the JSONL only")
    logger.summary(best=0.25)
    where = logger.finish()
    assert os.environ["WANDB_MODE"] == "offline" and "wandb sync" in where
    lines = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [x.get("loss") for x in lines[:3]] == [1.0, 0.5, 1.0 / 3] and lines[3]["event"] == "summary"
    keys = logged_keys(tmp_path / "run")
    assert "loss" in keys["history"] and "note" not in keys["history"] and "best" not in keys["history"]
    assert "best" in keys["summary"] and "lr" in keys["config"]


@needs_wandb
@pytest.mark.slow
def test_every_trainer_logs_its_keys_offline(offline_env, tmp_path):
    """vq, mask, residual, length and fine-tuning with --wandb: each run folder holds an offline run whose history
    has the step losses and the epoch's validation, as the JSONL log does."""
    from tests.wandb_offline import logged_keys

    data = make_tiny_dataset(tmp_path / "dataset")
    ck = tmp_path / "ck"
    loc = ["--checkpoints_dir", str(ck), "--dataset_dir", str(data), "--no_progress", "--wandb", "--log_every", "1"]
    runs = {
        "vq": ["src.train.vq", "--name", "vq", *TINY_VQ],
        "mask": ["src.train.mask", "--name", "mask", "--vq_name", "vq", *TINY_TRANS],
        "res": ["src.train.residual", "--name", "res", "--vq_name", "vq", *TINY_TRANS],
        "len": ["src.train.length", "--name", "len", "--batch_size", "8", "--max_epoch", "1"],
    }
    for name, argv in runs.items():
        r = _run(*argv, *loc, env=offline_env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "wandb sync" in r.stdout, name
    r = _run("src.methods.finetune", "--name", "ft", "--trans_name", "mask", "--res_name", "res", "--split", "train",
             "--max_epoch", "1", "--batch_size", "8", *loc, env=offline_env)
    assert r.returncode == 0, r.stderr[-3000:]
    expect = {
        "vq": {"loss", "loss_rec", "loss_vel", "loss_commit", "perplexity", "lr", "epoch", "train_loss",
               "val_mpjpe_mm", "test_mpjpe_mm"},
        "mask": {"loss", "acc", "lr", "epoch", "train_loss", "train_acc", "val_loss", "val_acc"},
        "res": {"loss", "acc", "lr", "epoch", "train_loss", "val_loss", "val_acc"},
        "len": {"loss", "acc", "epoch", "train_loss", "val_loss", "val_acc", "val_mae_frames"},
        "ft": {"loss", "acc", "lr", "epoch", "train_loss", "train_acc"},
    }
    report = {}
    for name, keys in expect.items():
        got = logged_keys(ck / "synth" / name)
        lines = (ck / "synth" / name / "train_log.jsonl").read_text().splitlines()
        jsonl = set().union(*(json.loads(x) for x in lines))
        assert keys <= got["history"], (name, sorted(keys - got["history"]))
        assert keys <= jsonl, (name, sorted(keys - jsonl))
        assert "best_by" in got["summary"] or name == "len", name
        report[name] = sorted(k for k in got["history"] if not k.startswith("_"))
    print("wandb keys:", json.dumps(report))


def _record() -> dict:
    def s(values, n=3):
        return {"values": values, "mean": sum(values) / len(values), "ci95": 0.1, "bootstrap": [min(values),
                max(values)], "n": n}

    return {"run": "r", "seed": 0, "config": {"x": 1}, "model": {"method": "lcr"},
            "sets": {"forget": {"metrics": {"FID": s([3.0, 5.0]), "leakage": s([0.0, 0.5])},
                                "reference": {"Diversity": s([1.0, 1.2])}},
                     "retain": {"metrics": {"FID": s([1.0, 2.0])}}}}


@needs_wandb
def test_evaluation_logs_each_repeat_and_a_summary_table(offline_env, tmp_path):
    from src.common.logging import WandbOptions
    from src.eval.results import log_wandb, per_repeat, summary_rows
    from tests.wandb_offline import logged_keys

    rec = _record()
    assert per_repeat(rec) == [{"forget/FID": 3.0, "forget/leakage": 0.0, "forget/reference/Diversity": 1.0,
                                "retain/FID": 1.0},
                               {"forget/FID": 5.0, "forget/leakage": 0.5, "forget/reference/Diversity": 1.2,
                                "retain/FID": 2.0}]
    assert ["forget", "FID", 4.0, 0.1, 3.0, 5.0, 3] in summary_rows(rec)
    where = log_wandb(rec, wandb=WandbOptions(enabled=True), run_name="r", out_dir=tmp_path / "res" / "r")
    assert "offline" in where
    keys = logged_keys(tmp_path / "res" / "r")
    assert {"repeat", "forget/FID", "forget/leakage", "forget/reference/Diversity", "retain/FID",
            "summary_table"} <= keys["history"]
    assert {"forget/FID/mean", "forget/FID/ci95", "retain/FID/mean"} <= keys["summary"]
    assert not list((tmp_path / "res").rglob("**/files/metrics.json"))  # the report would read it as a method


@needs_wandb
def test_report_logs_table_plots_and_videos(offline_env, tmp_path):
    import imageio.v2 as imageio
    import numpy as np

    from src.common.logging import WandbOptions
    from src.report.to_wandb import log_report
    from tests.wandb_offline import logged_keys

    run = tmp_path / "results" / "qs"
    (run / "lcr").mkdir(parents=True)
    (run / "lcr" / "metrics.json").write_text(json.dumps(_record()))
    video = run / "report" / "videos" / "00_a_man_kicks.gif"
    video.parent.mkdir(parents=True)
    imageio.mimsave(video, [np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 255, np.uint8)])
    plot = run / "report" / "metric_bars.png"
    imageio.imwrite(plot, np.zeros((8, 8, 3), np.uint8))
    log_report({"methods": ["lcr"], "plots": [plot], "videos": [video]}, run_dir=run, wandb=WandbOptions(enabled=True))
    keys = logged_keys(run / "wandb")
    assert {"summary_table", "videos/00_a_man_kicks", "plots/metric_bars"} <= keys["history"]


def test_wandb_options_from_flags_and_argv():
    from src.common.logging import WandbOptions

    w = WandbOptions.from_flags(Namespace(wandb=True, wandb_project="p", wandb_group=None))
    assert w == WandbOptions(enabled=True, project="p") and w.argv() == ["--wandb", "--wandb_project", "p"]
    assert WandbOptions.from_flags({}).argv() == []
    assert WandbOptions(enabled=True, group="g").argv()[-2:] == ["--wandb_group", "g"]
