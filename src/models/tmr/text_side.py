"""TMR's text side, built from a name or rebuilt from a run's ``config.json``: a local language model (MiniLM,
DistilBERT, through ``transformers``) or the dataset's word vectors."""
from __future__ import annotations

from pathlib import Path

from src.common.errors import HmuError


def load_text_side(paths, dataset_name: str, text_model: str = "word_vectors"):
    """TMR's text side and its config entry: a local language model (MiniLM, DistilBERT) or the word vectors."""
    from src.data.pretrained import minilm_available, minilm_dir
    from src.data.word_vectorizer import load_word_vectorizer
    from src.models.tmr.text import LocalModelText, LocalTextModel, WordVectorText

    if text_model == "auto":
        text_model = "minilm" if minilm_available() else "word_vectors"
    if text_model == "word_vectors":
        side = WordVectorText(load_word_vectorizer(paths.glove(dataset_name)))
        return side, {"kind": "word_vectors", "dim": side.dim, "glove_dir": str(paths.glove(dataset_name)),
                      "sentence_embedding": "unit mean of word vectors"}
    folder = minilm_dir() if text_model == "minilm" else Path(text_model)
    side = LocalModelText(LocalTextModel(folder))
    return side, {"kind": "local_model", "model": text_model, "model_dir": str(folder), "dim": side.dim,
                  "sentence_embedding": "unit attention-mask mean of the last hidden states"}


def text_side_from_config(text_cfg: dict, paths, dataset_name: str):
    """Rebuild the text side a run was trained with (its config.json ``data.text``)."""
    kind = text_cfg.get("kind", "word_vectors")
    if kind == "word_vectors":
        return load_text_side(paths, dataset_name, "word_vectors")[0]
    if kind == "local_model":
        model = text_cfg.get("model", "minilm")
        folder = "minilm" if model == "minilm" else text_cfg.get("model_dir", model)
        return load_text_side(paths, dataset_name, folder)[0]
    raise HmuError(f"unknown TMR text kind {kind!r} in the run's config.json")
