"""Task-vector negation (src/methods/taskvec.py): decoupled copies, training lowers the adapter's forget loss, the
negative preservation pushes away from the original, Static equals the unmerged -alpha forward, and the CLI writes
a run the existing loader reads strictly."""
from __future__ import annotations

import pytest
import torch

from src.methods.taskvec import TaskVecOptions, decouple_tokens, static_model, train_task_vector
from src.models.lora import lora_scale
from src.models.momask.transformer import MaskTransformer

K, CLIP, T = 12, 6, 10


def _model(seed=0):
    torch.manual_seed(seed)
    return MaskTransformer(code_dim=8, num_tokens=K, latent_dim=16, ff_size=32, num_layers=2, num_heads=2,
                           dropout=0.0, clip_dim=CLIP, cond_drop_prob=0.0).eval()


def _batch(seed, pattern):
    g = torch.Generator().manual_seed(seed)
    ids = pattern.expand(6, T).clone() if pattern is not None else torch.randint(0, K, (6, T), generator=g)
    cond = torch.randn(6, CLIP, generator=g)
    return ids, cond, torch.tensor([10, 10, 9, 8, 10, 7])


FORGET = _batch(1, torch.full((T,), 7))       # a fixed, learnable token pattern: every token 7
RETAIN = _batch(2, None)


def _ce(model, batch, seed=5):
    """The model's cross-entropy on a batch with a fixed masking draw (eval mode: no dropout)."""
    with torch.no_grad():
        return float(model.eval()(*batch, generator=torch.Generator().manual_seed(seed))[0])


def _train(opts, seed=0):
    return train_task_vector(_model(), lambda: iter([FORGET]), lambda: iter([RETAIN]), opts,
                             generator=torch.Generator().manual_seed(seed))


def test_decouple_tokens_reverses_or_shuffles_segments():
    ids = torch.arange(40).reshape(4, 10)
    lengths = torch.tensor([10, 8, 3, 1])
    seen = set()
    for seed in range(12):
        out = decouple_tokens(ids, lengths, generator=torch.Generator().manual_seed(seed), segments=4)
        for b in range(4):
            n = int(lengths[b])
            row, src = out[b].tolist(), ids[b].tolist()
            assert row[n:] == src[n:]                       # padding untouched
            assert sorted(row[:n]) == sorted(src[:n])       # a rearrangement of the valid tokens
            if n < 2:
                assert row == src
                continue
            if row[:n] == src[:n][::-1]:
                seen.add("reversed")
            else:
                # contiguous runs of the source, i.e. whole segments moved
                bounds = torch.linspace(0, n, 5).round().long().tolist()
                pieces = [src[bounds[i]:bounds[i + 1]] for i in range(4)]
                assert any(row[:n] == sum((pieces[i] for i in p), []) for p in _perms(4))
                seen.add("shuffled")
    assert seen == {"reversed", "shuffled"}
    a = decouple_tokens(ids, lengths, generator=torch.Generator().manual_seed(3))
    b = decouple_tokens(ids, lengths, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def _perms(n):
    import itertools

    return list(itertools.permutations(range(n)))


def test_training_lowers_the_adapters_forget_loss_and_leaves_the_source():
    src = _model()
    before = _ce(src, FORGET)
    adapted, hist = _train(TaskVecOptions(rank=4, lora_alpha=8, dropout=0.0, steps=30, lr=3e-3,
                                          preservation_weight=0.0, retain_weight=0.0, decouple_weight=0.0))
    with lora_scale(adapted, 1.0):
        after = _ce(adapted, FORGET)
    assert after < before - 0.1, (before, after)
    assert hist[-1]["forget_ce"] < hist[0]["forget_ce"] - 0.1
    # the argument is untouched: a fresh copy computes the same loss
    assert _ce(_model(), FORGET) == pytest.approx(before, abs=1e-7)


def test_preservation_is_a_negative_divergence():
    """SafeMo's safe stream MAXIMISES the pooled hidden-state divergence from the original on retain data: with only
    that term the objective is exactly -w * divergence, and a gradient step on it increases the divergence."""
    from src.methods.taskvec import task_vector_loss
    from src.models.lora import LoRAConfig, add_lora, lora_parameters

    base = _model()
    adapted = add_lora(base, LoRAConfig(rank=4, alpha=8, dropout=0.0)).train()
    opts = TaskVecOptions(forget_weight=0.0, decouple_weight=0.0, retain_weight=0.0, preservation_weight=2.0)
    # a fresh adapter is the original, and both models see the same masked input (the generator is replayed)
    _, m0 = task_vector_loss(adapted, base.eval(), FORGET, RETAIN, opts, generator=torch.Generator().manual_seed(0))
    assert m0["divergence"] == 0.0
    with torch.no_grad():   # a non-zero adapter (at B = 0 the divergence and its gradient are 0)
        for p in lora_parameters(adapted):
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))

    def objective():
        return task_vector_loss(adapted, base.eval(), FORGET, RETAIN, opts, generator=torch.Generator().manual_seed(0))

    loss, m = objective()
    assert m["divergence"] > 0
    assert float(loss.detach()) == pytest.approx(-2.0 * m["divergence"], rel=1e-6)
    loss.backward()
    with torch.no_grad():
        for p in lora_parameters(adapted):
            p.sub_(1e-2 * p.grad)
    assert objective()[1]["divergence"] > m["divergence"]


