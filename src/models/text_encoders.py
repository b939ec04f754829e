"""Text encoders that turn captions into conditioning features (B, dim) for the MoMask transformers.

- ``clip``: CLIP ViT-B/32's text tower (package ``clip-anytorch``), from a local file only, never downloaded.
- ``embedded``: no download and no training: the mean of procedural word vectors (upstream's glove format,
  ``our_vab_{data.npy,words.pkl,idx.pkl}``) projected to ``dim`` by a fixed seeded orthogonal matrix.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol

from src.common.errors import HmuError

log = logging.getLogger(__name__)

CLIP_DIM = 512
DEFAULT_CLIP_FILE = Path("clip") / "ViT-B-32.pt"  # under the checkpoints folder


class TextEncoder(Protocol):
    """Common interface: ``encode(texts) -> float32 Tensor (B, dim)`` on the encoder's device."""

    dim: int

    def encode(self, texts: Sequence[str]):
        ...


# ------------------------------------------------------------------------------------------------ CLIP

CLIP_CACHE = Path("~/.cache/clip")  # where the clip package's own clip.load() keeps ViT-B-32.pt


def clip_search_paths() -> list[Path]:
    """Where ViT-B-32.pt is looked for: ``<checkpoints>/clip/`` (HMU_CHECKPOINTS), then the clip package's cache."""
    from src.common.paths import Paths

    return [Paths.default().checkpoints_dir / DEFAULT_CLIP_FILE, CLIP_CACHE.expanduser() / DEFAULT_CLIP_FILE.name]


def default_clip_path() -> Path:
    """The first of :func:`clip_search_paths` that exists, else the first (which the error then names)."""
    cands = clip_search_paths()
    return next((p for p in cands if p.is_file()), cands[0])


def _clip_submodules():
    """(build_model, SimpleTokenizer) from the installed ``clip`` package.

    Only the text side is needed, so when ``import clip`` fails because of its image-side imports
    (torchvision, PIL, pkg_resources) the two submodules are loaded straight from the package folder.
    """
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        raise HmuError("the CLIP text encoder needs the package clip-anytorch (pip install clip-anytorch)")
    try:
        from clip.model import build_model  # type: ignore
        from clip.simple_tokenizer import SimpleTokenizer  # type: ignore
        return build_model, SimpleTokenizer
    except Exception as exc:  # noqa: BLE001 - fall through to loading the submodules alone
        log.debug("import clip failed (%s); loading its text modules directly", exc)
    folder = Path(next(iter(spec.submodule_search_locations)))
    mods = {}
    for sub in ("model", "simple_tokenizer"):
        name = f"_hmu_clip_{sub}"
        if name not in sys.modules:
            s = importlib.util.spec_from_file_location(name, folder / f"{sub}.py")
            m = importlib.util.module_from_spec(s)
            try:
                s.loader.exec_module(m)  # type: ignore[union-attr]
            except ImportError as exc:
                raise HmuError(f"clip-anytorch is installed but its {sub}.py cannot load: {exc}") from None
            sys.modules[name] = m
        mods[sub] = sys.modules[name]
    return mods["model"].build_model, mods["simple_tokenizer"].SimpleTokenizer


