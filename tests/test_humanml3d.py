"""HumanML3D folder format: write -> read round trip, the released files, and one-line errors naming the file."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from src.common.errors import HmuError
from src.data.humanml3d import SPLITS, Caption, HumanML3DFolder, parse_caption_line, read_captions, read_split
from src.common.datasets import get_spec

SPEC = get_spec("HumanML3D")
LINE = ("a man kicks something or someone with his left leg.#a/DET man/NOUN kick/VERB something/PRON or/CCONJ "
        "someone/PRON with/ADP his/DET left/ADJ leg/NOUN#0.0#0.0")


def _caps():
    return [parse_caption_line(LINE),
            Caption("a person walks forward", ("a/DET", "person/NOUN", "walk/VERB", "forward/ADV"), 1.5, 4.25)]


@pytest.fixture
def folder(tmp_path):
    """A two-motion folder written through the writers."""
    rng = np.random.default_rng(0)
    d = HumanML3DFolder(tmp_path / "HumanML3D", SPEC, create=True)
    data = {}
    for mid, t in (("000001", 12), ("M000001", 9)):
        f = rng.normal(size=(t, SPEC.dim_pose)).astype(np.float32)
        j = rng.normal(size=(t, SPEC.joints_num, 3)).astype(np.float32)
        d.write_motion(mid, f, j)
        d.write_captions(mid, _caps())
        data[mid] = (f, j)
    for s in SPLITS:
        d.write_split(s, list(data))
    d.write_mean_std(np.zeros(SPEC.dim_pose, np.float32), np.ones(SPEC.dim_pose, np.float32))
    return d, data


def test_round_trip(folder):
    d, data = folder
    r = HumanML3DFolder(d.root, "HumanML3D")
    for s in SPLITS:
        assert r.ids(s) == list(data)
    for mid, (f, j) in data.items():
        np.testing.assert_array_equal(r.motion(mid), f)
        np.testing.assert_array_equal(r.joints(mid), j)
        assert r.motion(mid).dtype == np.float32
        assert r.captions(mid) == _caps()
    mean, std = r.mean_std()
    assert mean.shape == std.shape == (SPEC.dim_pose,)
    # the on-disk text is upstream's line format, byte for byte for a whole-motion caption
    lines = d.text_path("000001").read_text(encoding="utf-8").splitlines()
    assert lines[0] == LINE and lines[1].endswith("#1.5#4.25")
    assert d.split_path("all").read_text() == "000001\nM000001\n"
    assert not list(d.root.rglob(".*.tmp"))  # atomic writers leave no temporaries


def test_without_spec_any_feature_size(tmp_path):
    d = HumanML3DFolder(tmp_path, create=True)
    d.write_motion("a", np.ones((3, 5), np.float32), np.ones((3, 4, 3), np.float32))
    assert d.motion("a").shape == (3, 5) and d.joints("a").shape == (3, 4, 3)
    d.write_mean_std(np.zeros(5), np.ones(5))
    assert d.mean_std()[1].shape == (5,)
    with pytest.raises(HmuError, match="Std"):
        d.write_mean_std(np.zeros(5), np.ones(4))


def test_caption_fields():
    c = parse_caption_line(LINE)
    assert c.text.startswith("a man kicks") and c.caption == c.text
    assert c.tokens[:2] == ("a/DET", "man/NOUN") and len(c.tokens) == 10
    assert c.whole and (c.start, c.end) == (0.0, 0.0)
    assert parse_caption_line(c.to_line()) == c


def test_nan_tags_mean_whole_motion():
    c = parse_caption_line("a person jumps#a/DET person/NOUN jump/VERB#nan#nan")
    assert (c.start, c.end) == (0.0, 0.0) and c.whole


def test_reads_released_files(fixtures, tmp_path):
    src = fixtures / "humanml3d"
    root = tmp_path / "HumanML3D"
    for sub in ("new_joint_vecs", "new_joints"):
        shutil.copytree(src / sub, root / sub)
    for name in ("Mean.npy", "Std.npy", *(f"{s}.txt" for s in SPLITS)):
        shutil.copy(src / name, root / name)
    d = HumanML3DFolder(root, SPEC)
    m = d.motion("012314")
    assert m.shape == np.load(src / "new_joint_vecs" / "012314.npy").shape
    assert d.joints("012314").shape[1:] == (SPEC.joints_num, 3)
    mean, _std = d.mean_std()
    assert mean.shape == (m.shape[1],)
    assert len(read_split(root / "all.txt")) == len((src / "all.txt").read_text().split())
    with pytest.raises(HmuError, match="has no file"):  # only one motion of the released split is here
        d.ids("train")
    d.write_captions("012314", _caps())
    d.write_split("one", ["012314"])
    assert d.ids("one") == ["012314"]


# ---------------------------------------------------------------- bad input -> one-line HmuError naming the file

def _one_line_naming(exc: pytest.ExceptionInfo, path) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg, msg


def test_missing_folder(tmp_path):
    with pytest.raises(HmuError) as e:
        HumanML3DFolder(tmp_path / "nope", SPEC)
    _one_line_naming(e, tmp_path / "nope")


@pytest.mark.parametrize("bad", ["wrong_dim", "nan", "inf", "1d", "not_npy"])
def test_bad_motion(folder, bad):
    d, _ = folder
    p = d.motion_path("000001")
    if bad == "not_npy":
        p.write_bytes(b"not a numpy file")
    else:
        a = {"wrong_dim": np.zeros((5, SPEC.dim_pose - 1)), "1d": np.zeros(SPEC.dim_pose)}.get(
            bad, np.zeros((5, SPEC.dim_pose)))
        if bad in ("nan", "inf"):
            a[2, 7] = np.nan if bad == "nan" else np.inf
        np.save(p, a.astype(np.float32))
    with pytest.raises(HmuError) as e:
        d.motion("000001")
    _one_line_naming(e, p)


def test_bad_joints(folder):
    d, _ = folder
    p = d.joints_path("000001")
    np.save(p, np.zeros((5, SPEC.joints_num - 1, 3), np.float32))
    with pytest.raises(HmuError) as e:
        d.joints("000001")
    _one_line_naming(e, p)


@pytest.mark.parametrize("line", [
    "only a caption",
    "a caption#a/DET caption/NOUN#0.0",                       # 3 fields
    "a caption#a/DET caption/NOUN#0.0#0.0#extra",             # 5 fields
    "a caption#a/DET caption/NOUN#zero#0.0",                  # from not a number
    "a caption#a caption/NOUN#0.0#0.0",                       # token without POS
    "#a/DET#0.0#0.0",                                         # empty caption
    "a caption##0.0#0.0",                                     # no tokens
])
def test_malformed_caption_line(folder, line):
    d, _ = folder
    p = d.text_path("000001")
    p.write_text(LINE + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(HmuError, match="malformed caption line 2") as e:
        d.captions("000001")
    _one_line_naming(e, p)


def test_empty_texts_file(folder):
    d, _ = folder
    p = d.text_path("000001")
    p.write_text("\n", encoding="utf-8")
    with pytest.raises(HmuError) as e:
        d.captions("000001")
    _one_line_naming(e, p)


@pytest.mark.parametrize("missing", ["motion", "text"])
def test_split_id_without_files(folder, missing):
    d, _ = folder
    p = d.motion_path("M000001") if missing == "motion" else d.text_path("M000001")
    p.unlink()
    with pytest.raises(HmuError) as e:
        d.ids("test")
    _one_line_naming(e, p)
    assert "M000001" in str(e.value)


def test_empty_and_missing_split(folder):
    d, _ = folder
    d.split_path("val").write_text("\n\n", encoding="utf-8")
    with pytest.raises(HmuError, match="empty") as e:
        d.ids("val")
    _one_line_naming(e, d.split_path("val"))
    d.split_path("train").unlink()
    with pytest.raises(HmuError, match="not found") as e:
        d.ids("train")
    _one_line_naming(e, d.split_path("train"))


def test_bad_mean_std(folder):
    d, _ = folder
    p = d.root / "Std.npy"
    np.save(p, np.ones(SPEC.dim_pose + 1, np.float32))
    with pytest.raises(HmuError) as e:
        d.mean_std()
    _one_line_naming(e, p)


def test_writers_refuse_bad_data(folder):
    d, _ = folder
    with pytest.raises(HmuError, match="000009"):
        d.write_motion("000009", np.zeros((4, SPEC.dim_pose + 2), np.float32))
    assert not d.motion_path("000009").exists()
    with pytest.raises(HmuError, match="malformed"):
        d.write_captions("000009", [Caption("has # inside", ("a/DET",))])
    assert not d.text_path("000009").exists()
    with pytest.raises(HmuError, match="empty"):
        d.write_split("val", [])


def test_read_captions_missing_file(tmp_path):
    with pytest.raises(HmuError) as e:
        read_captions(tmp_path / "x.txt")
    _one_line_naming(e, tmp_path / "x.txt")
