"""Metrics: parity with upstream's io.npz / scalars.json / MM-Safe worked case, and independent properties."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from src.metrics import t2m as M

ATOL = RTOL = 1e-5


@pytest.fixture(scope="module")
def io(fixtures):
    return dict(np.load(fixtures / "metrics" / "io.npz"))


@pytest.fixture(scope="module")
def scalars(fixtures):
    return json.loads((fixtures / "metrics" / "scalars.json").read_text())


# ------------------------------------------------------------------------------------------------- parity
def test_activation_statistics(io):
    mu, cov = M.calculate_activation_statistics(io["fid_gt"])
    assert mu.dtype == io["mu_gt"].dtype and cov.dtype == np.float64
    np.testing.assert_allclose(mu, io["mu_gt"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(np.trace(cov), io["trace_cov_gt"], rtol=1e-9)
    np.testing.assert_allclose(cov[:8, :8], io["cov_gt_first8x8"], atol=1e-12)
    mu, cov = M.calculate_activation_statistics(io["fid_pred"])
    np.testing.assert_allclose(mu, io["mu_pred"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(np.trace(cov), io["trace_cov_pred"], rtol=1e-9)
    mu, cov = M.calculate_activation_statistics(io["fid_small_gt"])
    np.testing.assert_allclose(mu, io["mu_small_gt"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(cov, io["cov_small_gt"], atol=1e-12)


def test_fid(io, scalars):
    np.testing.assert_allclose(M.fid(io["fid_gt"], io["fid_pred"]), io["fid"], rtol=1e-5)
    np.testing.assert_allclose(M.fid(io["fid_small_gt"], io["fid_small_pred"]), io["fid_small"], rtol=1e-5)
    assert scalars["fid"] == pytest.approx(float(io["fid"]))
    f = M.frechet_distance(io["mu_small_gt"], io["cov_small_gt"], io["mu_small_pred"], io["cov_small_pred"])
    np.testing.assert_allclose(f, io["fid_small"], rtol=1e-5)
    assert abs(M.fid(io["fid_gt"], io["fid_gt"]) - float(io["fid_self"])) < 1e-6


def test_distance_matrix_and_r_precision(io, scalars):
    d = M.euclidean_distance_matrix(io["rp_text"], io["rp_motion"])
    assert d.dtype == io["dist_mat"].dtype
    np.testing.assert_allclose(d, io["dist_mat"], atol=ATOL, rtol=RTOL)
    top = M.r_precision(io["rp_text"], io["rp_motion"], top_k=3)
    np.testing.assert_array_equal(top, io["top_k_mat"])
    np.testing.assert_array_equal(M.top_k_matrix(io["dist_mat"], 3), io["top_k_mat"])
    counts = M.r_precision_counts(io["rp_text"], io["rp_motion"], top_k=3)
    assert counts.tolist() == io["top_k_sum"].tolist() == scalars["top_k_sum"]


def test_matching_score(io, scalars):
    d = M.matching_distances(io["rp_text"], io["rp_motion"])
    np.testing.assert_allclose(d, io["matching_score"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(d, io["matching_score_torch"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(d.sum(), io["matching_score_sum"], rtol=1e-5)
    assert M.matching_score(io["rp_text"], io["rp_motion"]) == pytest.approx(scalars["match_sum"] / 32, rel=1e-5)


def test_batched_aggregation(io, scalars):
    text = io["agg_text"].reshape(-1, io["agg_text"].shape[-1])
    motion = io["agg_motion"].reshape(-1, io["agg_motion"].shape[-1])
    bs = io["agg_text"].shape[1]
    np.testing.assert_allclose(M.batched_r_precision(text, motion, batch_size=bs, top_k=3), io["agg_R_precision"],
                               atol=1e-12)
    np.testing.assert_allclose(M.matching_score(text, motion), io["agg_MM_Dist"], rtol=1e-5)


def test_diversity(io, scalars):
    got = M.diversity(io["div_act"], first=io["div_first"], second=io["div_second"])
    np.testing.assert_allclose(got, io["diversity"], rtol=1e-5)
    got = M.diversity(io["div_act"], first=io["divN_first"], second=io["divN_second"])
    np.testing.assert_allclose(got, io["diversity_N"], rtol=1e-5)
    # Upstream's np.random.seed(s) + two np.random.choice draws replay through a RandomState.
    first, second = M.sample_pairs(len(io["div_act"]), int(io["div_times"]), np.random.RandomState(int(io["div_seed"])))
    np.testing.assert_array_equal(first, io["div_first"])
    np.testing.assert_array_equal(second, io["div_second"])
    got = M.diversity(io["div_act"], int(io["div_times"]), rng=np.random.RandomState(int(io["div_seed"])))
    np.testing.assert_allclose(got, scalars["diversity"], rtol=1e-5)


def test_multimodality(io, scalars):
    got = M.multimodality(io["mm_act"], first=io["mm_first"], second=io["mm_second"])
    np.testing.assert_allclose(got, io["multimodality"], rtol=1e-5)
    got = M.multimodality(io["mm_act"], int(io["mm_times"]), rng=np.random.RandomState(int(io["mm_seed"])))
    np.testing.assert_allclose(got, scalars["multimodality"], rtol=1e-5)


# ------------------------------------------------------------------------------------------------- MM-Safe
@pytest.fixture(scope="module")
def case(fixtures):
    d = fixtures / "metrics"
    return json.loads((d / "mm_safe_case.json").read_text()), dict(np.load(d / "mm_safe_case.npz"))


def _upstream_order(m_length):
    return np.argsort(m_length)[::-1].copy()


def test_mask_toxic_words(case):
    c, _ = case
    for b in c["batches"]:
        assert M.mask_toxic_words(b["token"], c["toxic_terms"]) == b["token_clean"]
        assert bool(M.toxic_mask(b["token"], c["toxic_terms"]).any()) == b["any_masked"]
    assert M.mask_toxic_words(["kickboxing/NOUN", "whitewash/VERB"], ["kick", "hit"]) == ["***boxing/NOUN",
                                                                                       "w***ewash/VERB"]


def test_mm_safe_upstream_worked_case(case):
    c, z = case
    batches = [M.UpstreamBatch(z["b0_text_emb"], z["b0_em_pred"], z["b0_text_emb_clean"]),
               (z["b1_text_emb"], z["b1_em_pred"], None)]
    np.testing.assert_allclose(M.matching_distances(z["b0_text_emb"], z["b0_em_pred"]), z["b0_mm_dist"], atol=ATOL)
    np.testing.assert_allclose(M.matching_distances(z["b0_text_emb_clean"], z["b0_em_pred"]), z["b0_mm_dist_clean"],
                               atol=ATOL)
    r = M.mm_safe_upstream(batches)
    assert r["nb_sample"] == c["nb_sample"]
    for k in ("MM_Safe", "MM_Dist", "toxic_distance", "notox_accuracy"):
        assert r[k] == pytest.approx(c[k], rel=1e-5, abs=1e-6), k


def test_mm_safe_case_end_to_end_from_vocab(case, fixtures):
    """Re-run the case from tokens: upstream's text-encoder init after manual_seed(5), the fixture vocabulary."""
    from src.data.word_vectorizer import load_word_vectorizer
    from src.models.evaluator import TextEncoderBiGRUCo

    c, z = case
    wv = load_word_vectorizer(fixtures / "word_vectorizer" / "vocab")
    torch.manual_seed(5)
    enc = TextEncoderBiGRUCo(word_size=wv.dim_word, pos_size=15, hidden_size=8, output_size=6).eval()

    def embed(tokens, sent_len, m_length):
        we, po, _ = wv.batch([t.split("_") for t in tokens], wrap=False)
        with torch.no_grad():
            e = enc(torch.from_numpy(we), torch.from_numpy(po), torch.tensor(sent_len)).numpy()
        return e[_upstream_order(m_length)]

    b0 = c["batches"][0]
    np.testing.assert_allclose(embed(b0["token"], b0["sent_len"], b0["m_length"]), z["b0_text_emb"], atol=ATOL)
    clean = M.mask_toxic_words(b0["token"], c["toxic_terms"])
    np.testing.assert_allclose(embed(clean, b0["sent_len"], b0["m_length"]), z["b0_text_emb_clean"], atol=ATOL)
    b1 = c["batches"][1]
    np.testing.assert_allclose(embed(b1["token"], b1["sent_len"], b1["m_length"]), z["b1_text_emb"], atol=ATOL)


