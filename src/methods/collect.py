"""LCR code collection: encode motions to residual-VQ code indices, batched, with explicit crops, cached on disk.

Each motion is encoded ONCE PER CROP (not once per caption line): captions do not change the motion, so upstream's
per-caption loop repeated the same encoding about 3 times per crop. Crops (``CropSettings``):

- ``n_crops=1`` (default): the whole motion, cut to ``min(T, max_motion_length)`` rounded down to ``unit_length``,
  from frame 0. Deterministic.
- ``n_crops=k > 1``: k random crops drawn as upstream's evaluation loader does (length rounded down to the unit, one
  unit shorter with probability 1/3, uniform start), from ``np.random.default_rng((seed, crc32(id)))``: a motion's crops
  depend on its id and the seed only, not on which other motions are collected.
- ``per_caption=True``: each crop's row is repeated once per caption line of the motion, so code counts weigh motions as
  upstream's per-caption rows did. ``CropSettings.upstream()`` = 20 crops, per caption (``lcr.sh --repeat_times 20``).

Batching: windows are grouped by exact length and encoded ``batch_size`` at a time, so there is no padding inside the
encoder and a batched code equals the per-sample one (upstream padded every motion to 196 frames with zeros and
counted the codes of the padding too; here positions past a row's length are -1 and masked out).

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

CACHE_VERSION = 1
UPSTREAM_N_CROPS = 20


@dataclass(frozen=True)
class CropSettings:
    """How windows are cut from each motion (see the module docstring)."""

    n_crops: int = 1
    seed: int = 0
    per_caption: bool = False
    max_motion_length: int = 196
    unit_length: int = 4
    min_motion_length: int = 0  # shorter motions are skipped (upstream's loader: 40 frames)

    @classmethod
    def upstream(cls, **kw) -> CropSettings:
        """Upstream's collection: 20 random crops, one row per caption line."""
        return cls(**{"n_crops": UPSTREAM_N_CROPS, "per_caption": True, **kw})

    def check(self) -> CropSettings:
        if self.n_crops < 1:
            raise HmuError(f"--n_crops must be >= 1, got {self.n_crops}")
        if self.unit_length < 1 or self.max_motion_length < self.unit_length:
            raise HmuError(f"bad crop sizes: unit_length {self.unit_length}, max_motion_length {self.max_motion_length}")
        return self


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
    """sha256 of the ordered ids with each motion file's size and mtime (a regenerated dataset changes the key)."""
    h = hashlib.sha256()
    for mid in ids:
        p = folder.motion_path(mid)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise HmuError(f"motion file not found: {p} (id '{mid}')") from None
        h.update(f"{mid}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_key(*, vq_hash: str, data_hash: str, mean, std, settings: CropSettings) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "vq": vq_hash, "data": data_hash,
                         "crop": dataclasses.asdict(settings)}, sort_keys=True).encode())
    h.update(np.asarray(mean, np.float32).tobytes())
    h.update(np.asarray(std, np.float32).tobytes())
    return h.hexdigest()[:32]


def _save(path: Path, table: CodeTable) -> None:
    from src.common.io import atomic_path

    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, ids=np.asarray(table.ids, dtype=str), motion=table.motion, codes=table.codes,
                 n_valid=table.n_valid, settings=np.asarray(json.dumps(table.settings)))


def _load(path: Path) -> CodeTable | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return CodeTable([str(i) for i in z["ids"]], z["motion"], z["codes"], z["n_valid"],
                             json.loads(str(z["settings"])))
    except (OSError, KeyError, ValueError) as exc:  # a damaged cache is rebuilt, not trusted
        log.warning("ignoring unreadable code cache %s (%s)", path, exc)
        return None


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
        key = cache_key(vq_hash=vq_fingerprint(vq), data_hash=data_fingerprint(folder, ids), mean=mean, std=std,
                        settings=settings)
        path = Path(cache_dir) / f"codes_{key}.npz"
        if path.is_file():
            table = _load(path)
            if table is not None:
                log.info("code cache hit: %s", path)
                return table, True
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    windows, motion, repeat = [], [], []
    skipped = 0
    for m, mid in enumerate(ids):
        x = folder.motion(mid)
        if len(x) < settings.min_motion_length:
            skipped += 1
            continue
        crops = crop_windows(len(x), motion_key=mid, settings=settings)
        if not crops:
            skipped += 1
            continue
        xn = (x - mean) / std
        rep = len(folder.captions(mid)) if settings.per_caption else 1
        for start, n in crops:
            windows.append(xn[start:start + n])
            motion.append(m)
            repeat.append(max(rep, 1))
    if not windows:
        raise HmuError(f"none of the {len(ids)} motions is long enough to encode "
                       f"(min {max(settings.min_motion_length, settings.unit_length)} frames)")
    if skipped:
        log.info("skipped %d motions shorter than %d frames", skipped, settings.min_motion_length)
    codes = encode_windows(vq, windows, batch_size=batch_size, progress=progress)
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
        _save(path, table)
        log.info("code cache written: %s", path)
    return table, False


def default_cache_dir(paths, dataset_name: str) -> Path:
    """``checkpoints/<dataset>/cache/lcr_codes`` (beside the runs, never inside one)."""
    from src.common.datasets import get_spec

    return Path(paths.checkpoints_dir) / get_spec(dataset_name).ckpt_folders[0] / "cache" / "lcr_codes"