def test_static_equals_the_unmerged_negated_adapter():
    adapted, _ = _train(TaskVecOptions(rank=4, lora_alpha=8, dropout=0.0, steps=10, lr=3e-3))
    for alpha in (1.0, 2.0):
        merged = static_model(adapted, alpha)
        with lora_scale(adapted, -alpha):
            want = _ce(adapted, FORGET), adapted.trans_forward(FORGET[0], FORGET[1], torch.zeros(6, T, dtype=bool))
        got = _ce(merged, FORGET), merged.trans_forward(FORGET[0], FORGET[1], torch.zeros(6, T, dtype=bool))
        assert (got[1] - want[1]).abs().max().item() < 1e-6
        assert got[0] == pytest.approx(want[0], abs=1e-5)
    # negating the learned direction makes the forget pattern less likely than the original did
    assert _ce(static_model(adapted, 1.0), FORGET) > _ce(_model(), FORGET)
    with pytest.raises(Exception):
        static_model(adapted, 0.0)


@pytest.mark.slow
def test_cli_writes_a_run_the_loader_reads_strictly(tmp_path, synth_root):
    from helpers_methods import MASK, make_dataset, make_runs

    from src.common.paths import Paths
    from src.methods.taskvec import ADAPTER_FILE, main
    from src.models.checkpoint import load_mask_transformer
    from src.models.lora import load_lora, merge, read_lora

    data = make_dataset(synth_root, tmp_path / "dataset")
    ck = make_runs(tmp_path / "checkpoints", data)
    flags = ["--checkpoints_dir", str(ck), "--dataset_dir", str(data)]
    argv = ["--dataset_name", "synth", "--concept", "violence", "--trans_name", MASK, "--name", "tv",
            "--steps", "3", "--batch_size", "8", "--rank", "2", "--lora_alpha", "4", "--alpha", "1.5",
            "--no_progress", *flags]
    assert main(argv) == 0
    assert main(argv) == 2                                      # exists without --force
    paths = Paths.default(checkpoints_dir=str(ck), dataset_dir=str(data))
    edited, _, d = load_mask_transformer(paths, "synth", "tv")   # strict load by the existing loader
    source, _, _ = load_mask_transformer(paths, "synth", MASK)
    cfg, _, meta = read_lora(d / "model" / ADAPTER_FILE)
    assert cfg.rank == 2 and cfg.alpha == 4.0 and meta["alpha"] == 1.5
    # the saved run is the saved adapter merged at -alpha into the source
    again = merge(load_lora(d / "model" / ADAPTER_FILE, source), -1.5)
    for k, v in edited.state_dict().items():
        assert torch.allclose(v, again.state_dict()[k], atol=1e-6), k
    assert any(not torch.equal(v, source.state_dict()[k]) for k, v in edited.state_dict().items())
    assert (d / "taskvec.json").is_file()
