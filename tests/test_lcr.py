"""LCR core: counting, selection (upstream parity + our rule on planted data), replacement (fixture parity, purity)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from src.common.errors import HmuError
from src.methods.lcr.edit import (
    count_codes,
    lcr_checkpoint,
    pick_destination,
    replace_codes,
    select_codes,
    select_codes_ratio,
    select_codes_upstream,
    upstream_scores,
)


class Layer(nn.Module):
    def __init__(self, codebook):
        super().__init__()
        self.register_buffer("codebook", codebook.clone())


class StandInVQ(nn.Module):
    """What LCR needs from a residual VQ: ``quantizer.layers[i].codebook`` (nb_code, code_dim), plus another weight."""

    def __init__(self, codebooks: torch.Tensor):
        super().__init__()
        self.quantizer = nn.Module()
        self.quantizer.layers = nn.ModuleList([Layer(c) for c in codebooks])
        self.decoder = nn.Linear(codebooks.shape[-1], 3)


def books(vq) -> torch.Tensor:
    return torch.stack([l.codebook for l in vq.quantizer.layers])


def random_vq(*, layers=3, nb_code=64, code_dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return StandInVQ(torch.randn(layers, nb_code, code_dim, generator=g))


# ---------------------------------------------------------------- counting

def test_count_codes_matches_fixture(fixtures):
    d = np.load(fixtures / "methods" / "lcr_select.npz")
    nb_code = d["forget_counts"].shape[0]
    np.testing.assert_array_equal(count_codes(d["forget_codes"], nb_code=nb_code), d["forget_counts"])
    np.testing.assert_array_equal(count_codes(d["retain_codes"], nb_code=nb_code), d["retain_counts"])


@pytest.mark.parametrize("nb_code", [1, 7, 512, 1024])
def test_count_codes_is_sequences_containing_each_code(nb_code):
    rng = np.random.default_rng(nb_code)
    codes = rng.integers(0, nb_code, (37, 11))
    mask = rng.random(codes.shape) < 0.7
    expect = np.zeros(nb_code, np.int64)
    expect_masked = np.zeros(nb_code, np.int64)
    for row, m in zip(codes, mask):  # the obvious per-row definition
        expect[np.unique(row)] += 1
        expect_masked[np.unique(row[m])] += 1
    np.testing.assert_array_equal(count_codes(codes, nb_code=nb_code, chunk_rows=5), expect)
    np.testing.assert_array_equal(count_codes(np.where(mask, codes, -1), nb_code=nb_code, mask=mask), expect_masked)
    assert count_codes(codes[:0], nb_code=nb_code).sum() == 0


def test_count_codes_rejects_bad_input():
    with pytest.raises(HmuError, match=r"\[0, 4\)"):
        count_codes(np.array([[0, 4]]), nb_code=4)
    with pytest.raises(HmuError, match="2-D"):
        count_codes(np.array([0, 1]), nb_code=4)
    with pytest.raises(HmuError, match="integers"):
        count_codes(np.array([[0.5]]), nb_code=4)


# ---------------------------------------------------------------- selection

def test_upstream_selection_matches_fixture(fixtures):
    d = np.load(fixtures / "methods" / "lcr_select.npz")
    summary = json.loads((fixtures / "methods" / "lcr_summary.json").read_text())
    freqs, ratios = upstream_scores(d["forget_counts"], d["retain_counts"])
    np.testing.assert_allclose(freqs, d["freqs"], rtol=1e-12)
    np.testing.assert_allclose(ratios, d["ratios"], rtol=1e-12)
    k4 = select_codes_upstream(d["forget_counts"], d["retain_counts"], 4)
    np.testing.assert_array_equal(k4, d["selected_k4"])
    assert k4.tolist() == summary["selected_k4"]
    # k=16: codes 187, 202, 276, 337 tie at the 16th place; numpy's unstable argsort may keep any 3 of them
    k16 = set(select_codes_upstream(d["forget_counts"], d["retain_counts"], 16).tolist())
    tied = {187, 202, 276, 337}
    assert k16 - tied == set(d["selected_k16"].tolist()) - tied
    assert len(k16 & tied) == 3 and len(k16) == 16


def planted(seed, *, nb_code=512, T=49, n_forget=60, n_retain=600, n_planted=8, p_concept=0.15):
    """Zipf-like background codes for everyone; forget rows also draw a share of positions from planted codes."""
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, nb_code + 1) ** 1.1
    w = w[rng.permutation(nb_code)]
    cdf = np.cumsum(w / w.sum())

    def draw(shape):
        return np.minimum(np.searchsorted(cdf, rng.random(shape), side="right"), nb_code - 1)

    concept = rng.choice(np.argsort(-w)[20:200], n_planted, replace=False)  # mid-frequency codes
    retain, forget = draw((n_retain, T)), draw((n_forget, T))
    use = rng.random(forget.shape) < p_concept
    forget[use] = rng.choice(concept, use.sum())
    return set(concept.tolist()), count_codes(forget, nb_code=nb_code), count_codes(retain, nb_code=nb_code)


def test_ratio_rule_recovers_planted_codes_better_than_upstream():
    ours = theirs = 0
    for seed in range(4):
        truth, fc, rc = planted(seed)
        sel = select_codes_ratio(fc, rc, n_forget=60, n_retain=600, k=8)
        assert len(truth & set(sel.tolist())) >= 7
        ours += len(truth & set(sel.tolist()))
        theirs += len(truth & set(select_codes_upstream(fc, rc, 8).tolist()))
    assert ours > theirs  # measured 32 vs 25 of 32


def test_ratio_rule_selects_nothing_without_a_difference_and_threshold_caps():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 64, (400, 20))
    fc, rc = count_codes(codes[:100], nb_code=64), count_codes(codes[100:], nb_code=64)
    assert select_codes_ratio(fc, rc, n_forget=100, n_retain=300).size == 0
    _truth, fc, rc = planted(1)
    loose = select_codes_ratio(fc, rc, n_forget=60, n_retain=600, k=None)
    strict = select_codes_ratio(fc, rc, n_forget=60, n_retain=600, k=None, threshold=4.0)
    assert set(strict.tolist()) <= set(loose.tolist()) and len(strict) < len(loose)
    assert len(select_codes_ratio(fc, rc, n_forget=60, n_retain=600, k=3)) == 3


def test_ratio_rule_prefers_common_forget_codes_on_the_fixture(fixtures):
    """Upstream's k=4 takes codes seen in 1-3 of 12 forget rows (none in retain); ours takes codes in all 12."""
    d = np.load(fixtures / "methods" / "lcr_select.npz")
    n_f, n_r = len(d["forget_codes"]), len(d["retain_codes"])
    sel = select_codes_ratio(d["forget_counts"], d["retain_counts"], n_forget=n_f, n_retain=n_r, k=4)
    assert len(sel) == 4
    assert (d["forget_counts"][sel] == n_f).all()
    assert d["forget_counts"][d["selected_k4"]].min() < n_f / 4


