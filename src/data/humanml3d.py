"""The HumanML3D folder format: read and write it exactly, with one-line errors naming the file at fault.

Layout of ``dataset/<name>/``::

    new_joint_vecs/<id>.npy   (T, dim_pose) float32 features (src/data/motion.py)
    new_joints/<id>.npy       (T, joints_num, 3) float32 joint positions
    texts/<id>.txt            one caption a line: ``caption#word/POS word/POS ...#from#to`` (seconds; 0.0#0.0 = whole)
    {train,val,test,train_val,all}.txt   split lists, one id a line
    Mean.npy, Std.npy         (dim_pose,) float32 normalisation statistics
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.common.errors import HmuError
from src.common.io import atomic_save_npy, atomic_write_text
from src.common.datasets import DatasetSpec, get_spec

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "train_val", "all")


# --------------------------------------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Caption:
    """One line of ``texts/<id>.txt``. ``start``/``end`` in seconds; both 0.0 means the whole motion."""

    text: str
    tokens: tuple[str, ...]    # "word/POS"
    start: float = 0.0
    end: float = 0.0

    @property
    def caption(self) -> str:  # upstream's dict key, used by src/data/datasets.py
        return self.text

    @property
    def whole(self) -> bool:
        return self.start == 0.0 and self.end == 0.0

    def to_line(self) -> str:
        return f"{self.text}#{' '.join(self.tokens)}#{float(self.start)!r}#{float(self.end)!r}"


def parse_caption_line(line: str, where: str = "caption") -> Caption:
    """Parse ``caption#tokens#from#to``. A ``nan`` from/to reads as 0.0 (upstream's rule). HmuError naming ``where``."""
    parts = line.strip().split("#")

    def bad(why: str) -> HmuError:
        return HmuError(f"malformed caption line {where}: {why} (want caption#word/POS ...#from#to)")

    if len(parts) != 4:
        raise bad(f"{len(parts)} '#'-separated fields")
    text, toks, frm, to = parts
    if not text.strip():
        raise bad("empty caption")
    tokens = tuple(toks.split(" ")) if toks else ()
    if not tokens or any("/" not in t for t in tokens):
        raise bad("tokens must be word/POS separated by single spaces")
    try:
        start, end = float(frm), float(to)
    except ValueError:
        raise bad(f"from/to '{frm}'/'{to}' are not numbers") from None
    start = 0.0 if math.isnan(start) else start
    end = 0.0 if math.isnan(end) else end
    if math.isinf(start) or math.isinf(end):
        raise bad(f"infinite time {frm}..{to}")
    if start < 0 or end < 0:  # one rule for every reader (issue 26): never dropped here and read as 0 there
        raise bad(f"negative time {frm}..{to} (from/to are seconds from the motion's start, 0.0#0.0 = whole motion)")
    return Caption(text, tokens, start, end)


def read_text(path: str | os.PathLike, what: str = "texts file") -> str:
    """A dataset text file (captions, split lists) decoded as UTF-8: the one way every step reads them. A file that
    is not UTF-8 (e.g. latin-1) is a one-line HmuError naming it, in training, evaluation and the split step alike."""
    p = Path(path)
    data = p.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HmuError(f"{what} {p} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
                       f"save it as UTF-8") from None


def read_captions(path: str | os.PathLike) -> list[Caption]:
    """All captions of a texts file (blank lines skipped); HmuError naming the file and line for a malformed one."""
    p = Path(path)
    if not p.is_file():
        raise HmuError(f"texts file not found: {p}")
    lines = read_text(p).splitlines()
    caps = [parse_caption_line(ln, f"{n} in {p}") for n, ln in enumerate(lines, 1) if ln.strip()]
    if not caps:
        raise HmuError(f"texts file {p} has no captions")
    return caps


class SegmentAudit:
    """Frames of segment captions (``#from#to`` not ``0.0#0.0``), counting those that cannot be used as written; one
    warning with the counts at the end (:meth:`report`), so no caption vanishes silently."""

    def __init__(self, where: str):
        self.where = where
        self.total = 0
        self.reversed: list[str] = []
        self.past_end: list[str] = []
        self.cut: list[str] = []

    def frames(self, mid: str, cap: Caption, n_frames: int, fps: int) -> tuple[int, int] | None:
        """(start, end) frames (upstream ``int(seconds * fps)``) of a segment caption of motion ``mid``; None for a
        reversed or empty ``#from#to`` or one that starts past the motion's end; an end past it is cut there."""
        self.total += 1
        f0, f1 = int(cap.start * fps), int(cap.end * fps)
        if f1 <= f0:
            self.reversed.append(f"{mid} {cap.start:g}#{cap.end:g}")
            return None
        if f0 >= n_frames:
            self.past_end.append(f"{mid} {cap.start:g}#{cap.end:g}s of {n_frames} frames")
            return None
        if f1 > n_frames:
            self.cut.append(mid)
            f1 = n_frames
        return f0, f1

    def report(self) -> None:
        if self.reversed or self.past_end:
            parts = []
            if self.reversed:
                parts.append(f"{len(self.reversed)} with #from#to reversed or empty (e.g. {self.reversed[0]})")
            if self.past_end:
                parts.append(f"{len(self.past_end)} starting past the end of their motion (e.g. {self.past_end[0]})")
            log.warning("%s: %d of %d segment captions left out: %s", self.where,
                        len(self.reversed) + len(self.past_end), self.total, "; ".join(parts))
        if self.cut:
            log.warning("%s: %d of %d segment captions end past their motion (e.g. %s): cut at its last frame",
                        self.where, len(self.cut), self.total, self.cut[0])


