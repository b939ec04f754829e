"""Training the text-motion evaluator on a toy folder (the evaluator-training tests' common set-up)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def train_toy_evaluator(cli, tmp_path: Path, *, n: int, max_epoch: int, **cli_kw):
    """A toy synth folder under ``tmp_path/dataset`` (``n`` motions of test_eval_loop's writer: the first 40 the
    train split, the rest val; mean 0, std 1; toy word vectors), then ``python -m src.train.evaluator`` on it with
    8-wide layers for ``max_epoch`` epochs into ``tmp_path/ck`` -> the CLI's completed process."""
    from test_eval_loop import DIM, toy_words, write_folder

    from src.data.humanml3d import HumanML3DFolder
    from src.data.word_vectorizer import save_vocabulary

    root = tmp_path / "dataset" / "synth"
    write_folder(root, n=n)
    f = HumanML3DFolder(root)
    ids = f.ids("test")
    f.write_split("train", ids[:40])
    f.write_split("val", ids[40:])
    f.write_mean_std(np.zeros(DIM, np.float32), np.ones(DIM, np.float32))
    w = toy_words(n)
    save_vocabulary(root / "glove", w.vectors, w.words, w.word2idx)
    return cli("src.train.evaluator", "--dataset_name", "synth", "--dataset_dir", str(tmp_path / "dataset"),
               "--checkpoints_dir", str(tmp_path / "ck"), "--max_epoch", str(max_epoch), "--dim_text_hidden", "8",
               "--dim_coemb_hidden", "8", "--dim_motion_hidden", "8", "--dim_movement_enc_hidden", "8",
               "--dim_movement_latent", "8", "--no_progress", **cli_kw)
