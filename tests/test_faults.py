"""Faults: killed writes leave old files intact, killed training resumes to the same result, edits never touch sources."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_cli

# ------------------------------------------------------------------------------------------- atomic writes, killed


def test_write_killed_inside_atomic_path_keeps_old_file(tmp_path):
    """SIGKILL a process halfway through a write: the destination still holds the old bytes, never a partial file."""
    dest = tmp_path / "metrics.json"
    dest.write_text('{"old": true}\n')
    code = ("import sys, time\n"
            "from src.common.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    with open(tmp, 'w') as fh:\n"
            "        fh.write('{\"new\": tr')\n"
            "        fh.flush()\n"
            "        print('half written', flush=True)\n"
            "        time.sleep(60)\n"
            "        fh.write('ue}\\n')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", code, str(dest)], stdout=subprocess.PIPE, text=True, env=env,
                            cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "half written"
        partial = [p for p in tmp_path.iterdir() if p.name != dest.name]
        assert partial and partial[0].read_text() == '{"new": tr'  # the write really was under way
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert dest.read_text() == '{"old": true}\n'
    assert json.loads(dest.read_text()) == {"old": True}


# ---------------------------------------------------------------------------------- every writer goes through it

@pytest.fixture
def replace_fails(monkeypatch):
    """os.replace raises, as if the process died just before the rename: an atomic writer must leave the old file."""
    calls = []

    def boom(src, dst, *a, **k):
        calls.append((str(src), str(dst)))
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", boom)
    return calls


def _assert_untouched(path: Path, old: bytes, calls: list, tmp_path: Path) -> None:
    assert calls, f"the writer of {path.name} never renamed a temporary file (not atomic)"
    assert path.read_bytes() == old, f"{path.name} changed although the write failed"
    left = [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]
    assert not left, f"temporary files left behind: {left}"


def test_split_writer_is_atomic(tmp_path, replace_fails):
    from src.data.humanml3d import write_split

    path = tmp_path / "train-w-violence.txt"
    path.write_text("000001\n000002\n")
    old = path.read_bytes()
    with pytest.raises(OSError):
        write_split(path, ["000003", "000004", "000005"])
    _assert_untouched(path, old, replace_fails, tmp_path)


def test_split_cli_is_atomic(tmp_path, synth_root, monkeypatch):
    """The split CLI with --force over existing files: a crash at the rename leaves every old split file."""
    import shutil

    from src.data.split import main

    shutil.copytree(synth_root, tmp_path / "synth")
    assert main(["--dataset_dir", str(tmp_path), "synth", "violence", "--main_split", "train"]) == 0
    files = sorted((tmp_path / "synth" / "kw_splits").iterdir())
    for f in files:
        f.write_text("old\n")
    monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(OSError("simulated crash")))
    assert main(["--dataset_dir", str(tmp_path), "synth", "violence", "--main_split", "train", "--force"]) != 0
    assert all(f.read_text() == "old\n" for f in files)
    assert sorted((tmp_path / "synth" / "kw_splits").iterdir()) == files  # no temporary leftovers


def test_checkpoint_saver_is_atomic(tmp_path, replace_fails):
    import torch
    from helpers_methods import tiny_vq_config

    from src.models.checkpoint import save_checkpoint
    from src.models.momask import build_vq

    path = tmp_path / "net_best_fid.tar"
    path.write_bytes(b"old checkpoint bytes")
    model = build_vq(tiny_vq_config())
    with pytest.raises(OSError):
        save_checkpoint(path, kind="vq", model=model, epoch=1)
    _assert_untouched(path, b"old checkpoint bytes", replace_fails, tmp_path)
    assert torch  # imported for the saver


def test_training_checkpoint_writer_is_atomic(tmp_path, replace_fails):
    """The training engine's latest.tar goes through the atomic saver."""
    import torch

    from src.train.engine import TrainSpec, train

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    latest = run / "model" / "latest.tar"
    latest.write_bytes(b"old latest")
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def batches(epoch):
        yield torch.ones(4, 2)

    def step(x, it):
        return {"loss": model(x).pow(2).mean()}

    with pytest.raises(OSError):
        train(model=model, optimizer=opt, scheduler=None, spec=TrainSpec(model_key="m", opt_key="o"), run_dir=run,
              batches=batches, step=step, validate=None, score_key=None, max_epoch=1, seed=0, progress=False,
              resume=False)
    _assert_untouched(latest, b"old latest", replace_fails, tmp_path)


