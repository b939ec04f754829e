"""LCR code collection: encode motions to residual-VQ code indices, batched, with explicit crops, cached on disk.

Two collections (``CropSettings``):

``CropSettings()`` / ``n_crops=k`` (ours, the default)
    Each motion is encoded ONCE PER CROP (not once per caption line: captions do not change the motion).
    ``n_crops=1``: the whole motion, cut to ``min(T, max_motion_length)`` rounded down to ``unit_length``, from frame 0.
    ``n_crops=k > 1``: k random crops as upstream's evaluation loader draws them (length rounded down to the unit, one
    unit shorter with probability 1/3, uniform start), from ``np.random.default_rng((seed, crc32(key)))``: a motion's
    crops depend on its id and the seed only. Windows are grouped by exact length, so nothing is padded, and only a
    window's own codes are counted (positions past a row's length are -1 and masked out).
    ``per_caption=True`` repeats each crop's row once per caption line (upstream's row weighting, approximately).

``CropSettings.upstream()`` (``--upstream_collection``: Mamiglia/hmu e8912ba ``src/methods/lcr.py::collect_codes``
    over momask-codes c9f2bf5 ``data/t2m_dataset.py::Text2MotionDatasetEval``, ``--repeat_times 20`` of ``lcr.sh``)
    - motions with fewer than ``min_motion_length`` (40) or at least ``max_frames`` (200) frames are dropped;
    - one item per caption line ``l``: the segment ``motion[int(from * fps) : int(to * fps)]`` of its ``#from#to``
      tags (from 0 -> frame 0, to 0 -> the end), itself dropped when shorter than 40 or at least 200 frames;
    - per repeat, each item gets one random crop (above), is normalised, and is zero-padded to
      ``max_motion_length`` (196) frames; the whole padded window is encoded and ALL its codes are counted, those of
      the padding included (49 positions per row);
    - rows are per item, so a motion counts once per surviving caption line and repeat.
    Randomness is ours (numpy, per item key ``<id>%<line>``), not Python's ``random`` in upstream's loader order, so
    the crops follow upstream's distribution, not its exact draws.

Either way, identical windows (the same frames of the same motion: whole-motion caption lines of one motion, or
random crops that drew the same start, which is most of them, since a crop is at most a few frames shorter than its
item) are encoded once and their codes given to every row they stand for, so the counts are those of encoding every
row.

Cache: ``<cache_dir>/<key>.npz`` where the key hashes the VQ encoder+quantizer weights, the ids with their motion files'
size and mtime, the normalisation and the crop settings. A second run with the same inputs loads it (no encoding);
the ids are stored per row, so any forget/retain partition of the same ids (another concept) reuses the same file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.common.datasets import crop_length
from src.common.errors import HmuError

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 3: checked header (src.common.npz_cache), captions in the key
UPSTREAM_N_CROPS = 20
UPSTREAM_MAX_FRAMES = 200  # Text2MotionDatasetEval: len(motion) >= 200 is skipped


@dataclass(frozen=True)
class CropSettings:
    """How windows are cut from each motion (see the module docstring)."""

    n_crops: int = 1
    seed: int = 0
    per_caption: bool = False
    max_motion_length: int = 196
    unit_length: int = 4
    min_motion_length: int = 0  # shorter motions (and segments) are skipped (upstream's loader: 40 frames)
    segments: bool = False      # one item per caption line, its #from#to segment (upstream)
    pad: bool = False           # zero-pad each crop to max_motion_length and count every position (upstream)
    max_frames: int = 0         # > 0: drop motions and segments of at least this many frames (upstream: 200)
    fps: int = 20               # frames per second of the #from#to tags (upstream hard-codes 20)

    @classmethod
    def upstream(cls, **kw) -> CropSettings:
        """Upstream's collection exactly (module docstring): 20 crops per caption segment, padded, < 200 frames."""
        return cls(**{"n_crops": UPSTREAM_N_CROPS, "segments": True, "pad": True, "max_frames": UPSTREAM_MAX_FRAMES,
                      "min_motion_length": 40, **kw})

    def check(self) -> CropSettings:
        if self.n_crops < 1:
            raise HmuError(f"--n_crops must be >= 1, got {self.n_crops}")
        if self.unit_length < 1 or self.max_motion_length < self.unit_length:
            raise HmuError(f"bad crop sizes: unit_length {self.unit_length}, max_motion_length {self.max_motion_length}")
        if self.segments and self.per_caption:
            raise HmuError("segments already give one row per caption line; per_caption would count them twice")
        return self

    def keep(self, n_frames: int) -> bool:
        """Whether a motion (or caption segment) of ``n_frames`` frames is collected."""
        return n_frames >= self.min_motion_length and not (self.max_frames and n_frames >= self.max_frames)


