"""torchrun (gloo, CPU): N processes train the same weights as one, a SIGKILLed multi-process run resumes to the same
weights, an evaluation sharded over ranks gives the same numbers, and no rank but 0 writes a file (tests/dist/guard.py
fails the job if one does). Each torchrun costs ~10 s of process start-up here, so these are marked slow."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUARD = REPO / "tests" / "dist" / "guard.py"
TINY = REPO / "tests" / "dist" / "tiny_train.py"

pytestmark = pytest.mark.slow


def torchrun(nproc: int, *args: str, guard_root: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node nproc tests/dist/guard.py args...`` with writes outside rank 0 under
    ``guard_root`` forbidden."""
    env = dict(os.environ, PYTHONPATH=str(REPO), HMU_GUARD_ROOT=str(guard_root), OMP_NUM_THREADS="1")
    env.pop("HMU_DEBUG", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(GUARD),
           *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def weights(path: Path, key: str) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)[key]


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def last_json(out: str) -> dict:
    return json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The tiny engine model trained by 1 and by 2 processes (same global batch 8, seed 0, 2 epochs)."""
    base = tmp_path_factory.mktemp("dist")
    out = {}
    for n in (1, 2):
        r = torchrun(n, str(TINY), str(base / f"w{n}"), guard_root=base)
        assert r.returncode == 0, r.stderr[-3000:]
        out[n] = (base / f"w{n}", last_json(r.stdout))
    return base, out


def test_two_processes_train_the_same_weights_as_one(tiny_runs):
    _, out = tiny_runs
    assert out[1][1]["world_size"] == 1 and out[2][1]["world_size"] == 2
    assert out[1][1]["total_it"] == out[2][1]["total_it"] == 16  # global batch kept: 64 items / 8 per step x 2
    a, b = (weights(out[n][0] / "model" / "latest.tar", "net") for n in (1, 2))
    d = max_diff(a, b)
    print(f"2-process vs 1-process: max |dw| {d:.3g}, wall {out[2][1]['wall_s']:.2f}s vs {out[1][1]['wall_s']:.2f}s")
    assert d < 1e-5
    assert max_diff(a, {k: v * 0 for k, v in a.items()}) > 0.01  # the weights are not trivially equal


def test_sigkill_mid_epoch_then_resume_ends_at_the_same_weights(tiny_runs):
    base, out = tiny_runs
    run = base / "killed"
    r = torchrun(2, str(TINY), str(run), "--kill_at", "11", guard_root=base)  # epoch 2 of 2, iteration 11 of 16
    assert r.returncode != 0 and "SIGKILL" in r.stderr
    assert weights(run / "model" / "latest.tar", "net") is not None
    import torch

    assert torch.load(run / "model" / "latest.tar", weights_only=True)["ep"] == 1
    r = torchrun(2, str(TINY), str(run), guard_root=base)  # the engine resumes from latest.tar
    assert r.returncode == 0, r.stderr[-3000:]
    d = max_diff(weights(run / "model" / "latest.tar", "net"), weights(out[2][0] / "model" / "latest.tar", "net"))
    assert d < 1e-6


def test_a_write_by_rank_1_fails_the_guard(tmp_path):
    """The guard is what the other tests rely on: a rank-1 write under the root must fail the job."""
    script = tmp_path / "bad.py"
    script.write_text("import os, pathlib\npathlib.Path(os.environ['HMU_GUARD_ROOT'], 'x.txt').write_text('1')\n")
    r = torchrun(2, str(script), guard_root=tmp_path)
    assert r.returncode != 0 and "GuardError: rank 1 tried to open for writing" in r.stderr


def test_trainer_cli_under_torchrun_only_rank0_writes_and_resumes(tmp_path):
    """The length estimator's CLI with 2 ranks (global batch 8): only rank 0 writes; --is_continue resumes both ranks;
    --batch_size that does not split over the ranks is a one-line error."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_train_momask import make_tiny_dataset

    data = make_tiny_dataset(tmp_path / "dataset")
    common = ["-m", "src.train.length", "--name", "le", "--checkpoints_dir", str(tmp_path / "ck"), "--dataset_dir",
              str(data), "--no_progress"]
    r = torchrun(2, *common, "--batch_size", "8", "--max_epoch", "1", guard_root=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "ck" / "synth" / "le"
    assert (run / "model" / "finest.tar").is_file() and (run / "opt.txt").is_file()
    assert r.stdout.count("length estimator:") == 1  # one voice: rank 0's summary line only
    r = torchrun(2, *common, "--is_continue", "--max_epoch", "2", guard_root=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    import torch

    assert torch.load(run / "model" / "latest.tar", weights_only=True)["ep"] == 2
    r = torchrun(2, *common, "--force", "--batch_size", "7", "--max_epoch", "1", guard_root=tmp_path)
    assert r.returncode != 0 and "does not split over 2 processes" in r.stderr


def _numbers(o, skip=("timing", "created", "config", "run", "command", "git", "host", "wall_time_s")):
    """The metrics.json record without its timings, dates and run names."""
    if isinstance(o, dict):
        return {k: _numbers(v, skip) for k, v in o.items() if k not in skip}
    if isinstance(o, list):
        return [_numbers(v, skip) for v in o]
    return o


def test_evaluation_sharded_over_two_ranks_writes_the_same_metrics(synth_root, tmp_path):
    """src.eval.t2m_unlearn with 3 repeats (2 on rank 0, 1 on rank 1; MultiModality, MM-Safe and leakage on) writes
    the numbers of the single-process run; rank 1 writes nothing (not even the embedding cache)."""
    sys.path.insert(0, str(REPO / "tests"))
    from helpers_methods import MASK, RES, make_dataset, make_runs
    from test_attacks import _tiny_evaluator_and_classifier

    data = make_dataset(synth_root, tmp_path / "data")
    ckpt = make_runs(tmp_path / "ckpt", data)
    _tiny_evaluator_and_classifier(ckpt, data / "synth")
    common = ["-m", "src.eval.t2m_unlearn", "--dataset_name", "synth", "--name", MASK, "--res_name", RES,
              "--concept", "violence", "--main_split", "train_val", "--repeat_times", "3", "--mm_prompts", "2", "--mm_generations", "11",
              "--time_steps", "2", "--checkpoints_dir", str(ckpt), "--dataset_dir", str(data), "--results_dir",
              str(tmp_path / "res")]
    records = {}
    for n in (2, 1):  # the 2-process run first: its embedding cache is then written by rank 0 under the guard
        r = torchrun(n, *common, "--run_name", f"p{n}", guard_root=tmp_path, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        records[n] = json.loads((tmp_path / "res" / f"p{n}" / "metrics.json").read_text())
    a, b = _numbers(records[1]), _numbers(records[2])
    assert a == b
    forget = records[2]["sets"]["forget"]["metrics"]
    assert len(forget["MM_Dist"]["values"]) == 3 and "MultiModality" in forget and "leakage" in forget


def test_launcher_nproc_runs_torchrun_and_checks_its_value():
    """scripts/_launch.sh: NPROC=2 runs the module under torchrun (two ranks answer --help); a bad NPROC is an
    error."""
    env = dict(os.environ, NPROC="2", OMP_NUM_THREADS="1")
    r = subprocess.run(["bash", "scripts/train/length.sh", "--help"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("usage:") == 2  # one per rank: torchrun started two processes
    env["NPROC"] = "two"
    r = subprocess.run(["bash", "scripts/eval/t2m_unlearn.sh", "--help"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 2 and "NPROC must be a positive integer" in r.stderr


def test_vq_and_mask_trainers_under_torchrun(tmp_path):
    """The VQ (EMA codebook statistics all-reduced over the ranks) and the masked transformer (DDP with condition
    dropout) train under 2 ranks; rank 0 alone writes; the files load as a single-process run's do."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_train_momask import TINY_TRANS, TINY_VQ, make_tiny_dataset

    data = make_tiny_dataset(tmp_path / "dataset")
    loc = ["--checkpoints_dir", str(tmp_path / "ck"), "--dataset_dir", str(data), "--no_progress"]
    r = torchrun(2, "-m", "src.train.vq", "--name", "vq", *TINY_VQ, *loc, guard_root=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    r = torchrun(2, "-m", "src.train.mask", "--name", "mask", "--vq_name", "vq", *TINY_TRANS, *loc,
                 guard_root=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    from src.common.paths import Paths
    from src.models.checkpoint import load_mask_transformer, load_vq

    paths = Paths.default(checkpoints_dir=tmp_path / "ck", dataset_dir=data)
    load_vq(paths, "synth", "vq")
    load_mask_transformer(paths, "synth", "mask")
    log = [json.loads(x) for x in (tmp_path / "ck" / "synth" / "mask" / "train_log.jsonl").read_text().splitlines()]
    assert any("val_acc" in rec for rec in log)
