"""TMR's text side: precomputed token features, or a local Hugging Face model directory (never a download).

Upstream feeds distilbert-base-uncased ``last_hidden_state`` (768-d, [CLS]/[SEP] included) to the text encoder and
uses all-mpnet-base-v2 mean-pooled, L2-normalised sentence embeddings only to filter negatives. ``transformers`` is an
optional dependency imported only when a model directory is opened. On datasets with their own word-vector
vocabulary (synth) :class:`WordVectorText` stands in for both.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from src.common.errors import HmuError


def collate_token_features(features: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """List of (L_i, D) token features -> x (B, max L, D) zero-padded, mask (B, max L) True on real tokens."""
    if not features:
        raise ValueError("collate_token_features needs at least one item")
    lengths = [int(f.shape[0]) for f in features]
    first = features[0]
    x = first.new_zeros(len(features), max(lengths), first.shape[-1])
    for i, f in enumerate(features):
        x[i, : lengths[i]] = f
    mask = torch.arange(max(lengths), device=first.device)[None] < torch.tensor(lengths, device=first.device)[:, None]
    return x, mask


def slice_token_features(all_features: Tensor, index: Sequence[tuple[int, int]] | Tensor) -> list[Tensor]:
    """Upstream stores one concatenated (sum L, D) array plus a (N, 2) [begin, end) index: split it back."""
    return [all_features[int(b):int(e)] for b, e in index]


class LocalTextModel:
    """A frozen local language model: texts -> token features (x, mask) or unit sentence embeddings.

    ``model_dir`` must be a folder holding a Hugging Face tokenizer and model (``config.json`` and weights); it is
    opened with ``local_files_only=True`` so nothing is ever fetched from a hub.
    """

    def __init__(self, model_dir: str | os.PathLike, *, device: torch.device | str | None = None) -> None:
        path = Path(model_dir).expanduser()
        if not (path / "config.json").is_file():
            raise HmuError(f"text model folder {path} not found or has no config.json (a local model directory is "
                           "required; nothing is downloaded)")
        from src.models.text_encoders import load_hf_folder

        self.tokenizer, self.model = load_hf_folder(path)
        self.model.eval().requires_grad_(False)
        if device is not None:
            self.model.to(device)
        self.dim = int(self.model.config.hidden_size)

    def _run(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        if isinstance(texts, str):
            texts = [texts]
        device = next(self.model.parameters()).device
        enc = self.tokenizer(list(texts), return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            hidden = self.model(**enc).last_hidden_state
        return hidden, enc["attention_mask"].bool()

    def token_features(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Texts -> x (B, T, D) last hidden states (zero on padding), mask (B, T) True on real tokens."""
        hidden, mask = self._run(texts)
        return hidden.masked_fill(~mask[..., None], 0.0), mask

    def sentence_embeddings(self, texts: Sequence[str]) -> Tensor:
        """Texts -> (B, D) attention-mask mean pooled, L2-normalised embeddings (all-mpnet-base-v2 recipe)."""
        hidden, mask = self._run(texts)
        m = mask[..., None].to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


class LocalModelText:
    """TMR's text side from a local language model (DistilBERT upstream, all-MiniLM-L6-v2 on synth).

    Takes captions (``wants_text``: callers pass the caption strings); a ``word/POS`` token list is joined back into
    words. Token features and the mean-pooled sentence embedding of each distinct caption are computed once.
    """

    wants_text = True

    def __init__(self, model: LocalTextModel, *, cache_size: int = 200_000) -> None:
        self.model = model
        self.dim = model.dim
        self.cache_size = int(cache_size)
        self._cache: dict[str, tuple[Tensor, Tensor]] = {}

    @staticmethod
    def _text(item) -> str:
        if isinstance(item, str):
            return item
        return " ".join(str(t).split("/")[0] for t in item)

    def _get(self, items) -> list[tuple[Tensor, Tensor]]:
        texts = [self._text(it) for it in items]
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for i in range(0, len(todo), 128):
            part = todo[i:i + 128]
            hidden, mask = self.model._run(part)
            m = mask[..., None].to(hidden.dtype)
            sent = F.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1)
            if len(self._cache) + len(part) > self.cache_size:
                self._cache.clear()
            for k, t in enumerate(part):
                self._cache[t] = (hidden[k, : int(mask[k].sum())].cpu(), sent[k].cpu())
        return [self._cache[t] for t in texts]

    def token_features(self, items) -> tuple[Tensor, Tensor]:
        """B captions -> x (B, max L, dim) last hidden states zero-padded, mask (B, max L) True on real tokens."""
        return collate_token_features([f for f, _ in self._get(items)])

    def sentence_embeddings(self, items) -> Tensor:
        """B captions -> (B, dim) unit attention-mask-mean embeddings."""
        return torch.stack([e for _, e in self._get(items)])


# ---------------------------------------------------------------------------------------------------------------------
# Word-vector text side (synth): one token per caption word, the vocabulary's 300-d vector as its feature.

_WORD = re.compile(r"[a-z]+")
_SUFFIXES = ("ing", "es", "ed", "s")


class WordVectorText:
    """Caption tokens (``word/POS``) -> token features and sentence embeddings from a word-vector vocabulary.

    This replaces DistilBERT + all-mpnet on datasets that ship their own vocabulary (synth): the text encoder sees the
    sequence of word vectors (unknown words get the vocabulary's ``unk`` vector), and the sentence embedding used to
    filter near-duplicate negatives is the L2-normalised mean of those vectors.
    """

    def __init__(self, vectorizer) -> None:
        self.vectorizer = vectorizer
        self.dim = int(vectorizer.dim_word)

    def features(self, tokens: Sequence[str]) -> Tensor:
        """(L,) ``word/POS`` tokens -> (L, dim) float32 (an empty caption becomes one ``unk`` token)."""
        vecs, _ = self.vectorizer.encode(list(tokens) or ["unk/OTHER"])
        return torch.from_numpy(np.asarray(vecs, dtype=np.float32))

    def token_features(self, tokens_list: Sequence[Sequence[str]]) -> tuple[Tensor, Tensor]:
        """B token lists -> x (B, max L, dim) zero-padded, mask (B, max L) True on real tokens."""
        return collate_token_features([self.features(t) for t in tokens_list])

    def sentence_embeddings(self, tokens_list: Sequence[Sequence[str]]) -> Tensor:
        """B token lists -> (B, dim) unit mean word vectors."""
        return F.normalize(torch.stack([self.features(t).mean(0) for t in tokens_list]), p=2, dim=1)


def tokens_from_text(text: str, vocabulary) -> list[str]:
    """Plain text -> ``word/OTHER`` tokens, each word mapped to an in-vocabulary form when a simple suffix strip finds one.

    Caption files carry lemma tokens (``kick/VERB`` for "kicks"); user prompts do not, so "kicks" is looked up as
    "kicks", then "kick" (and "punches" -> "punch", "jabbing" -> "jab" via the doubled consonant).
    """
    out = []
    for w in _WORD.findall(text.lower()):
        form = w
        if w not in vocabulary:
            for s in _SUFFIXES:
                stem = w[: -len(s)]
                for cand in (stem, stem + "e", stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else None):
                    if w.endswith(s) and cand and cand in vocabulary:
                        form = cand
                        break
                if form != w:
                    break
        out.append(f"{form}/OTHER")
    return out
