"""Torch datasets on a tiny HumanML3D-format folder written in tmp (5 features instead of 263)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src.common.errors import HmuError
from src.data.datasets import MotionWindowDataset, Text2MotionDataset, collate, resolve_ids

D = 5
LENGTHS = {"m1": 12, "m2": 7, "m3": 26, "m4": 3}
TEXTS = {
    "m1": ["a person walks.#a/DET person/NOUN walk/VERB#0.0#0.0", "someone walks.#someone/PRON walk/VERB#0.0#0.0"],
    "m2": ["a person jumps.#a/DET person/NOUN jump/VERB#0.0#0.0"],
    # m3: one whole caption and two sub-clips (frames 0..10 and 10..24 at fps 20), plus one too short to keep.
    "m3": ["a man runs then kicks.#a/DET man/NOUN run/VERB then/ADV kick/VERB#0.0#0.0",
           "a man runs.#a/DET man/NOUN run/VERB#0.0#0.5",
           "a man kicks.#a/DET man/NOUN kick/VERB#0.5#1.2",
           "a man stops.#a/DET man/NOUN stop/VERB#1.2#1.3"],
    "m4": ["tiny.#tiny/ADJ#0.0#0.0"],
}


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "toy"
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    rng = np.random.default_rng(0)
    for mid, t in LENGTHS.items():
        np.save(root / "new_joint_vecs" / f"{mid}.npy", rng.normal(size=(t, D)).astype(np.float32))
        (root / "texts" / f"{mid}.txt").write_text("\n".join(TEXTS[mid]) + "\n")
    (root / "train.txt").write_text("m1\nm2\n\nm3\nm4\n")
    (root / "kw_splits").mkdir()
    (root / "kw_splits" / "train-w-kick.txt").write_text("m3\n")
    return root


def _stats():
    return np.full(D, 0.5, np.float32), np.full(D, 2.0, np.float32)


def _raw(folder: Path, mid: str) -> np.ndarray:
    return np.load(folder / "new_joint_vecs" / f"{mid}.npy")


def test_resolve_ids(folder):
    assert resolve_ids(folder, "train") == ["m1", "m2", "m3", "m4"]
    assert resolve_ids(folder, "kw_splits/train-w-kick") == ["m3"]
    assert resolve_ids(folder, folder / "kw_splits" / "train-w-kick.txt") == ["m3"]
    assert resolve_ids(folder, ["m2"]) == ["m2"]
    with pytest.raises(HmuError, match="split list not found"):
        resolve_ids(folder, "nope")
    (folder / "empty.txt").write_text("\n")
    with pytest.raises(HmuError, match="is empty"):
        resolve_ids(folder, "empty")


def test_window_dataset_covers_every_start_once(folder):
    mean, std = _stats()
    ds = MotionWindowDataset(folder, "train", window=7, mean=mean, std=std)
    assert ds.ids == ["m1", "m2", "m3"]  # m4 is shorter than the window
    assert len(ds) == (12 - 7 + 1) + (7 - 7 + 1) + (26 - 7 + 1)
    seen = [ds.locate(i) for i in range(len(ds))]
    assert len(set(seen)) == len(ds)
    for i in (0, 5, 6, 7, len(ds) - 1):
        k, s = ds.locate(i)
        want = (_raw(folder, ds.ids[k])[s:s + 7] - mean) / std
        np.testing.assert_allclose(ds[i], want, rtol=1e-6, atol=1e-6)
        assert ds[i].shape == (7, D) and ds[i].dtype == np.float32
    with pytest.raises(IndexError):
        ds.locate(len(ds))


def test_window_dataset_errors(folder):
    mean, std = _stats()
    with pytest.raises(HmuError, match="has 100 frames or more"):
        MotionWindowDataset(folder, "train", window=100, mean=mean, std=std)
    with pytest.raises(HmuError, match="mean/std have 3/3 features"):
        MotionWindowDataset(folder, "train", window=4, mean=np.zeros(3), std=np.ones(3))
    with pytest.raises(HmuError, match="motion file not found"):
        MotionWindowDataset(folder, ["m1", "zz"], window=4, mean=mean, std=std)


def _t2m(folder, split="train", **kw):
    mean, std = _stats()
    args = {"mean": mean, "std": std, "max_motion_length": 24, "unit_length": 4, "min_motion_length": 8, "fps": 20}
    args.update(kw)
    return Text2MotionDataset(folder, split, **args)


def test_t2m_entries_and_subclips(folder):
    ds = _t2m(folder)
    # m2 (7) and m4 (3) are too short (< 8); m3 (26 < 24 + 4) stays, its sub-clips 0:10 and 10:24 come first
    # (upstream order) and 24:26 is too short.
    assert ds.names == ["m1", "A_m3", "B_m3", "m3"]
    np.testing.assert_array_equal(ds.entries[1][0], _raw(folder, "m3")[0:10])
    np.testing.assert_array_equal(ds.entries[2][0], _raw(folder, "m3")[10:24])
    assert [c for c, _ in ds.entries[0][1]] == ["a person walks.", "someone walks."]
    assert ds.entries[2][1] == [("a man kicks.", ["a/DET", "man/NOUN", "kick/VERB"])]


def test_t2m_item_is_a_normalised_padded_crop(folder):
    ds = _t2m(folder)
    mean, std = _stats()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            caption, tokens, motion, length = ds[i]
            src, texts = ds.entries[i]
            assert (caption, tokens) in texts
            assert motion.shape == (24, D) and motion.dtype == np.float32
            assert length % 4 == 0 and length in (len(src) // 4 * 4, (len(src) // 4 - 1) * 4)
            assert not motion[length:].any()
            raw = motion[:length] * std + mean
            starts = [s for s in range(len(src) - length + 1) if np.allclose(src[s:s + length], raw, atol=1e-5)]
            assert starts, "the item is not a contiguous crop of its motion"


def test_t2m_rng_is_explicit(folder):
    ds = _t2m(folder, seed=3)
    other = _t2m(folder, seed=3)
    for i in range(len(ds)):
        a, b = ds[i], other[i]
        assert a[0] == b[0] and a[3] == b[3] and np.array_equal(a[2], b[2])
    draws = []
    for epoch in range(300):
        ds.set_epoch(epoch)
        draws.append((ds[0][0], ds[0][3]))
    captions = {c for c, _ in draws}
    assert captions == {"a person walks.", "someone walks."}
    double = sum(n == 8 for _, n in draws) / len(draws)  # m1: 12 frames -> 12 (single) or 8 (double)
    assert 0.2 < double < 0.47


def test_t2m_kw_split_file_and_errors(folder):
    ds = _t2m(folder, "kw_splits/train-w-kick")
    assert ds.names == ["A_m3", "B_m3", "m3"]
    # A motion too long as a whole is dropped with its sub-clips, as upstream.
    assert _t2m(folder, ["m1", "m3"], max_motion_length=20).names == ["m1"]
    with pytest.raises(HmuError, match=r"length in \[8, 28\)"):
        _t2m(folder, ["m2", "m4"])
    (folder / "texts" / "m1.txt").write_text("no tags here\n")
    with pytest.raises(HmuError, match="malformed caption line 1 in .*m1.txt"):
        _t2m(folder)


def test_collate_sorts_longest_first_and_pads():
    batch = [("a", ["a/DET"], np.ones((3, D), np.float32), 3), ("b", ["b/X", "c/Y"], np.ones((5, D), np.float32), 5)]
    captions, tokens, motions, lengths = collate(batch)
    assert captions == ["b", "a"] and tokens == [["b/X", "c/Y"], ["a/DET"]]
    assert motions.shape == (2, 5, D) and motions.dtype == torch.float32
    assert lengths.tolist() == [5, 3] and lengths.dtype == torch.long
    assert motions[1, 3:].abs().sum() == 0 and motions[1, :3].eq(1).all()


def test_dataloader_workers_do_not_change_items(folder):
    ds = _t2m(folder, seed=1)
    ds.set_epoch(2)
    loads = [list(torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate, num_workers=w)) for w in (0, 2)]
    for a, b in zip(*loads):
        assert a[0] == b[0] and torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])