def write_captions(path: str | os.PathLike, captions: Iterable[Caption]) -> None:
    lines = []
    for c in captions:
        line = c.to_line()
        parse_caption_line(line, f"to be written to {path}")  # never write what cannot be read back
        lines.append(line)
    atomic_write_text(path, "".join(ln + "\n" for ln in lines))


# --------------------------------------------------------------------------------------------------------------------
# Split lists, arrays
# --------------------------------------------------------------------------------------------------------------------

def read_split(path: str | os.PathLike) -> list[str]:
    """Ids of a split list, blank lines skipped. A repeated id is kept once, with a warning giving the counts (it
    would otherwise weigh several times in training and in FID); a train list holding test ids is warned about."""
    p = Path(path)
    if not p.is_file():
        raise HmuError(f"split list not found: {p}")
    lines = [s.strip() for s in read_text(p, "split list").splitlines() if s.strip()]
    if not lines:
        raise HmuError(f"split list {p} is empty")
    ids = list(dict.fromkeys(lines))
    if len(ids) < len(lines):
        from collections import Counter

        rep = sum(1 for c in Counter(lines).values() if c > 1)
        log.warning("split list %s repeats %d id%s (%d lines for %d ids): each is used once", p, rep,
                    "" if rep == 1 else "s", len(lines), len(ids))
    _warn_train_test_overlap(p, ids)
    return ids


def _warn_train_test_overlap(p: Path, ids: list[str]) -> None:
    """Warn (once per file pair) when a training list and the folder's test list share ids."""
    stem = p.stem
    if stem.startswith("train"):
        other = p.parent / "test.txt"
    elif stem.startswith("test") or p.parent.name == "kw_splits" and "test" in stem:
        other = (p.parent.parent if p.parent.name == "kw_splits" else p.parent) / "train.txt"
    else:
        return
    key = frozenset((str(p.resolve()), str(other.resolve())))
    if key in _OVERLAP_WARNED or not other.is_file() or other == p:
        return
    _OVERLAP_WARNED.add(key)
    try:
        others = {s.strip() for s in read_text(other, "split list").splitlines() if s.strip()}
    except HmuError:
        return
    both = [i for i in ids if i in others]
    if both:
        train_p, test_p = (p, other) if stem.startswith("train") else (other, p)
        log.warning("%d id%s of %s %s also in %s (e.g. %s): test results on them measure memorisation", len(both),
                    "" if len(both) == 1 else "s", test_p, "is" if len(both) == 1 else "are", train_p, both[0])


_OVERLAP_WARNED: set[frozenset] = set()


def split_file(root: str | os.PathLike, split: str | os.PathLike) -> Path:
    """The id file a split names, ``.txt`` optional: a name or path relative to the dataset folder ``root``
    (``test``, ``kw_splits/test-w-violence``), an absolute path, a path relative to the current folder, or upstream's
    ``dataset/<folder>/...`` form (relative to the repository), read inside ``root`` whatever the datasets root is.
    The first that exists wins; if none does, the first candidate (the loader names it in its error)."""
    root, p = Path(root), Path(split)
    if p.is_absolute():
        bases = [p]
    else:
        bases = [root / p, p]
        if len(p.parts) > 2 and p.parts[0] == "dataset":
            bases.append(root / Path(*p.parts[2:]))
    cands = [c for b in bases for c in ((b,) if b.suffix == ".txt" else (b.with_name(b.name + ".txt"), b))]
    return next((c for c in cands if c.is_file()), cands[0])


def write_split(path: str | os.PathLike, ids: Sequence[str]) -> None:
    if not ids:
        raise HmuError(f"refusing to write an empty split list {path}")
    atomic_write_text(path, "".join(f"{i}\n" for i in ids))