def caption_segments(n_frames: int, captions, *, fps: int) -> list[tuple[int, int, int]]:
    """``[(line, start, end), ...]``: each caption line's frame range (upstream: from 0 -> 0, to 0 -> the end)."""
    out = []
    for line, cap in enumerate(captions):
        start = int(cap.start * fps) if cap.start > 0 else 0
        end = int(cap.end * fps) if cap.end > 0 else n_frames
        out.append((line, start, end))
    return out


def crop_windows(length: int, *, motion_key: str, settings: CropSettings) -> list[tuple[int, int]]:
    """``[(start, n_frames), ...]`` of the crops of one motion of ``length`` frames (empty if shorter than a unit)."""
    unit = settings.unit_length
    full = crop_length(length, unit_length=unit, max_motion_length=settings.max_motion_length)
    if full < unit:
        return []
    if settings.n_crops == 1:
        return [(0, full)]
    rng = np.random.default_rng((int(settings.seed), zlib.crc32(motion_key.encode("utf-8"))))
    out = []
    for _ in range(settings.n_crops):
        n = full - unit if (full > unit and rng.integers(3) == 2) else full  # upstream: 'double' with p = 1/3
        out.append((int(rng.integers(0, length - n + 1)), n))
    return out


def encode_windows(vq, windows: Sequence[np.ndarray], *, batch_size: int = 256, progress: bool = False) -> list:
    """Normalised windows (T_i, D), T_i a multiple of the VQ downsampling -> codes (T_i / down, Q) int64 each.

    Windows of equal length are stacked and encoded together (no padding); runs on the VQ's device.
    """
    import torch

    from src.common.progress import progress as progress_bar

    if batch_size < 1:
        raise HmuError(f"--batch_size must be >= 1, got {batch_size}")
    device = next(vq.parameters()).device
    by_len: dict[int, list[int]] = {}
    for i, w in enumerate(windows):
        by_len.setdefault(len(w), []).append(i)
    jobs = [(idx[s:s + batch_size]) for _, idx in sorted(by_len.items()) for s in range(0, len(idx), batch_size)]
    out: list = [None] * len(windows)
    with torch.inference_mode():
        for idx in progress_bar(jobs, desc="encoding", unit="batch", enabled=progress):
            x = torch.from_numpy(np.stack([windows[i] for i in idx]).astype(np.float32, copy=False)).to(device)
            codes = vq.encode(x)[0].cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = codes[j]
    return out


@dataclass
class CodeTable:
    """Collected codes: row r is one crop of motion ``ids[motion[r]]`` (repeated per caption if asked)."""

    ids: list[str]
    motion: np.ndarray   # (R,) int64 index into ids
    codes: np.ndarray    # (R, T, Q) int16/int32, -1 past n_valid
    n_valid: np.ndarray  # (R,) valid positions per row
    settings: dict

    @property
    def num_rows(self) -> int:
        return int(self.codes.shape[0])

    @property
    def num_layers(self) -> int:
        return int(self.codes.shape[2])

    @property
    def num_motions(self) -> int:
        return int(np.unique(self.motion).size)

    def mask(self) -> np.ndarray:
        """(R, T) bool: valid positions."""
        return np.arange(self.codes.shape[1])[None, :] < self.n_valid[:, None]

    def layer(self, q: int) -> tuple[np.ndarray, np.ndarray]:
        """Codes (R, T) of quantizer layer ``q`` with -1 padding replaced by 0, and the validity mask (R, T)."""
        if not 0 <= q < self.num_layers:
            raise HmuError(f"quantizer layer {q} does not exist (the codes have {self.num_layers} layers)")
        mask = self.mask()
        return np.where(mask, self.codes[:, :, q], 0).astype(np.int64), mask

    def subset(self, ids: Sequence[str]) -> CodeTable:
        """Rows of the motions in ``ids`` (ids absent from the table are ignored)."""
        want = set(ids)
        keep = np.fromiter((i in want for i in self.ids), dtype=bool, count=len(self.ids))[self.motion]
        return CodeTable(self.ids, self.motion[keep], self.codes[keep], self.n_valid[keep], self.settings)

    def counts(self, q: int, *, nb_code: int) -> np.ndarray:
        """(nb_code,) number of rows containing each code of layer ``q`` (src.methods.lcr.edit.count_codes)."""
        from src.methods.lcr.edit import count_codes

        codes, mask = self.layer(q)
        return count_codes(codes, nb_code=nb_code, mask=mask)


# ---------------------------------------------------------------------------------------------------- cache key