def test_opt_txt_writer_is_atomic(tmp_path, replace_fails):
    from helpers_methods import tiny_vq_config

    path = tmp_path / "opt.txt"
    path.write_text("old options\n")
    with pytest.raises(OSError):
        tiny_vq_config().save(path)
    _assert_untouched(path, b"old options\n", replace_fails, tmp_path)


def test_metrics_writer_is_atomic(tmp_path, replace_fails):
    from src.eval.results import write_metrics

    path = tmp_path / "run" / "metrics.json"
    path.parent.mkdir()
    path.write_text('{"old": 1}\n')
    with pytest.raises(OSError):
        write_metrics(path, {"version": 1, "sets": {}}, force=True)
    _assert_untouched(path, b'{"old": 1}\n', replace_fails, tmp_path)


def _report_run(root: Path) -> Path:
    from test_report import write_run

    return write_run(root)


def test_report_writer_is_atomic(tmp_path, monkeypatch):
    """A crash while swapping in a new report/ leaves the old report readable (no replace ever succeeds)."""
    from src.report import make_report

    run = _report_run(tmp_path)
    make_report(run, video=False, progress=False)
    md = run / "report" / "report.md"
    old = md.read_bytes()
    calls = []

    def boom(src, dst, *a, **k):
        calls.append(dst)
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        make_report(run, video=False, force=True, progress=False)
    assert calls and md.read_bytes() == old
    assert not [p for p in run.iterdir() if p.name.startswith(".report")]


def test_report_swap_crash_between_renames_keeps_a_report(tmp_path, monkeypatch):
    from src.report import make_report

    run = _report_run(tmp_path)
    make_report(run, video=False, progress=False)
    old = (run / "report" / "report.md").read_bytes()
    real = os.replace
    n = {"calls": 0}

    def second_fails(src, dst, *a, **k):
        n["calls"] += 1
        if Path(dst).name == "report" and Path(src).name.startswith(".report.partial"):
            raise OSError("simulated crash at the second rename")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OSError):
        make_report(run, video=False, force=True, progress=False)
    assert (run / "report" / "report.md").read_bytes() == old


# ------------------------------------------------------------------------------- edits never touch their sources

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, synth_root):
    from helpers_methods import make_dataset, make_runs

    base = tmp_path_factory.mktemp("sources")
    data = make_dataset(synth_root, base / "data")
    ckpt = make_runs(base / "ckpt", data)
    return data, ckpt