def _load_npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise HmuError(f"{what} file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise HmuError(f"{what} file {path} is not a readable .npy ({type(exc).__name__})") from None


def _check_array(a: np.ndarray, shape: tuple, path: Path | str, what: str) -> np.ndarray:
    """``shape`` uses None for free sizes."""
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = "(" + ", ".join("T" if s is None else str(s) for s in shape) + ")"
        raise HmuError(f"{what} {path} has shape {a.shape}, expected {want}")
    if not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
        raise HmuError(f"{what} {path} contains NaN/inf or is not a float array")
    return a.astype(np.float32, copy=False)


def read_motion(path: str | os.PathLike, *, dim_pose: int | None) -> np.ndarray:
    """(T, dim_pose) float32 features (dim_pose None: any); HmuError naming the file for a wrong size, NaN/inf or
    no frames."""
    p = Path(path)
    m = _check_array(_load_npy(p, "motion"), (None, dim_pose), p, "motion")
    if len(m) == 0:
        raise HmuError(f"motion {p} has no frames")
    return m


def read_joints(path: str | os.PathLike, *, joints_num: int | None) -> np.ndarray:
    p = Path(path)
    return _check_array(_load_npy(p, "joints"), (None, joints_num, 3), p, "joints")


# --------------------------------------------------------------------------------------------------------------------
# The folder
# --------------------------------------------------------------------------------------------------------------------

class HumanML3DFolder:
    """Reader/writer for one dataset folder.

    With a ``spec`` (a DatasetSpec or its name) every array's size is checked against it; without one, any
    ``(T, D)`` features and ``(T, J, 3)`` joints are accepted (still finite and float), which toy folders use.
    """

    def __init__(self, root: str | os.PathLike, spec: DatasetSpec | str | None = None, *, create: bool = False):
        self.root = Path(root)
        self.spec = get_spec(spec) if isinstance(spec, str) else spec
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        if not self.root.is_dir():
            raise HmuError(f"dataset folder not found: {self.root}")

    @property
    def _dim(self) -> int | None:
        return self.spec.dim_pose if self.spec else None

    @property
    def _nj(self) -> int | None:
        return self.spec.joints_num if self.spec else None

    # paths
    def motion_path(self, mid: str) -> Path:
        return self.root / "new_joint_vecs" / f"{mid}.npy"

    def joints_path(self, mid: str) -> Path:
        return self.root / "new_joints" / f"{mid}.npy"

    def text_path(self, mid: str) -> Path:
        return self.root / "texts" / f"{mid}.txt"

    def split_path(self, split: str) -> Path:
        return self.root / f"{split}.txt"

    # readers
    def ids(self, split: str = "all") -> list[str]:
        """Ids of a split list; HmuError for a missing/empty list or an id without its motion or texts file."""
        path = self.split_path(split)
        ids = read_split(path)
        for mid in ids:
            for f in (self.motion_path(mid), self.text_path(mid)):
                if not f.is_file():
                    raise HmuError(f"id '{mid}' in split list {path} has no file {f}")
        return ids

    def motion(self, mid: str) -> np.ndarray:
        """(T, dim_pose) float32 un-normalised features."""
        return read_motion(self.motion_path(mid), dim_pose=self._dim)

    def joints(self, mid: str) -> np.ndarray:
        """(T, joints_num, 3) float32 joint positions."""
        return read_joints(self.joints_path(mid), joints_num=self._nj)

    def captions(self, mid: str) -> list[Caption]:
        return read_captions(self.text_path(mid))

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """(Mean, Std), each (dim_pose,) float32; Std must be positive."""
        mp, sp = self.root / "Mean.npy", self.root / "Std.npy"
        mean = _check_array(_load_npy(mp, "Mean"), (self._dim,), mp, "Mean")
        std = _check_array(_load_npy(sp, "Std"), mean.shape, sp, "Std")
        from src.common.validate import check_mean_std

        check_mean_std(mean, std, mean_path=mp, std_path=sp)
        return mean, std

    # writers (atomic)
    def write_motion(self, mid: str, features: np.ndarray, joints: np.ndarray | None = None) -> None:
        """Save features (and joints when given); both are checked before either is written."""
        f = _check_array(np.asarray(features), (None, self._dim), f"for id '{mid}'", "motion")
        j = None
        if joints is not None:
            j = _check_array(np.asarray(joints), (None, self._nj, 3), f"for id '{mid}'", "joints")
        atomic_save_npy(self.motion_path(mid), f)
        if j is not None:
            atomic_save_npy(self.joints_path(mid), j)

    def write_captions(self, mid: str, captions: Iterable[Caption]) -> None:
        write_captions(self.text_path(mid), captions)

    def write_split(self, split: str, ids: Sequence[str]) -> None:
        write_split(self.split_path(split), ids)

    def write_mean_std(self, mean: np.ndarray, std: np.ndarray) -> None:
        dim = self._dim or np.shape(mean)[-1]
        for name, a in (("Mean", mean), ("Std", std)):
            a = _check_array(np.asarray(a), (dim,), f"to be written to {self.root}", name)
            atomic_save_npy(self.root / f"{name}.npy", a)