class ClipTextEncoder:
    """CLIP text features (B, 512) as upstream computes them (``clip.tokenize(truncate=True)`` then ``encode_text``).

    ``clip_path`` must be a local file (the original ``ViT-B-32.pt``, a TorchScript archive, or a plain state
    dict); nothing is downloaded. Weights stay fp32 on CPU (fp16 on CUDA, as ``clip.load`` does); the output
    is always float32.
    """

    context_length = 77

    def __init__(self, clip_path: str | os.PathLike | None = None, device=None):
        import torch

        path = Path(clip_path) if clip_path else default_clip_path()
        if not path.is_file():
            where = str(path) if clip_path else " or ".join(str(p) for p in clip_search_paths())
            raise HmuError(f"CLIP weights not found at {where}: fetch them with scripts/prepare/download_clip.sh "
                           f"(or put OpenAI's ViT-B-32.pt there, or pass --clip_path FILE)")
        self.path = path
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        build_model, tokenizer_cls = _clip_submodules()
        state = self._read_state(path)
        try:
            model = build_model(state)
        except (KeyError, RuntimeError, IndexError, ValueError) as exc:
            raise HmuError(f"{path} is not a CLIP checkpoint ({type(exc).__name__}: {str(exc)[:80]})") from None
        model = model.to(self.device).eval()
        if self.device.type == "cpu":
            model.float()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.tokenizer = tokenizer_cls()
        self.dim = int(model.text_projection.shape[1])

    @staticmethod
    def _read_state(path: Path) -> dict:
        import warnings

        import torch

        try:  # the released file is a TorchScript archive; clip.load(jit=False) reads its state dict the same way
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(str(path), map_location="cpu").state_dict()
        except (RuntimeError, ValueError):
            pass
        from src.common.io import torch_load

        obj = torch_load(path, what="CLIP checkpoint")
        if isinstance(obj, dict) and "state_dict" in obj:
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise HmuError(f"{path} is not a CLIP checkpoint (no state dict inside)")
        return obj

    def tokenize(self, texts: Sequence[str]):
        """Token ids (B, 77): start token, BPE tokens, end token, zero padding; long texts are truncated."""
        import torch

        enc = self.tokenizer.encoder
        sot, eot = enc["<|startoftext|>"], enc["<|endoftext|>"]
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            toks = [sot] + self.tokenizer.encode(text) + [eot]
            if len(toks) > self.context_length:
                toks = toks[: self.context_length]
                toks[-1] = eot
            out[i, : len(toks)] = torch.tensor(toks)
        return out

    def encode(self, texts: Sequence[str]):
        import torch

        with torch.no_grad():
            return self.model.encode_text(self.tokenize(list(texts)).to(self.device)).float()

    __call__ = encode


# ------------------------------------------------------------------------------------------------ embedded

_WORD = re.compile(r"[a-z0-9]+")


def tokenize_words(text: str) -> list[str]:
    """Lower-case alphanumeric words ("A person's kick!" -> ['a', 'person', 's', 'kick'])."""
    return _WORD.findall(text.lower())


def lemma_candidates(word: str) -> list[str]:
    """Base forms to try for an unknown word: -ing, -ed, -es, -ies, -s (with undoubled consonants and final e)."""
    out: list[str] = []

    def stem_forms(stem: str) -> None:
        if len(stem) < 2:
            return
        out.append(stem)
        out.append(stem + "e")
        if len(stem) >= 3 and stem[-1] == stem[-2] and stem[-1] not in "aeiou":
            out.append(stem[:-1])  # running -> run, stopped -> stop

    if word.endswith("ing"):
        stem_forms(word[:-3])
    if word.endswith("ied"):
        out.append(word[:-3] + "y")
    if word.endswith("ed"):
        stem_forms(word[:-2])
    if word.endswith("ies"):
        out.append(word[:-3] + "y")
    if word.endswith("es"):
        out.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        out.append(word[:-1])
    seen: set[str] = set()
    return [w for w in out if not (w in seen or seen.add(w))]


class _SafeUnpickler(pickle.Unpickler):
    """Word lists and index maps only: builtins plus numpy scalars, nothing executable."""

    _ALLOWED: ClassVar[frozenset] = frozenset({("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype"),
                ("builtins", "set"), ("builtins", "frozenset"), ("collections", "OrderedDict")})

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_pickle(path: Path):
    if not path.is_file():
        raise HmuError(f"word-vector file not found: {path}")
    try:
        with open(path, "rb") as fh:
            return _SafeUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as exc:
        raise HmuError(f"cannot read word-vector file {path} ({exc})") from None


