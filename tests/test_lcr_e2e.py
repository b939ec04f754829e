"""End to end: `bash scripts/eval/lcr.sh violence synth` on freshly trained tiny models lowers forget leakage and keeps
retain R-precision, compared with the original evaluated on the same seeds.

Everything lives in tmp (its own small synth, checkpoints and results); nothing in the repo's checkpoints/ is read.
The dataset has a raised violent rate (0.4) so the test split holds enough forget prompts (~20) for the leakage
comparison to mean something, and the models train for a few short epochs only (the whole test is ~2-3 min on 2 cores).

Checks (relative to the original, same seeds, same evaluation settings, so no expected number comes from the code):
- forget leakage (ground-truth action classifier on motions generated from forget prompts) is lower after LCR;
- |ΔR@3| on retain prompts <= RETAIN_MARGIN, where the original's R@3 is above chance (3/32), so the evaluator
  discriminates and the margin means something;
- the source VQ file is byte-identical afterwards (the edit is a new run).
Measured (2-core box shared with other jobs): 2 min wall; forget leakage 0.27 -> 0.21, retain R@3 0.13 -> 0.10
(since issue 30's balanced sampling the tiny VQ-VAE holds the kicks in codes the retain motions use too, so LCR's
drop is smaller than it was with the kick-blind codebook: 0.79 -> 0.00).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.common.io import sha256_file

REPO = Path(__file__).resolve().parents[1]

# What this test can guarantee, and what README.md says it guarantees (the README's "at most 0.0xx" is a measurement
# on the quickstart's larger, fully trained models, rendered from docs/results/, not a bound this test checks).
# Retain R@3 here comes from about 32 retain prompts per repeat: one repeat's R@3 has a binomial s.e. of at most
# sqrt(0.5 * 0.5 / 32) = 0.088, a 3-repeat mean at most 0.051 (fresh generations per repeat; the shared prompts only
# lower it), and the difference of two such means (original vs LCR, independent generations) at most
# sqrt(2) * 0.051 = 0.072. A true |ΔR@3| of 0 therefore exceeds 0.15 (2.1 s.e.) with probability < 4 % at the worst
# case p = 0.5 and far less at the measured p ≈ 0.2 (s.e. 0.058: 2.6 s.e., < 1 %). A bound like 0.014 would be 0.2
# s.e. and fail most runs of an unchanged model, so the README quotes it as a measurement, not as a tested bound.
RETAIN_MARGIN = 0.15
REPEATS = 3
N_MOTIONS = 300


def _run(argv: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert r.returncode == 0, f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def _metric(path: Path, split: str, name: str) -> float:
    return json.loads(path.read_text())["sets"][split]["metrics"][name]["mean"]


@pytest.mark.slow
def test_lcr_sh_lowers_forget_leakage_and_keeps_retain(tmp_path):
    data, ckpt, results = tmp_path / "dataset", tmp_path / "checkpoints", tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env.pop("HMU_DEBUG", None)
    py = [sys.executable, "-m"]
    loc = ["--dataset_name", "synth", "--checkpoints_dir", str(ckpt), "--dataset_dir", str(data), "--gpu_id", "-1"]
    quiet = ["--no_progress"]

    _run([*py, "src.data.synth", "--out", str(data / "synth"), "--n", str(N_MOTIONS), "--seed", "0",
          "--violent_rate", "0.4", "--workers", "1", "--quiet"], env)
    _run([*py, "src.data.split", "synth", "violence", "--dataset_dir", str(data)], env)
    _run([*py, "src.train.vq", "--name", "rvq", *loc, *quiet, "--max_epoch", "2", "--epoch_size", "3200"], env)
    _run([*py, "src.train.mask", "--name", "mtrans", "--vq_name", "rvq", *loc, *quiet, "--max_epoch", "6"], env)
    _run([*py, "src.train.residual", "--name", "rtrans", "--vq_name", "rvq", *loc, *quiet, "--max_epoch", "1"], env)
    _run([*py, "src.train.evaluator", *loc, *quiet, "--max_epoch", "8"], env)
    # 3 epochs on 300 motions: the judge needs the strong positive weight it had before the real-motion defaults
    # (--augment 1 --pos_weight_max 2 keep it conservative on real clips, and flag nothing after so short a training)
    _run([*py, "src.train.classifier", *loc, *quiet, "--max_epoch", "3", "--augment", "0", "--pos_weight_max", "10"],
         env)

    vq_file = ckpt / "synth" / "rvq" / "model" / "net_best_fid.tar"
    vq_hash = sha256_file(vq_file)
    models = ["--name", "mtrans", "--res_name", "rtrans", "--ckpt", "net_best_fid.tar"]
    ev = ["--concept", "violence", "--repeat_times", str(REPEATS), "--seed", "0", "--no_mm", "--results_dir",
          str(results)]
    _run(["bash", "scripts/eval/t2m_unlearn.sh", *loc, *models, "--vq_name", "rvq", "--method", "original", *ev,
          "--run_name", "original"], env)
    r = _run(["bash", "scripts/eval/lcr.sh", "violence", "synth", "--vq_name", "rvq", "--trans_name", "mtrans",
              "--res_name", "rtrans", "--checkpoints_dir", str(ckpt), "--dataset_dir", str(data), "--results_dir",
              str(results), "--repeat_times", str(REPEATS), "--seed", "0", "--no_mm", "--no_progress"], env)
    assert "codes replaced" in r.stdout

    orig = results / "original" / "metrics.json"
    lcr = next(p for p in results.glob("*/metrics.json") if p != orig)
    leak_o, leak_l = _metric(orig, "forget", "leakage"), _metric(lcr, "forget", "leakage")
    r3_o, r3_l = _metric(orig, "retain", "R_precision_top3"), _metric(lcr, "retain", "R_precision_top3")
    print(f"forget leakage {leak_o:.3f} -> {leak_l:.3f}; retain R@3 {r3_o:.3f} -> {r3_l:.3f}")
    assert leak_o > 0, "the original never generates the concept: the tiny models learned nothing to unlearn"
    assert leak_l < leak_o
    assert r3_o > 3 / 32, "retain R@3 of the original is at chance: the tiny evaluator did not learn"
    assert abs(r3_l - r3_o) <= RETAIN_MARGIN
    assert (ckpt / "synth" / "lcr16_synth_violence" / "model" / "net_best_fid.tar").is_file()
    assert sha256_file(vq_file) == vq_hash
