"""Code collection: batched equals per-sample, crops explicit and reproducible, cache hit the second time."""
from __future__ import annotations

import numpy as np
import pytest
from helpers_methods import tiny_vq_config


@pytest.fixture(scope="module")
def vq():
    import torch

    from src.models.momask import build_vq

    torch.manual_seed(0)
    m = build_vq(tiny_vq_config()).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in m.quantizer.layers:
            layer.codebook.copy_(torch.randn(layer.codebook.shape, generator=g))
    return m


@pytest.fixture(scope="module")
def folder(synth_root):
    from src.data.humanml3d import HumanML3DFolder

    return HumanML3DFolder(synth_root, "synth")


def test_crop_windows():
    from src.methods.collect import CropSettings, crop_windows

    assert crop_windows(50, motion_key="a", settings=CropSettings()) == [(0, 48)]
    assert crop_windows(300, motion_key="a", settings=CropSettings()) == [(0, 196)]
    assert crop_windows(3, motion_key="a", settings=CropSettings()) == []
    s = CropSettings(n_crops=20, seed=1)
    w = crop_windows(97, motion_key="a", settings=s)
    assert len(w) == 20 and w == crop_windows(97, motion_key="a", settings=s)
    assert all(n in (96, 92) and 0 <= st <= 97 - n for st, n in w)
    assert w != crop_windows(97, motion_key="b", settings=s)


def test_batched_equals_per_sample(vq):
    import torch

    from src.methods.collect import encode_windows

    rng = np.random.default_rng(0)
    wins = [rng.standard_normal((n, 263)).astype(np.float32) for n in (40, 48, 40, 64, 48, 40)]
    batched = encode_windows(vq, wins, batch_size=4)
    for w, c in zip(wins, batched):
        with torch.no_grad():
            single = vq.encode(torch.from_numpy(w)[None])[0][0].numpy()
        assert c.shape == (len(w) // 4, 2) and np.array_equal(c, single)


def test_collect_cache_hit_and_subset(vq, folder, tmp_path):
    from src.methods.collect import CropSettings, collect_codes

    ids = folder.ids("train")[:12]
    mean, std = folder.mean_std()
    kw = {"mean": mean, "std": std, "settings": CropSettings(n_crops=2, per_caption=True), "cache_dir": tmp_path}
    t1, hit1 = collect_codes(vq, folder, ids, **kw)
    t2, hit2 = collect_codes(vq, folder, ids, **kw)
    assert (hit1, hit2) == (False, True) and len(list(tmp_path.glob("*.npz"))) == 1
    assert np.array_equal(t1.codes, t2.codes) and t1.ids == t2.ids
    caps = sum(len(folder.captions(i)) for i in ids)
    assert t1.num_rows == 2 * caps and t1.num_motions == 12
    _, hit3 = collect_codes(vq, folder, ids, **{**kw, "settings": CropSettings(n_crops=1)})
    assert hit3 is False  # other crop settings: another key
    sub = t1.subset(ids[:3])
    assert set(sub.motion.tolist()) == {0, 1, 2}
    codes, mask = sub.layer(0)
    assert mask.sum(axis=1).tolist() == sub.n_valid.tolist() and (codes[mask] >= 0).all()
    assert sub.counts(0, nb_code=32).max() <= sub.num_rows
