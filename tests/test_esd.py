"""ESD for masked transformers (src/methods/esd.py): the target formula by hand, the partial masking, training moves
the conditional logits toward negative guidance (the loss falls, the concept's preferred tokens lose mass), a sign
bug fails, and the CLI writes a run the existing loader reads strictly."""
from __future__ import annotations

import pytest
import torch

from src.methods import esd as E
from src.models.momask.transformer import MaskTransformer

K, CLIP, T = 12, 6, 10


def _model(seed=0):
    torch.manual_seed(seed)
    m = MaskTransformer(code_dim=8, num_tokens=K, latent_dim=16, ff_size=32, num_layers=2, num_heads=2,
                        dropout=0.0, clip_dim=CLIP, cond_drop_prob=0.1).eval()
    with torch.no_grad():   # a random init barely listens to the text: make the condition matter
        for p in m.cond_emb.parameters():
            p.mul_(30.0)
    return m


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, K, (6, T), generator=g), torch.randn(6, CLIP, generator=g), torch.tensor(
        [10, 10, 9, 8, 10, 7])


def test_target_by_hand():
    c, u = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([1.0, 1.0, 1.0])
    assert E.esd_target(c, u, 1.0).tolist() == [0.0, 2.0, 3.0]       # u - (c - u) = 2u - c
    assert E.esd_target(c, u, 0.5).tolist() == [0.5, 1.5, 2.0]       # 1 - 0.5*1, 1 + 0.5, 1 + 1.5*... = 1 - 0.5*(-2)
    assert E.esd_target(c, u, 2.0).tolist() == [-1.0, 3.0, 5.0]


def test_partial_mask_masks_valid_positions_only():
    ids, _, lengths = _batch()
    x, pad, masked = E.partial_mask(ids, lengths, mask_id=K, pad_id=K + 1, generator=torch.Generator().manual_seed(0))
    for b in range(6):
        n = int(lengths[b])
        assert pad[b].tolist() == [False] * n + [True] * (T - n)
        assert masked[b, n:].sum() == 0 and 1 <= masked[b, :n].sum() <= n
        assert (x[b, n:] == K + 1).all() and (x[b][masked[b]] == K).all()
        assert torch.equal(x[b][~masked[b] & ~pad[b]], ids[b][~masked[b] & ~pad[b]])


def _measure(model, base, batch, seed=9):
    """MSE of the model's conditional logits to the negative-guidance target, and the mean change of the logits
    along (cond - uncond) of the original, on a fixed masking draw (computed here, not by esd_loss)."""
    ids, cond, lengths = batch
    x, pad, masked = E.partial_mask(ids, lengths, mask_id=K, pad_id=K + 1, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        c, u = base.trans_forward(x, cond, pad), base.trans_forward(x, cond, pad, force_mask=True)
        p = model.trans_forward(x, cond, pad)
    sel = masked[:, None, :].expand_as(p)
    target = u - 1.0 * (c - u)   # by hand, eta = 1
    mse = float(((p - target) ** 2)[sel].mean())
    along = float(((p - c) * (c - u))[sel].sum() / ((c - u) ** 2)[sel].sum())
    return mse, along


def test_training_moves_the_conditional_logits_toward_negative_guidance():
    base = _model()
    batch = _batch()
    before, along0 = _measure(base, base, batch)
    edited, history = E.train_esd(base, lambda: iter([batch]), E.EsdOptions(rank=4, lora_alpha=8, steps=40,
                                                                            lr=1e-2),
                                  generator=torch.Generator().manual_seed(0))
    after, along = _measure(edited, base, batch)
    assert along0 == 0.0
    assert after < 0.5 * before                                     # toward the target
    assert along < -1.0          # against the original guidance direction (exactly -2 at the eta = 1 target)
    assert history[-1]["esd_mse"] < history[0]["esd_mse"]
    assert type(edited) is MaskTransformer                           # a plain merged model
    # the source is untouched
    assert all(torch.equal(v, _model().state_dict()[k]) for k, v in base.state_dict().items())


def test_retain_term_keeps_retain_logits_closer():
    base = _model()
    forget, retain = _batch(1), _batch(2)
    opts = dict(rank=4, lora_alpha=8, steps=30, lr=1e-2)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    free, _ = E.train_esd(base, lambda: iter([forget]), E.EsdOptions(**opts), generator=g())
    kept, hist = E.train_esd(base, lambda: iter([forget]), E.EsdOptions(**opts, retain_weight=5.0),
                             retain_batches=lambda: iter([retain]), generator=g())
    assert "retain_mse" in hist[0]

    def drift(m):
        ids, cond, lengths = retain
        x, pad, masked = E.partial_mask(ids, lengths, mask_id=K, pad_id=K + 1,
                                        generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            d = m.trans_forward(x, cond, pad) - base.trans_forward(x, cond, pad)
        return float((d ** 2)[masked[:, None, :].expand_as(d)].mean())
    assert drift(kept) < drift(free)


@pytest.mark.slow
def test_cli_writes_a_run_the_loader_reads_strictly(tmp_path, synth_root, capsys):
    from helpers_methods import MASK, make_dataset, make_runs

    from src.common.paths import Paths
    from src.models.checkpoint import load_mask_transformer

    data = make_dataset(synth_root, tmp_path / "dataset")
    ck = make_runs(tmp_path / "checkpoints", data)
    flags = ["--checkpoints_dir", str(ck), "--dataset_dir", str(data)]
    argv = ["--dataset_name", "synth", "--concept", "violence", "--trans_name", MASK, "--name", "esd", "--steps", "3",
            "--batch_size", "8", "--rank", "2", "--lora_alpha", "4", "--no_progress", *flags]
    assert E.main(argv) == 0
    assert "ESD: 3 steps" in capsys.readouterr().out
    assert E.main(argv) == 2                                       # exists without --force
    paths = Paths.default(checkpoints_dir=str(ck), dataset_dir=str(data))
    edited, _, d = load_mask_transformer(paths, "synth", "esd")    # strict
    source, _, _ = load_mask_transformer(paths, "synth", MASK)
    assert any(not torch.equal(v, source.state_dict()[k]) for k, v in edited.state_dict().items())
    assert (d / "esd.json").is_file()
    capsys.readouterr()
    assert E.main(["--trans_name", MASK, "--name", "esd2", "--eta", "0", *flags]) == 2   # eta must be > 0
    assert "--eta must be > 0" in capsys.readouterr().err and not (ck / "synth" / "esd2").exists()