def load_word_vectors(glove_dir: str | os.PathLike, prefix: str = "our_vab"):
    """Upstream's on-disk vocabulary -> (vectors (N, word_dim) float32, {word: row})."""
    import numpy as np

    d = Path(glove_dir)
    data_file = d / f"{prefix}_data.npy"
    if not data_file.is_file():
        raise HmuError(f"word vectors not found: {data_file} (run scripts/prepare/download_glove.sh, "
                       f"or generate the synth dataset)")
    try:
        vectors = np.load(data_file, allow_pickle=False).astype(np.float32)
    except (ValueError, OSError) as exc:
        raise HmuError(f"cannot read {data_file}: {exc}") from None
    idx = _read_pickle(d / f"{prefix}_idx.pkl")
    if not isinstance(idx, dict):
        raise HmuError(f"{d / f'{prefix}_idx.pkl'} should map word -> row, got {type(idx).__name__}")
    word2row = {str(w): int(i) for w, i in idx.items()}
    bad = [w for w, i in word2row.items() if not 0 <= i < len(vectors)]
    if bad:
        raise HmuError(f"{d / f'{prefix}_idx.pkl'}: row of '{bad[0]}' is outside {data_file} ({len(vectors)} rows)")
    return vectors, word2row


def orthogonal_projection(in_dim: int, out_dim: int, seed: int):
    """A fixed (in_dim, out_dim) matrix from ``seed``: orthonormal rows when in_dim <= out_dim (an isometry), else columns."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((max(in_dim, out_dim), min(in_dim, out_dim)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # make the factorisation unique, so the matrix depends on the seed only
    return (q if in_dim >= out_dim else q.T).astype(np.float32)


class EmbeddedTextEncoder:
    """Bag of procedural word vectors projected to ``dim``: deterministic, no download, no training.

    A caption's feature is the mean of the vectors of its known words (unknown words are tried in base form,
    then skipped; a caption with no known word gives zeros), times a seeded orthogonal (word_dim, dim) matrix.
    """

    def __init__(self, glove_dir: str | os.PathLike, *, dim: int = CLIP_DIM, seed: int = 0, device=None,
                 prefix: str = "our_vab"):
        import torch

        vectors, self.word2row = load_word_vectors(glove_dir, prefix)
        self.dim = int(dim)
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.vectors = torch.from_numpy(vectors).to(self.device)
        self.projection = torch.from_numpy(orthogonal_projection(vectors.shape[1], self.dim, self.seed)).to(self.device)

    def lookup(self, word: str) -> int | None:
        """Row of ``word`` or of its first known base form; None if unknown."""
        if word in self.word2row:
            return self.word2row[word]
        for cand in lemma_candidates(word):
            if cand in self.word2row:
                return self.word2row[cand]
        return None

    def rows(self, text: str) -> list[int]:
        return [r for r in (self.lookup(w) for w in tokenize_words(text)) if r is not None]

    def encode(self, texts: Sequence[str]):
        import torch

        feats = torch.zeros(len(texts), self.vectors.shape[1], dtype=torch.float32, device=self.device)
        for i, text in enumerate(texts):
            rows = self.rows(text)
            if rows:
                feats[i] = self.vectors[torch.tensor(rows, device=self.device)].mean(dim=0)
            else:
                log.debug("no known word in caption %r: zero feature", text)
        return feats @ self.projection

    __call__ = encode


# ------------------------------------------------------------------------------------------------ factory

def build_text_encoder(name: str, *, clip_path: str | os.PathLike | None = None,
                       glove_dir: str | os.PathLike | None = None, dim: int = CLIP_DIM, seed: int = 0, device=None):
    """``clip`` or ``embedded`` (the config's ``text_encoder`` field)."""
    if name == "clip":
        enc = ClipTextEncoder(clip_path, device=device)
        if enc.dim != dim:
            raise HmuError(f"CLIP file {enc.path} gives {enc.dim}-d features but the model expects {dim}")
        return enc
    if name == "embedded":
        if glove_dir is None:
            raise HmuError("the embedded text encoder needs a word-vector folder (--glove_dir)")
        return EmbeddedTextEncoder(glove_dir, dim=dim, seed=seed, device=device)
    raise HmuError(f"unknown text encoder '{name}' (clip or embedded)")