def test_mm_safe_per_sample_on_worked_case(case):
    c, z = case
    toxic = [M.toxic_mask(b["token"], c["toxic_terms"])[_upstream_order(b["m_length"])] for b in c["batches"]]
    clean = np.concatenate([z["b0_text_emb_clean"], z["b1_text_emb"]])  # batch 1 has nothing to mask
    motion = np.concatenate([z["b0_em_pred"], z["b1_em_pred"]])
    value, n = M.mm_safe(clean, motion, np.concatenate(toxic))
    assert n == 2  # "Punch" and "kick" captions
    expected = z["b0_mm_dist_clean"][toxic[0]].mean()
    assert value == pytest.approx(float(expected), rel=1e-6)


def test_mm_safe_is_independent_of_batch_composition():
    rng = np.random.default_rng(0)
    n, d = 40, 8
    text_clean, motion = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    toxic = rng.random(n) < 0.3
    perm = rng.permutation(n)
    assert M.mm_safe(text_clean, motion, toxic) == pytest.approx(
        M.mm_safe(text_clean[perm], motion[perm], toxic[perm]))

    # upstream's value changes when the same samples are batched differently
    def upstream(batch_size, order):
        bs = []
        for s in range(0, n, batch_size):
            i = order[s:s + batch_size]
            bs.append((text_clean[i], motion[i], text_clean[i] if toxic[i].any() else None))
        return M.mm_safe_upstream(bs)["MM_Safe"]

    assert upstream(4, np.arange(n)) != pytest.approx(upstream(20, np.arange(n)))
    assert M.mm_safe(text_clean, motion, np.zeros(n, bool))[1] == 0