def test_select_codes_dispatch_and_errors():
    fc, rc = np.array([5, 0, 1, 0]), np.array([0, 5, 1, 0])
    assert select_codes(fc, rc, rule="upstream", k=1).tolist() == [0]
    with pytest.raises(HmuError, match="code_prune"):
        select_codes(fc, rc, rule="upstream", k=5)
    with pytest.raises(HmuError, match="threshold"):
        select_codes(fc, rc, rule="upstream", k=1, threshold=2.0)
    with pytest.raises(HmuError, match="number of forget"):
        select_codes(fc, rc, rule="ratio")
    with pytest.raises(HmuError, match="--select"):
        select_codes(fc, rc, rule="other")
    with pytest.raises(HmuError, match="exceeds"):
        select_codes(fc, rc, rule="ratio", n_forget=2, n_retain=10)


# ---------------------------------------------------------------- replacement

@pytest.mark.parametrize("case,kw", [("default_dest0", {}), ("dest_in_censor", {"dest_code_idx": 35}),
                                     ("orth", {"orth": True})])
def test_replace_matches_fixture(fixtures, case, kw):
    d = np.load(fixtures / "methods" / f"lcr_replace_{case}.npz")
    vq = StandInVQ(torch.from_numpy(d["codebooks_before"]))
    new = replace_codes(vq, {0: d["censor_codes_layer0"].tolist()}, generator=torch.Generator().manual_seed(1234),
                        rng=np.random.RandomState(1234), **kw)
    np.testing.assert_allclose(books(new).numpy(), d["codebooks_after"], atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(books(vq).numpy(), d["codebooks_before"])  # input untouched
    if "noise" in d.files:
        assert pick_destination(kw.get("dest_code_idx", 0), set(d["censor_codes_layer0"].tolist()), nb_code=512,
                                rng=np.random.RandomState(1234)) == int(d["target_code_idx"])
        np.testing.assert_allclose(d["std_per_layer"], torch.from_numpy(d["codebooks_before"]).std(dim=(1, 2)),
                                   rtol=1e-6)


@pytest.mark.parametrize("layers,nb_code,orth", [(1, 16, False), (3, 64, False), (6, 512, True), (2, 1024, False)])
def test_only_selected_rows_change(layers, nb_code, orth):
    vq = random_vq(layers=layers, nb_code=nb_code)
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    sel = {0: [1, 5, 9], layers - 1: [2, 3]} if layers > 1 else {0: [1, 5, 9]}
    new = replace_codes(vq, sel, generator=torch.Generator().manual_seed(0), orth=orth)
    for k, v in vq.state_dict().items():  # input untouched
        assert torch.equal(v, before[k]), k
    assert torch.equal(new.decoder.weight, vq.decoder.weight)
    for i in range(layers):
        changed = (books(new)[i] != books(vq)[i]).any(dim=1).nonzero().flatten().tolist()
        assert changed == sorted(sel.get(i, [])), i


def test_noise_is_target_plus_scaled_gaussian_and_orth_removes_the_mean_direction():
    vq = random_vq(layers=2, nb_code=32, code_dim=6)
    codes = [3, 7, 11, 20]
    g = torch.Generator().manual_seed(5)
    expect_noise = torch.randn(4, 6, generator=torch.Generator().manual_seed(5))
    new = replace_codes(vq, {1: codes}, dest_code_idx=2, alpha=0.5, generator=g)
    book = vq.quantizer.layers[1].codebook
    torch.testing.assert_close(new.quantizer.layers[1].codebook[codes], book[2] + expect_noise * book.std() * 0.5)
    orth = replace_codes(vq, {1: codes}, orth=True).quantizer.layers[1].codebook[codes]
    d = book[codes].mean(0)
    torch.testing.assert_close(orth @ (d / d.norm()), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(orth - book[codes], -(book[codes] @ d / d.norm() ** 2)[:, None] * d)


def test_censored_destination_is_replaced_deterministically():
    vq = random_vq(layers=2, nb_code=16)
    sel = {0: [0, 1, 2], 1: [3]}
    a = replace_codes(vq, sel, dest_code_idx=3, generator=torch.Generator().manual_seed(9))
    b = replace_codes(vq, sel, dest_code_idx=3, generator=torch.Generator().manual_seed(9))
    assert torch.equal(books(a), books(b))
    dest = pick_destination(3, {0, 1, 2, 3}, nb_code=16, generator=torch.Generator().manual_seed(9))
    assert dest not in {0, 1, 2, 3}


def test_replace_errors():
    vq = random_vq(layers=2, nb_code=8)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(HmuError, match="codebook has 8"):
        replace_codes(vq, {0: list(range(8))}, generator=g)
    with pytest.raises(HmuError, match="empty"):
        replace_codes(vq, {0: []}, generator=g)
    with pytest.raises(HmuError, match="empty"):
        replace_codes(vq, {}, generator=g)
    with pytest.raises(HmuError, match="layer 5"):
        replace_codes(vq, {5: [1]}, generator=g)
    with pytest.raises(HmuError, match="outside"):
        replace_codes(vq, {0: [9]}, generator=g)
    with pytest.raises(HmuError, match="duplicate"):
        replace_codes(vq, {0: [1, 1]}, generator=g)
    with pytest.raises(HmuError, match="Generator"):
        replace_codes(vq, {0: [1]})
    with pytest.raises(HmuError, match="codebook"):
        replace_codes(nn.Linear(2, 2), {0: [1]}, generator=g)
    with pytest.raises(HmuError, match="dest_code_idx"):
        replace_codes(vq, {0: [1]}, dest_code_idx=8, generator=g)


def test_checkpoint_records_codes_and_state():
    vq = random_vq(layers=3, nb_code=8)
    ck = lcr_checkpoint(vq, {1: [2, 3]}, alpha=1.0, select="ratio")
    assert ck["removed_codes"] == [[], [2, 3]] and ck["method"] == "lcr" and ck["select"] == "ratio"
    assert set(ck["vq_model"]) == set(vq.state_dict())


def test_real_residual_vq_if_available():
    import src.models.momask.vq as vqmod
    rvq = vqmod.ResidualVQ(num_quantizers=3, nb_code=32, code_dim=4, mu=0.99)
    with torch.no_grad():
        for l in rvq.layers:
            l.codebook.normal_(generator=torch.Generator().manual_seed(0))
    new = replace_codes(rvq, {0: [4, 5]}, generator=torch.Generator().manual_seed(0))
    diff = (new.codebooks != rvq.codebooks).any(dim=2)
    assert diff.nonzero().tolist() == [[0, 4], [0, 5]]
