"""TMR on synth: word-vector text side, batching, and a few-step training run that leaves a strictly loadable run dir."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from src.common.io import torch_load

from src.data.word_vectorizer import WordVectorizer
from src.models.tmr.text import WordVectorText, tokens_from_text
from src.train import tmr as T


def _vocab() -> WordVectorizer:
    words = ["unk", "kick", "punch", "person", "a", "jab", "box"]
    rng = np.random.default_rng(0)
    return WordVectorizer(rng.normal(size=(len(words), 6)).astype(np.float32), {w: i for i, w in enumerate(words)},
                          words)


def test_word_vector_text_features_and_sentence_embedding():
    vec = _vocab()
    side = WordVectorText(vec)
    toks = [["a/DET", "person/NOUN", "kick/VERB"], ["punch/NOUN", "zzz/NOUN"]]
    x, mask = side.token_features(toks)
    assert x.shape == (2, 3, 6) and mask.tolist() == [[True, True, True], [True, True, False]]
    # One token per word, in order; unknown words get the unk vector; padding is zero.
    np.testing.assert_array_equal(x[0].numpy(), vec.vectors[[4, 3, 1]])
    np.testing.assert_array_equal(x[1, 1].numpy(), vec.vectors[0])
    assert not x[1, 2].any()
    emb = side.sentence_embeddings(toks).numpy()
    ref = vec.vectors[[4, 3, 1]].mean(0)
    np.testing.assert_allclose(emb[0], ref / np.linalg.norm(ref), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)


def test_tokens_from_text_maps_inflections_into_the_vocabulary():
    vec = _vocab()
    assert tokens_from_text("A person kicks, punches and jabbing!", vec) == [
        "a/OTHER", "person/OTHER", "kick/OTHER", "punch/OTHER", "and/OTHER", "jab/OTHER"]
    assert tokens_from_text("boxes", vec) == ["box/OTHER"]


def test_bucketed_batches_cover_items_once_in_full_batches():
    lengths = np.random.default_rng(1).integers(40, 200, size=203)
    groups = T.bucketed_batches(lengths, batch_size=8, rng=np.random.default_rng(0), pool=4)
    flat = np.concatenate(groups)
    assert all(len(g) == 8 for g in groups) and len(set(flat.tolist())) == len(flat)
    assert len(flat) >= 203 - 4 * 8  # at most one partial batch per pool is dropped
    assert all((np.diff(lengths[g]) <= 0).all() for g in groups)  # sorted within a batch


def test_collate_crops_long_motions_to_a_window():
    side = WordVectorText(_vocab())
    m = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    items = [("c", ["kick/VERB"], m, 50), ("d", ["a/DET"], m, 20)]
    b = T.collate_batch(items, side, max_frames=30, rng=np.random.default_rng(0))
    assert b["motion_x"].shape == (2, 30, 3) and b["motion_mask"].sum(1).tolist() == [30, 20]
    start = int(b["motion_x"][0, 0, 0]) // 3
    np.testing.assert_array_equal(b["motion_x"][0].numpy(), m[start:start + 30])


# ---------------------------------------------------------------------------------------------------------------------
# End to end on a tiny generated synth dataset

@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    from helpers_methods import generated_dataset_dir

    return generated_dataset_dir(tmp_path_factory, "tmr", seed=0)


def _argv(base, *extra):
    return ["--dataset_name", "synth", "--name", "tiny", "--dataset_dir", str(base / "ds"),
            "--checkpoints_dir", str(base / "ck"), "--latent_dim", "16", "--num_layers", "1", "--batch_size", "4",
            "--max_epoch", "1", "--max_steps", "2", "--max_train_frames", "48", "--no_progress", *extra]


@pytest.mark.slow
def test_tiny_training_run_dir_reloads_strictly(tiny_synth, capsys):
    from src.models.tmr.load import load_tmr

    assert T.main(_argv(tiny_synth)) == 0
    out = capsys.readouterr().out
    assert "Guo batch-32" not in out or "t2m" in out
    run = tiny_synth / "ck" / "synth" / "tiny"
    cfg = json.loads((run / "config.json").read_text())
    # the synth text side is MiniLM through transformers' local-folder path (issue 15), 384-d token features
    assert cfg["model"]["text_encoder"]["nfeats"] == 384 and cfg["data"]["text"]["kind"] == "local_model"
    assert cfg["data"]["text"]["model"] == "minilm"
    assert sorted(p.name for p in (run / "last_weights").iterdir()) == [
        "motion_decoder.pt", "motion_encoder.pt", "text_encoder.pt"]
    model = load_tmr(run)  # strict: every key, every shape
    for name in ("motion_encoder", "text_encoder", "motion_decoder"):
        saved = torch.load(run / "last_weights" / f"{name}.pt", weights_only=True)
        for k, v in getattr(model, name).state_dict().items():
            torch.testing.assert_close(v, saved[k], rtol=0, atol=0)
    # The engine's resume state holds the same weights as the exported files.
    latest = torch_load(run / "model" / "latest.tar")
    torch.testing.assert_close(latest["tmr"]["text_encoder.projection.weight"],
                               model.text_encoder.projection.weight, rtol=0, atol=0)
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["epoch"] == 1 and np.isfinite(log[-1]["train_loss"])
    # Stored metrics are reproduced by the reloaded model.
    metrics = json.loads((run / T.METRICS_FILE).read_text())
    assert metrics["split"] == "test" and {"t2m/R01", "m2t/MedR"} <= set(metrics["normal"])
    from src.common.paths import Paths
    from src.data.datasets import Text2MotionDataset
    from src.data.humanml3d import HumanML3DFolder

    paths = Paths.default(dataset_dir=tiny_synth / "ds")
    side = T.text_side_from_config(cfg["data"]["text"], paths, "synth")
    folder = HumanML3DFolder(tiny_synth / "ds" / "synth", "synth")
    ds = Text2MotionDataset(folder, "test", mean=np.load(run / "stats" / "mean.npy"),
                            std=np.load(run / "stats" / "std.npy"), max_motion_length=196, unit_length=4)
    rep = T.retrieval_report(model, side, T.eval_items(ds, max_motion_length=196), threshold=0.95)
    assert rep["normal"] == metrics["normal"]

    # A finished run is not overwritten without --force; with it, it is.
    assert T.main(_argv(tiny_synth)) == 2
    err = capsys.readouterr().err
    assert "already holds last_weights" in err and err.count("\n") == 1
    assert T.main(_argv(tiny_synth, "--force", "--text_model", "word_vectors")) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["text_encoder"]["nfeats"] == 50 and cfg["data"]["text"]["kind"] == "word_vectors"


def test_training_bad_inputs_are_one_line(tmp_path, capsys):
    assert T.main(["--dataset_dir", str(tmp_path), "--checkpoints_dir", str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset folder not found") and err.count("\n") == 1
    assert T.main(["--dataset_name", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    (tmp_path / "synth").mkdir()
    assert T.main(["--dataset_dir", str(tmp_path), "--batch_size", "1"]) == 2
    assert "--batch_size must be >= 2" in capsys.readouterr().err


def test_help_is_instant(cli):
    r = cli("src.train.tmr", "--help")
    assert r.returncode == 0 and "--max_epoch" in r.stdout


def _tiny_model(*, recons_weight: float = 1.0, fact: float | None = 0.1):
    from src.models.tmr.model import TMR

    cfg = T.build_config(motion_nfeats=5, text_nfeats=6, latent_dim=8, ff_size=16, num_layers=1, num_heads=2,
                         dropout=0.0, lr=1e-3, fact=fact, recons_weight=recons_weight)
    torch.manual_seed(0)
    return TMR.from_config(cfg)


def _tiny_batch(b: int = 4):
    g = torch.Generator().manual_seed(1)
    motion_mask = torch.arange(7)[None] < torch.tensor([7, 5, 6, 3])[:b, None]
    text_mask = torch.arange(3)[None] < torch.tensor([3, 2, 3, 1])[:b, None]
    return {"motion_x": torch.randn(b, 7, 5, generator=g), "motion_mask": motion_mask,
            "text_x": torch.randn(b, 3, 6, generator=g), "text_mask": text_mask,
            "sent_emb": torch.nn.functional.normalize(torch.randn(b, 6, generator=g), dim=1)}


def test_encoder_losses_are_compute_loss_without_reconstruction():
    model = _tiny_model()
    batch = _tiny_batch()
    full = model.compute_loss(**batch, generator=torch.Generator().manual_seed(3))
    enc = model.compute_loss(**batch, generator=torch.Generator().manual_seed(3), decoder=False)
    assert set(enc) == {"kl", "latent", "contrastive", "loss"}
    for k in ("kl", "latent", "contrastive"):
        torch.testing.assert_close(enc[k], full[k])
    torch.testing.assert_close(enc["loss"], full["loss"] - model.config.lmd["recons"] * full["recons"])


def test_build_config_keeps_upstream_weights_and_records_fact_and_recons():
    from src.models.tmr.config import TMRConfig

    cfg = T.build_config(motion_nfeats=5, text_nfeats=6, latent_dim=8, ff_size=16, num_layers=1, num_heads=2,
                         dropout=0.0, lr=1e-3, fact=0.1, recons_weight=0.0)
    assert cfg.lmd == {**TMRConfig().lmd, "recons": 0.0} and cfg.fact == 0.1
    assert TMRConfig.from_dict(cfg.to_dict()) == cfg  # the run dir's config.json rebuilds the same model
    paper = T.PRESETS["paper"]
    assert paper["recons_weight"] == 1.0 and paper["fact"] is None and paper["dropout"] == 0.1


def test_fact_scales_the_vae_noise():
    model = _tiny_model(fact=0.1).train()
    b = _tiny_batch()
    mu = model.encode(b["motion_x"], b["motion_mask"], modality="motion", sample_mean=True)
    z_small = model.encode(b["motion_x"], b["motion_mask"], modality="motion", generator=torch.Generator().manual_seed(0))
    z_one = model.encode(b["motion_x"], b["motion_mask"], modality="motion", fact=1.0,
                         generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z_small - mu, 0.1 * (z_one - mu))
