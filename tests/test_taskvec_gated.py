"""Gated task-vector negation (src/gen/gated.py, src.methods.taskvec --mode gated): per-prompt dispatch equals the
Static model at the strong alpha on flagged prompts and the weak-alpha model (the original at 0) elsewhere; the gates;
strict gate files; the CLI's run loads through load_generator."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from src.gen.gated import Gate, GatedGenerator, fit_text_gate, read_gate, save_gate
from src.methods.taskvec import static_model
from src.models.lora import LoRAConfig, add_lora, lora_parameters
from test_gen import tiny_generator

FLAGGED = ["a person kicks hard", "someone kicked the ball"]
CLEAN = ["a person walks", "someone waves slowly", "a man jumps"]
LENS = {c: n for c, n in zip(FLAGGED + CLEAN, [40, 32, 24, 36, 28])}
KW = Gate(kind="keyword", keywords=("kick",))


def _adapted_generator(seed: int = 0):
    """The tiny generator with a random (non-zero) adapter on its masked transformer."""
    gen = tiny_generator()
    g = torch.Generator().manual_seed(seed)
    mask = add_lora(gen.mask, LoRAConfig(rank=2, alpha=4.0, dropout=0.0), generator=g).eval()
    with torch.no_grad():
        for p in lora_parameters(mask):
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return gen, mask


def _with_mask(gen, mask):
    other = copy.copy(gen)
    other.mask = mask
    return other


def _run(gen, caps, seed=3):
    return gen.generate_coded(caps, [LENS[c] for c in caps], generator=torch.Generator().manual_seed(seed))


def _same(a, b, *, exact=False):
    (fa, ca), (fb, cb) = a, b
    assert len(fa) == len(fb)
    for x, y, i, j in zip(fa, fb, ca, cb):
        assert np.array_equal(i, j)
        assert np.array_equal(x, y) if exact else np.allclose(x, y, atol=1e-4)


def test_gated_is_static_at_the_strong_alpha_on_flagged_and_the_original_elsewhere():
    gen, mask = _adapted_generator()
    gated = GatedGenerator(_with_mask(gen, mask), KW, strong=2.0, weak=0.0)
    static = _with_mask(gen, static_model(mask, 2.0))
    _same(_run(gated, FLAGGED), _run(static, FLAGGED))
    _same(_run(gated, CLEAN), _run(gen, CLEAN), exact=True)     # weak alpha 0: exactly the original model
    # the adapter matters: the original on the flagged prompts is not what the gated model makes
    assert not all(np.array_equal(a, b) for a, b in zip(_run(gated, FLAGGED)[1], _run(gen, FLAGGED)[1]))
    assert [d["flagged"] for d in gated.decisions[:5]] == [True, True, False, False, False]


def test_gated_weak_alpha_and_a_mixed_batch_dispatch():
    gen, mask = _adapted_generator()
    gated = GatedGenerator(_with_mask(gen, mask), KW, strong=1.5, weak=0.5)
    weak = _with_mask(gen, static_model(mask, 0.5))
    strong = _with_mask(gen, static_model(mask, 1.5))
    _same(_run(gated, CLEAN), _run(weak, CLEAN))
    mixed = [CLEAN[0], FLAGGED[0], CLEAN[1], FLAGGED[1]]
    feats, codes = _run(gated, mixed)
    # flagged first (strong), then the others (weak), one torch.Generator through both, back in caller order
    g = torch.Generator().manual_seed(3)
    fs, cs = strong.generate_coded(FLAGGED, [LENS[c] for c in FLAGGED], generator=g)
    fw, cw = weak.generate_coded(CLEAN[:2], [LENS[c] for c in CLEAN[:2]], generator=g)
    _same((feats, codes), ([fw[0], fs[0], fw[1], fs[1]], [cw[0], cs[0], cw[1], cs[1]]))
    assert [x.shape[0] for x in feats] == [LENS[c] // 4 * 4 for c in mixed]


def test_text_gate_learns_forget_vs_retain_features():
    g = torch.Generator().manual_seed(0)
    forget = torch.randn(30, 8, generator=g) + torch.tensor([2.0] + [0.0] * 7)
    retain = torch.randn(90, 8, generator=g) - torch.tensor([2.0] + [0.0] * 7)
    w, b, info = fit_text_gate(forget, retain)
    assert w[0] > 0 and info["train_recall_forget"] > 0.9 and info["train_specificity_retain"] > 0.9
    gate = Gate(kind="text", weight=w, bias=b)
    rec = gate.decide(["x"] * 2, torch.stack([torch.tensor([3.0] + [0.0] * 7), torch.tensor([-3.0] + [0.0] * 7)]))
    assert [r["flagged"] for r in rec] == [True, False] and rec[0]["keyword"] is None
    both = Gate(kind="either", keywords=("kick",), weight=w, bias=b)
    rec = both.decide(["he kicks", "he walks"], torch.tensor([[-3.0] + [0.0] * 7, [-3.0] + [0.0] * 7]))
    assert [(r["keyword"], r["text"], r["flagged"]) for r in rec] == [(True, False, True), (False, False, False)]


def test_gate_file_round_trip_and_strictness(tmp_path):
    p = tmp_path / "gate.pt"
    gate = Gate(kind="either", keywords=("kick", "punch"), weight=torch.arange(4.0), bias=-0.5)
    save_gate(p, gate, strong=2.0, weak=0.25)
    back, strong, weak = read_gate(p, dim=4)
    assert (back.kind, back.keywords, back.bias, strong, weak) == ("either", ("kick", "punch"), -0.5, 2.0, 0.25)
    assert torch.equal(back.weight, torch.arange(4.0))
    with pytest.raises(Exception, match="shape"):
        read_gate(p, dim=5)
    obj = torch.load(p, weights_only=True)
    obj["extra"] = 1
    torch.save(obj, p)
    with pytest.raises(Exception, match="unexpected"):
        read_gate(p)
    with pytest.raises(Exception, match="keywords"):
        Gate(kind="keyword")


@pytest.mark.slow
def test_cli_gated_run_loads_through_load_generator(tmp_path, synth_root):
    from helpers_methods import MASK, RES, make_dataset, make_runs

    from src.common.paths import Paths
    from src.gen.generate import load_generator
    from src.methods.taskvec import ADAPTER_FILE, GATE_FILE, main
    from src.models.checkpoint import load_mask_transformer
    from src.models.lora import adapters, load_lora

    data = make_dataset(synth_root, tmp_path / "dataset")
    ck = make_runs(tmp_path / "checkpoints", data)
    flags = ["--checkpoints_dir", str(ck), "--dataset_dir", str(data)]
    argv = ["--dataset_name", "synth", "--concept", "violence", "--trans_name", MASK, "--name", "tvg", "--mode",
            "gated", "--gate", "either", "--weak_alpha", "0", "--steps", "3", "--batch_size", "8", "--rank", "2",
            "--lora_alpha", "4", "--alpha", "1.5", "--no_progress", *flags]
    assert main(argv) == 0
    paths = Paths.default(checkpoints_dir=str(ck), dataset_dir=str(data))
    saved, _, d = load_mask_transformer(paths, "synth", "tvg")
    source, _, _ = load_mask_transformer(paths, "synth", MASK)
    for k, v in saved.state_dict().items():      # the checkpoint is the original: the adapter acts per prompt
        assert torch.equal(v, source.state_dict()[k]), k
    assert (d / "model" / ADAPTER_FILE).is_file() and (d / "model" / GATE_FILE).is_file()
    gen = load_generator(dataset_name="synth", name="tvg", res_name=RES, checkpoints_dir=ck, dataset_dir=data)
    assert isinstance(gen, GatedGenerator) and gen.sources["gate"] == "either" and gen.strong == 1.5
    want = load_lora(d / "model" / ADAPTER_FILE, source)
    got = {n: a.state_dict() for n, a in adapters(gen.mask)}
    for n, a in adapters(want):
        for k, v in a.state_dict().items():
            assert torch.equal(v, got[n][k]), (n, k)
    caps = ["a person kicks someone", "a person walks forward"]
    out = gen.generate(caps, [40, 40], generator=torch.Generator().manual_seed(0))
    assert len(out) == 2 and gen.decisions[0]["keyword"] is True and gen.decisions[1]["keyword"] is False
    assert "train_recall_forget" in gen.gate.info
    (bad := d / "model" / GATE_FILE).write_bytes(b"junk")
    with pytest.raises(Exception):
        load_generator(dataset_name="synth", name="tvg", res_name=RES, checkpoints_dir=ck, dataset_dir=data)
    del bad


def test_gated_copy_settings_and_direct_mask_use():
    """copy.copy + a changed setting (as t2m_unlearn's MultiModality generator does) leaves the original alone; the
    masked transformer used directly runs at the strong negation, never at the adapter's own +1."""
    from src.models.lora import adapters

    gen, mask = _adapted_generator()
    gated = GatedGenerator(_with_mask(gen, mask), KW, strong=2.0, weak=0.0)
    other = copy.copy(gated)
    other.gumbel_sample = True
    assert other.gumbel_sample is True and gated.gumbel_sample is False and other.mask is gated.mask
    gated.batch_size = 1
    assert gated.inner.batch_size == 1
    assert {a.scale for _, a in adapters(gated.mask)} == {-2.0}
    _run(gated, CLEAN + FLAGGED)
    assert {a.scale for _, a in adapters(gated.mask)} == {-2.0}   # restored after the per-group scales
