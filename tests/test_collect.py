"""Code collection: batched equals per-sample, crops explicit and reproducible, cache hit the second time."""
from __future__ import annotations

import numpy as np
import pytest
from helpers_methods import seeded_tiny_vq


@pytest.fixture(scope="module")
def vq():
    return seeded_tiny_vq()


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


class _SecondsVQ:
    """Stand-in VQ: the code of each 4-frame unit is feature 0 of its first frame, as an integer (padding -> 0)."""

    downsample = 4

    def __init__(self):
        import torch

        self._p = torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        return iter([self._p])

    def encode(self, x):
        codes = x[:, ::4, :1].round().long()  # (B, T/4, 1)
        return codes, None


def test_upstream_collection_matches_an_independent_count(tmp_path, monkeypatch):
    """Segments by #from#to at 20 fps, < 40 or >= 200 frames dropped, crops zero-padded to 196 with padding counted.

    Feature 0 of frame t is 1 + t // 20 (its second, from 1), so a row's codes say which frames it came from; code 0
    can only come from the zero padding. The expectation below is written from upstream's loader rules, not the code.
    """
    from src.data.humanml3d import HumanML3DFolder
    from src.methods.collect import CropSettings, collect_codes

    root = tmp_path / "toy"
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    motions = {  # id: (frames, [(from_s, to_s), ...] one caption line each)
        "short": (39, [(0, 0)]),                  # dropped: < 40 frames
        "long": (200, [(0, 0), (1, 4)]),          # dropped whole (>= 200), its short segment too
        "whole": (150, [(0, 0), (0, 0)]),         # 2 items, each the whole motion
        "seg": (190, [(0, 0), (2.0, 5.0), (0, 1.5), (8.0, 0)]),  # whole, 40..100, 0..30 (dropped), 160..190 (dropped)
        "late": (199, [(3.0, 0)]),                # 60..199 (139 frames); 199 < 200 kept
        "twin": (120, [(0, 3.0), (3.0, 6.0)]),    # 0..60 and 60..120: equal lengths, other frames
    }
    for mid, (n, caps) in motions.items():
        x = np.zeros((n, 5), np.float32)
        x[:, 0] = 1 + np.arange(n) // 20
        np.save(root / "new_joint_vecs" / f"{mid}.npy", x)
        (root / "texts" / f"{mid}.txt").write_text(
            "".join(f"a person walks#a/DET person/NOUN walk/VERB#{a}#{b}\n" for a, b in caps))
    folder = HumanML3DFolder(root)
    settings = CropSettings.upstream(seed=3, n_crops=20)
    import src.methods.collect as C

    encoded = []
    real_encode = C.encode_windows
    monkeypatch.setattr(C, "encode_windows", lambda vq, w, **k: encoded.append(len(w)) or real_encode(vq, w, **k))
    table, _ = collect_codes(_SecondsVQ(), folder, list(motions), mean=np.zeros(5), std=np.ones(5),
                             settings=settings, cache_dir=None)
    # identical windows are encoded once: the distinct (motion, first frame, length) of the kept items' crops
    distinct = {(mid, lo + st, n) for mid, key, lo, hi in (("whole", "whole%0", 0, 150), ("whole", "whole%1", 0, 150),
                                                          ("seg", "seg%0", 0, 190), ("seg", "seg%1", 40, 100),
                                                          ("late", "late%0", 60, 199), ("twin", "twin%0", 0, 60),
                                                          ("twin", "twin%1", 60, 120))
                for st, n in C.crop_windows(hi - lo, motion_key=key, settings=settings)}
    assert encoded == [len(distinct)] and len(distinct) < 20 * 7

    expected_items = {"whole": [(0, 150), (0, 150)], "seg": [(0, 190), (40, 100)], "late": [(60, 199)],
                      "twin": [(0, 60), (60, 120)]}
    rows_of = {mid: np.flatnonzero(np.asarray(table.ids)[table.motion] == mid) for mid in motions}
    assert {m: len(r) for m, r in rows_of.items() if len(r)} == {m: 20 * len(v) for m, v in expected_items.items()}
    assert (table.n_valid == 49).all() and table.codes.shape[1] == 49  # 196 frames / 4, padding included
    codes, mask = table.layer(0)
    assert mask.all()
    for mid, items in expected_items.items():
        seconds = [set(range(1 + a // 20, 1 + (b - 1) // 20 + 1)) for a, b in items]
        for r in rows_of[mid]:
            row = codes[r]
            n = int((row > 0).sum()) * 4  # frames of the crop
            assert 0 in row  # every kept item is < 196 frames long: padded, and the padding's code counted
            # the crop is one of upstream's two lengths of SOME item of this motion, inside that item's seconds
            ok = [(n in (b - a) // 4 * 4 - np.array([0, 4])) and set(row[row > 0].tolist()) <= s
                  for (a, b), s in zip(items, seconds)]
            assert any(ok), (mid, n, sorted(set(row.tolist())))
    # the 40..100 segment of 'seg' (seconds 3..5) is used: some rows never reach second 6
    assert any(codes[r].max() <= 5 for r in rows_of["seg"])
    # 'twin': a crop of the second segment (seconds 4..6) never takes the codes of the first's crop at the same offset
    assert sum(int(codes[r].max() >= 4) for r in rows_of["twin"]) == 20
    # both crop lengths occur (the 1/3 'double' draw), e.g. for 'late' (139 frames -> 136 or 132)
    lens = {int((codes[r] > 0).sum()) * 4 for r in rows_of["late"]}
    assert lens == {136, 132}
