"""LCR's ratio rule: the 5 % minimum forget support and the repeated-crop correction, each on a case whose answer is
worked out by hand (so dropping either one changes the selection), through the public functions and the CLI."""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from src.methods.lcr.edit import count_codes, ratio_scores, select_codes, select_codes_ratio

NB = 32  # z = Φ⁻¹(1 - 0.05 / 32) = 2.955


def _rows(n: int, marks: dict[int, int]) -> np.ndarray:
    """n rows of 4 positions, all holding background code 0; code c is written into the first marks[c] rows."""
    codes = np.zeros((n, 4), dtype=np.int64)
    for slot, (code, k) in enumerate(marks.items(), start=1):
        codes[:k, slot] = code
    return codes


def _katz(kf, nf, kr, nr, z, a=0.5):
    """The module docstring's score, written out again: log rate ratio minus z times its Katz s.e."""
    pf, pr = (kf + a) / (nf + 2 * a), (kr + a) / (nr + 2 * a)
    return math.log(pf / pr) - z * math.sqrt(1 / (kf + a) - 1 / (nf + 2 * a) + 1 / (kr + a) - 1 / (nr + 2 * a))


# ---------------------------------------------------------------- minimum support
def test_min_support_drops_a_strongly_enriched_but_rare_code():
    """Codes 1, 2, 3 appear in 4 %, 5 % and 6 % of 10,000 forget rows and in none of 100,000 retain rows: all three
    are enriched far beyond the confidence bound, so only the 5 % support filter can drop code 1."""
    nf, nr = 10_000, 100_000
    forget = _rows(nf, {1: 400, 2: 500, 3: 600})
    retain = _rows(nr, {})
    fc, rc = count_codes(forget, nb_code=NB), count_codes(retain, nb_code=NB)
    assert fc[1:4].tolist() == [400, 500, 600] and rc[1:4].tolist() == [0, 0, 0]
    z = NormalDist().inv_cdf(1 - 0.05 / NB)
    assert _katz(400, nf, 0, nr, z) > 4  # code 1 passes the bound by a wide margin (by hand: 8.99 - z * 1.415 = 4.8)
    scores = ratio_scores(fc, rc, n_forget=nf, n_retain=nr)
    assert scores[1] == pytest.approx(_katz(400, nf, 0, nr, z))
    assert select_codes(fc, rc, n_forget=nf, n_retain=nr).tolist() == [2, 3]  # the CLI's call, defaults
    assert select_codes_ratio(fc, rc, n_forget=nf, n_retain=nr).tolist() == [2, 3]
    assert select_codes_ratio(fc, rc, n_forget=nf, n_retain=nr, min_support=0.0).tolist() == [1, 2, 3]


# ---------------------------------------------------------------- repeated crops
# Per motion: 20 forget and 200 retain motions. Code 6 is in 6 forget / 10 retain motions, code 5 in 3 / 10.
# By hand (z = 2.955 for 32 codes): code 6 scores log(0.3095 / 0.05224) - z * 0.4433 = 1.779 - 1.310 = +0.47 (kept);
# code 5 scores log(0.1667 / 0.05224) - z * 0.5730 = 1.160 - 1.693 = -0.53 (not enriched enough).
# The same motions cropped 3 times give 3 identical rows each: counted as if independent (no correction), code 5
# would score log(0.1557 / 0.05075) - z * 0.3464 = 1.121 - 1.024 = +0.10 and be selected on no new evidence
# (with 20 crops, as upstream's collection: +0.70).
def _motions():
    return _rows(20, {6: 6, 5: 3}), _rows(200, {6: 10, 5: 10})


def test_per_motion_case_by_hand():
    forget, retain = _motions()
    fc, rc = count_codes(forget, nb_code=NB), count_codes(retain, nb_code=NB)
    z = NormalDist().inv_cdf(1 - 0.05 / NB)
    assert _katz(6, 20, 10, 200, z) == pytest.approx(0.469, abs=2e-3)
    assert _katz(3, 20, 10, 200, z) == pytest.approx(-0.533, abs=2e-3)
    assert _katz(9, 60, 30, 600, z) == pytest.approx(0.098, abs=2e-3)
    assert select_codes(fc, rc, n_forget=20, n_retain=200).tolist() == [6]


@pytest.mark.parametrize("repeats", [3, 20])
def test_repeated_crops_give_the_per_motion_selection(repeats):
    forget, retain = _motions()
    fc1, rc1 = count_codes(forget, nb_code=NB), count_codes(retain, nb_code=NB)
    fcr = count_codes(np.repeat(forget, repeats, axis=0), nb_code=NB)
    rcr = count_codes(np.repeat(retain, repeats, axis=0), nb_code=NB)
    nf, nr = 20 * repeats, 200 * repeats
    np.testing.assert_allclose(ratio_scores(fcr, rcr, n_forget=nf, n_retain=nr, repeats=repeats),
                               ratio_scores(fc1, rc1, n_forget=20, n_retain=200), rtol=1e-12, atol=1e-12)
    assert select_codes(fcr, rcr, n_forget=nf, n_retain=nr, repeats=repeats).tolist() == [6]
    # without the correction the repeated rows look like more evidence and code 5 gets in
    assert select_codes(fcr, rcr, n_forget=nf, n_retain=nr).tolist() == [5, 6]


@pytest.fixture(scope="module")
def env(synth_root, tmp_path_factory):
    from helpers_methods import make_dataset, make_runs

    base = tmp_path_factory.mktemp("lcr_filters")
    data = make_dataset(synth_root, base / "dataset")
    ck = make_runs(base / "checkpoints", data, with_transformers=False)
    return {"ck": ck, "data": data, "flags": ["--checkpoints_dir", str(ck), "--dataset_dir", str(data)]}


@pytest.mark.slow
@pytest.mark.parametrize("crop_flags,want", [(["--n_crops", "4"], 4.0), (["--n_crops", "1"], 1.0)])
def test_cli_passes_rows_per_motion_as_repeats(env, monkeypatch, crop_flags, want):
    """The LCR CLI collects several crops per motion and must tell the ratio rule how many rows each motion has."""
    import src.methods.lcr.edit as L
    from helpers_methods import VQ

    calls = []
    real = L.select_codes

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(L, "select_codes", spy)
    from src.methods.lcr.__main__ import main

    name = f"lcr_rep{crop_flags[-1]}"
    assert main(["--dataset_name", "synth", "--concept", "violence", "--vq_name", VQ, "--name", name, "--no_cache",
                 "--no_progress", "--threshold", "0.01", *crop_flags, *env["flags"]]) == 0
    assert calls and all(c["repeats"] == pytest.approx(want) for c in calls)
    assert all(c["n_forget"] % int(want) == 0 and c["n_retain"] % int(want) == 0 for c in calls)