def vq_fingerprint(vq) -> str:
    """sha256 of the encoder and quantizer weights (what determines the codes; the decoder does not)."""
    h = hashlib.sha256()
    for name, t in sorted(vq.state_dict().items()):
        if name.startswith("decoder."):
            continue
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(folder, ids: Sequence[str]) -> str:
    """sha256 of the ordered ids with each motion file's size and mtime (a regenerated dataset changes the key) and
    each caption file's bytes (segments and per-caption rows come from the captions)."""
    h = hashlib.sha256()
    for mid in ids:
        p = folder.motion_path(mid)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise HmuError(f"motion file not found: {p} (id '{mid}')") from None
        h.update(f"{mid}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        t = folder.text_path(mid)
        try:
            h.update(hashlib.sha256(t.read_bytes()).digest())
        except FileNotFoundError:
            h.update(b"no-captions")
    return h.hexdigest()


CACHE_KIND = "LCR code"


def cache_key(*, vq_hash: str, data_hash: str, mean, std, settings: CropSettings) -> str:
    """Full sha256 of every input of the codes: VQ weights, data, normalisation, crop settings (the file name holds
    its first 32 hex digits, the file's header the whole)."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "vq": vq_hash, "data": data_hash,
                         "crop": dataclasses.asdict(settings)}, sort_keys=True).encode())
    h.update(np.asarray(mean, np.float32).tobytes())
    h.update(np.asarray(std, np.float32).tobytes())
    return h.hexdigest()


def _save(path: Path, table: CodeTable, key: str) -> None:
    from src.common.npz_cache import write_cache

    write_cache(path, {"ids": np.asarray(table.ids, dtype=str), "motion": table.motion, "codes": table.codes,
                       "n_valid": table.n_valid, "settings": np.asarray(json.dumps(table.settings))},
                kind=CACHE_KIND, key=key)


def _check_table(z: dict[str, np.ndarray]) -> str | None:
    """Why the arrays of a code cache are not a consistent table (None when they are)."""
    if set(z) != {"ids", "motion", "codes", "n_valid", "settings"}:
        return f"arrays {sorted(z)}"
    ids, motion, codes, n_valid = z["ids"], z["motion"], z["codes"], z["n_valid"]
    if ids.ndim != 1 or not len(ids) or codes.ndim != 3 or motion.shape != (len(codes),) or \
            n_valid.shape != (len(codes),) or codes.dtype.kind != "i" or motion.dtype.kind != "i":
        return f"shapes ids {ids.shape}, motion {motion.shape}, codes {codes.shape}, n_valid {n_valid.shape}"
    if len(motion) and (motion.min() < 0 or motion.max() >= len(ids)):
        return "motion indices outside the ids"
    if len(n_valid) and (n_valid.min() < 1 or n_valid.max() > codes.shape[1]):
        return "valid lengths outside the code rows"
    if codes.size and codes.min() < -1:
        return "negative codes"
    valid = np.arange(codes.shape[1])[None, :] < n_valid[:, None]
    if (codes[valid] < 0).any():
        return "padding inside a row's valid positions"
    try:
        json.loads(str(z["settings"]))
    except ValueError:
        return "unreadable settings"
    return None


def _load(path: Path, key: str) -> CodeTable | None:
    """The cached table, or None (one warning naming the file) when it is damaged, stale or inconsistent."""
    from src.common.npz_cache import read_cache

    z = read_cache(path, kind=CACHE_KIND, key=key, nonzero=False, check=_check_table,
                   rebuild_hint="the codes are encoded again and the file rewritten")
    if z is None:
        return None
    return CodeTable([str(i) for i in z["ids"]], z["motion"], z["codes"], z["n_valid"], json.loads(str(z["settings"])))


# ---------------------------------------------------------------------------------------------------- collection

def collect_codes(vq, folder, ids: Sequence[str], *, mean, std, settings: CropSettings = CropSettings(),
                  batch_size: int = 256, cache_dir: str | os.PathLike | None = None, progress: bool = False
                  ) -> tuple[CodeTable, bool]:
    """Encode the motions ``ids`` of ``folder`` (a HumanML3DFolder) -> (CodeTable, loaded from cache?).

    ``mean``/``std`` (D,) normalise the features as the VQ was trained. ``cache_dir`` None: no cache.
    """
    settings = settings.check()
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids:
        raise HmuError("no motion ids to encode")
    path = None
    if cache_dir is not None:
        full_key = cache_key(vq_hash=vq_fingerprint(vq), data_hash=data_fingerprint(folder, ids), mean=mean,
                             std=std, settings=settings)
        path = Path(cache_dir) / f"codes_{full_key[:32]}.npz"
        if path.is_file():
            table = _load(path, full_key)
            if table is not None and table.ids == ids:
                log.info("code cache hit: %s", path)
                return table, True
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    # Identical windows (same motion, same first frame, same length: captions whose segments overlap, or random crops
    # that drew the same start) are encoded once; every row still gets its codes, so the counts are unchanged.
    windows, motion, repeat, row_window = [], [], [], []
    seen: dict[tuple[int, int, int], int] = {}
    skipped = 0
    for m, mid in enumerate(ids):
        x = folder.motion(mid)
        if not settings.keep(len(x)):
            skipped += 1
            continue
        xn = (x - mean) / std
        if settings.segments:
            items = [(f"{mid}%{line}", a, xn[a:b]) for line, a, b in
                     caption_segments(len(x), folder.captions(mid), fps=settings.fps)]
            items = [(key, a, seg) for key, a, seg in items if settings.keep(len(seg))]
            rep = 1
        else:
            items = [(mid, 0, xn)]
            rep = max(len(folder.captions(mid)), 1) if settings.per_caption else 1
        n_before = len(row_window)
        for key, offset, seg in items:
            for start, n in crop_windows(len(seg), motion_key=key, settings=settings):
                at = (m, offset + start, n)  # the window's frames in the whole motion
                if at not in seen:
                    w = seg[start:start + n]
                    if settings.pad and n < settings.max_motion_length:
                        w = np.concatenate([w, np.zeros((settings.max_motion_length - n, w.shape[1]), w.dtype)])
                    seen[at] = len(windows)
                    windows.append(w)
                row_window.append(seen[at])
                motion.append(m)
                repeat.append(rep)
        if len(row_window) == n_before:
            skipped += 1
    if not windows:
        raise HmuError(f"none of the {len(ids)} motions is long enough to encode "
                       f"(min {max(settings.min_motion_length, settings.unit_length)} frames)")
    if skipped:
        log.info("skipped %d motions (shorter than %d frames%s, or without a long enough caption segment)", skipped,
                 settings.min_motion_length, f" or of at least {settings.max_frames}" if settings.max_frames else "")
    log.info("encoding %d distinct windows for %d code rows", len(windows), len(row_window))
    unique = encode_windows(vq, windows, batch_size=batch_size, progress=progress)
    codes = [unique[j] for j in row_window]
    width = max(c.shape[0] for c in codes)
    n_layers = codes[0].shape[1]
    nb = max(int(c.max()) for c in codes) + 1
    dtype = np.int16 if nb < 2**15 else np.int32
    arr = np.full((len(codes), width, n_layers), -1, dtype=dtype)
    n_valid = np.zeros(len(codes), dtype=np.int64)
    for i, c in enumerate(codes):
        arr[i, :c.shape[0]] = c
        n_valid[i] = c.shape[0]
    rep = np.asarray(repeat)
    table = CodeTable(ids, np.repeat(np.asarray(motion, dtype=np.int64), rep), np.repeat(arr, rep, axis=0),
                      np.repeat(n_valid, rep), {**dataclasses.asdict(settings), "skipped": skipped})
    if path is not None:
        try:
            _save(path, table, full_key)
            log.info("code cache written: %s", path)
        except OSError as exc:  # a cache that cannot be written costs time on the next run, not this run's result
            log.warning("could not write the LCR code cache %s (%s); continuing without it", path, exc.strerror or exc)
    return table, False


def default_cache_dir(paths, dataset_name: str) -> Path:
    """``checkpoints/<dataset>/cache/lcr_codes`` (beside the runs, never inside one)."""
    from src.common.datasets import get_spec

    return Path(paths.checkpoints_dir) / get_spec(dataset_name).ckpt_folders[0] / "cache" / "lcr_codes"


def write_codes_csv(table: CodeTable, path: str | os.PathLike, *, layers: int | None = None) -> Path:
    """The collected codes as upstream's ``--codes_csv`` table: one row per code row, ``name`` (motion id), ``repeat``
    (the row's index among its motion's rows) and ``codes_<layer>:<position>`` (-1 past the row's valid length), for
    the first ``layers`` quantizer layers (default all). Written atomically; it is an export, never read back (hmu's
    keyed cache, :func:`collect_codes`, is what a second run reuses)."""
    import csv
    import io

    from src.common.io import atomic_write_text

    nq = table.num_layers if layers is None else min(int(layers), table.num_layers)
    T = table.codes.shape[1]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "repeat", *(f"codes_{q}:{t}" for q in range(nq) for t in range(T))])
    seen: dict[int, int] = {}
    for r in range(table.num_rows):
        m = int(table.motion[r])
        rep = seen.get(m, 0)
        seen[m] = rep + 1
        row = np.where(np.arange(T)[:, None] < table.n_valid[r], table.codes[r, :, :nq], -1)
        w.writerow([table.ids[m], rep, *row.T.reshape(-1).tolist()])
    atomic_write_text(path, buf.getvalue())
    return Path(path)
