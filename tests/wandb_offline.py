"""Read what an offline wandb run recorded: the keys of its history, summary and config, from ``run-<id>.wandb``.

The file is wandb's transaction log: a 7-byte header (``:W&B``, magic, version), then LevelDB-log framed records
(32 KiB blocks; each chunk: crc32 (4), length (2, little endian), type (1: full, 2: first, 3: middle, 4: last)),
each record a ``wandb_internal_pb2.Record``. wandb >= 0.20 ships no Python reader of it, so the tests read it here.
"""
from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7


def records(path: str | Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    pos, buf = HEADER, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:  # zero padding
            continue
        buf += chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            buf = b""
            yield rec


def _key(item) -> str:
    """The logged (top-level) key: a media value (table, video) is stored as a dict under ``nested_key[0]``."""
    return item.key or item.nested_key[0]


def _complete(path: Path, timeout: float = 30.0) -> list:
    """The file's records once its ``exit`` record is there (wandb's service process writes it after finish())."""
    import time

    end = time.time() + timeout
    while True:
        recs = list(records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in recs) or time.time() > end:
            return recs
        time.sleep(0.2)


def logged_keys(run_folder: str | Path) -> dict[str, set[str]]:
    """``{"history": keys, "summary": keys, "config": keys}`` of the offline runs under ``run_folder``."""
    files = sorted(Path(run_folder).glob("**/offline-run-*/run-*.wandb"))
    assert files, f"no offline wandb run under {run_folder}"
    out: dict[str, set[str]] = {"history": set(), "summary": set(), "config": set()}
    for f in files:
        for rec in _complete(f):
            kind = rec.WhichOneof("record_type")
            if kind == "history":
                out["history"] |= {_key(i) for i in rec.history.item}
            elif kind == "summary":
                out["summary"] |= {_key(i) for i in rec.summary.update}
            elif kind == "config":
                out["config"] |= {_key(i) for i in rec.config.update}
            elif kind == "run":
                out["config"] |= {_key(i) for i in rec.run.config.update}
    return out