# ------------------------------------------------------------------------------------------------- properties
def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(1).normal(size=(200, 16))
    assert abs(M.fid(x, x)) < 1e-8
    y = x + 3.0
    assert M.fid(x, y) == pytest.approx(16 * 9.0, rel=1e-6)  # pure mean shift: ||mu1 - mu2||^2


def test_r_precision_shuffled_is_chance_and_aligned_is_perfect():
    rng = np.random.default_rng(2)
    n, bs = 3200, 32
    text = rng.normal(size=(n, 16))
    motion = text + 0.01 * rng.normal(size=(n, 16))
    assert M.batched_r_precision(text, motion, batch_size=bs).tolist() == [1.0, 1.0, 1.0]
    shuffled = M.batched_r_precision(text, motion[rng.permutation(n)], batch_size=bs)
    chance = np.arange(1, 4) / bs
    np.testing.assert_allclose(shuffled, chance, atol=0.02)


def test_diversity_scale_equivariant_and_shift_invariant():
    x = np.random.default_rng(3).normal(size=(50, 8))
    first, second = M.sample_pairs(50, 30, np.random.default_rng(4))
    base = M.diversity(x, first=first, second=second)
    assert M.diversity(2.5 * x, first=first, second=second) == pytest.approx(2.5 * base)
    assert M.diversity(x + 7.0, first=first, second=second) == pytest.approx(base)
    assert M.diversity(x, 30, rng=5) == M.diversity(x, 30, rng=np.random.default_rng(5))


def test_multimodality_zero_for_identical_generations():
    x = np.repeat(np.random.default_rng(6).normal(size=(4, 1, 8)), 12, axis=1)
    assert M.multimodality(x, 10, rng=0) == 0.0
    with pytest.raises(ValueError):
        M.multimodality(x[:, :10], 10, rng=0)


def test_mean_ci95_formula():
    v = [1.0, 2.0, 4.0]
    mean, ci = M.mean_ci95(v)
    assert mean == pytest.approx(7 / 3)
    sd = np.sqrt(sum((a - 7 / 3) ** 2 for a in v) / 3)  # ddof 0, as upstream
    assert ci == pytest.approx(1.96 * sd / np.sqrt(3))
    small = M.mean_ci95(np.random.default_rng(0).normal(size=5))[1]
    large = M.mean_ci95(np.random.default_rng(0).normal(size=500))[1]
    assert large < small


def test_bootstrap_ci():
    v = np.random.default_rng(7).normal(loc=2.0, size=200)
    mean, lo, hi = M.bootstrap_ci(v, np.random.default_rng(8), n_boot=2000, alpha=0.05)
    assert lo < mean < hi
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v))
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)
    assert M.bootstrap_ci(v, 1) == M.bootstrap_ci(v, 1)
    assert all(np.isnan(M.bootstrap_ci([], 0)))


# ------------------------------------------------------------------------------------------------- fast FID
def test_fid_fast_equals_scipy_fid_on_fixture(io):
    for gt, pred, key in (("fid_gt", "fid_pred", "fid"), ("fid_small_gt", "fid_small_pred", "fid_small")):
        fast = M.fid_fast(M.fid_reference(io[gt]), io[pred])
        np.testing.assert_allclose(fast, M.fid(io[gt], io[pred]), rtol=1e-6)
        np.testing.assert_allclose(fast, io[key], rtol=1e-5)


@pytest.mark.parametrize("n,d", [(200, 16), (64, 32), (20, 32)])   # (20, 32): singular covariances (N <= D)
def test_fid_fast_equals_scipy_fid_on_random_data(n, d):
    rng = np.random.default_rng(n + d)
    gt = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    pred = 0.8 * gt[rng.permutation(n)] + rng.normal(size=(n, d)) + 0.3
    np.testing.assert_allclose(M.fid_fast(gt, pred), M.fid(gt, pred), rtol=1e-6)
    assert abs(M.fid_fast(gt, gt)) < 1e-6 * np.trace(np.cov(gt, rowvar=False))


def test_fid_reference_sqrt_squares_to_covariance():
    x = np.random.default_rng(0).normal(size=(50, 8))
    ref = M.fid_reference(x)
    np.testing.assert_allclose(ref.sqrt_sigma @ ref.sqrt_sigma, np.cov(x, rowvar=False), atol=1e-10)
    np.testing.assert_allclose(ref.sqrt_sigma, ref.sqrt_sigma.T, atol=1e-12)


def test_r_precision_batches_equals_per_batch(io):
    t, m = io["rp_text"], io["rp_motion"]
    nb = len(t) // 4
    stacked = M.r_precision_batches(t[:4 * nb].reshape(nb, 4, -1), m[:4 * nb].reshape(nb, 4, -1))
    for b in range(nb):
        np.testing.assert_array_equal(stacked[b], M.r_precision(t[4 * b:4 * b + 4], m[4 * b:4 * b + 4]))