@pytest.mark.slow
@pytest.mark.parametrize("method, argv", [
    ("uce", ["--trans_name", "mtrans_t", "--res_name", "rtrans_t"]),
    ("rece", ["--trans_name", "mtrans_t", "--res_name", "rtrans_t"]),
    ("lcr", ["--vq_name", "rvq_t", "--no_cache", "--select", "upstream"]),
], ids=["uce", "rece", "lcr"])
def test_unlearning_never_modifies_the_original(method, argv, tiny_models):
    from helpers_methods import tree_hashes

    data, ckpt = tiny_models
    sources = {n: tree_hashes(ckpt / "synth" / n) for n in ("rvq_t", "mtrans_t", "rtrans_t")}
    stamps = {p: p.stat().st_mtime_ns for n in sources for p in (ckpt / "synth" / n).rglob("*") if p.is_file()}
    proc = run_cli(f"src.methods.{method}", "--name", f"{method}_edit", *argv, "--checkpoints_dir", str(ckpt),
                   "--dataset_dir", str(data), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for n, before in sources.items():
        assert tree_hashes(ckpt / "synth" / n) == before, f"{method} changed the source run {n}"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (ckpt / "synth" / f"{method}_edit").is_dir(), "the edit was saved as a new run"


# ---------------------------------------------------------------------------------- SIGKILL mid-epoch, then resume

VQ_TINY = ["--nb_code", "16", "--code_dim", "16", "--width", "16", "--depth", "1", "--num_quantizers", "2",
           "--batch_size", "8", "--window_size", "32", "--epoch_size", "96", "--seed", "7", "--log_every", "1",
           "--max_epoch", "3",
           "--no_progress"]


def _log_records(run: Path) -> list[dict]:
    log = run / "train_log.jsonl"
    if not log.is_file():
        return []
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            pass
    return out


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_to_the_same_result(tmp_path, synth_root):
    import torch

    from src.common.io import torch_load

    ds = synth_root.parent
    ck = tmp_path / "ck"
    common = ["src.train.vq", "--dataset_dir", str(ds), "--checkpoints_dir", str(ck), *VQ_TINY]

    ref = run_cli(*common, "--name", "straight", timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]

    run = ck / "synth" / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("HMU_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", *common, "--name", "killed"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed_at = None
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            # mid-epoch: the first epoch's latest.tar exists and iterations of the second epoch are logged
            recs = _log_records(run)
            if (run / "model" / "latest.tar").is_file() and any(r.get("epoch") == 1 and "loss" in r for r in recs):
                proc.send_signal(signal.SIGKILL)
                killed_at = max(r["step"] for r in recs)
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed_at is not None, f"training ended before it could be killed:\n{proc.stderr.read()[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    assert torch_load(run / "model" / "latest.tar")["ep"] < 3

    resumed = run_cli(*common, "--name", "killed", "--is_continue", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a = torch_load(ck / "synth" / "straight" / "model" / "latest.tar")
    b = torch_load(run / "model" / "latest.tar")
    assert a["ep"] == b["ep"] == 3 and a["total_it"] == b["total_it"]
    assert a["vq_model"].keys() == b["vq_model"].keys()
    for k in a["vq_model"]:
        torch.testing.assert_close(b["vq_model"][k], a["vq_model"][k], atol=1e-5, rtol=1e-5, msg=k)


# ------------------------------------------------------------------------------------------------- missing GPU

GPU_CLIS = ["src.train.vq --name g", "src.train.mask --name g", "src.train.residual --name g",
            "src.train.length --name g", "src.train.evaluator", "src.train.tmr", "src.train.classifier",
            "src.eval.t2m_unlearn", "src.report {results}", "src.methods.uce --name g",
            "src.methods.rece --name g", "src.methods.lcr --name g", "src.methods.finetune --name g",
            "src.gen --name g --text_prompt hi", "src.eval.attack --models a=g"]


@pytest.mark.slow
@pytest.mark.parametrize("cmd", GPU_CLIS, ids=[c.split()[0] for c in GPU_CLIS])
def test_missing_gpu_is_one_line_error(cmd, tmp_path, synth_root):
    """``--gpu_id 99`` (no such GPU on any machine) fails with one line naming --gpu_id, before any other work."""
    mod = cmd.split()[0]
    (tmp_path / "results" / "a").mkdir(parents=True)
    args = cmd.format(results=tmp_path / "results").split()
    proc = run_cli(*args, "--gpu_id", "99", "--checkpoints_dir", str(tmp_path / "ck"), timeout=120,
                   env={"HMU_DATASET": str(synth_root.parent if mod == "src.eval.attack" else tmp_path / "ds"),
                        "HMU_RESULTS": str(tmp_path / "res")}) \
        if mod != "src.report" else run_cli(*args, "--gpu_id", "99", timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ") or ": error: " in ln]
    assert lines and "--gpu_id" in lines[-1], proc.stderr[-1500:]
