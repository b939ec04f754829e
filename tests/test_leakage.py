"""Action classifier + leakage: decisions follow the classifier, save/load is strict, AUC and the CLI on a toy folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from src.common.errors import HmuError
from src.eval.leakage import LeakageProbe, leakage_rate
from src.metrics.classification import roc_auc
from src.models.classifier import ActionClassifier, ActionClassifierConfig

DIM = 12


def _model(bias_concept: float) -> ActionClassifier:
    torch.manual_seed(0)
    m = ActionClassifier(ActionClassifierConfig(labels=("kick", "walk", "concept:violence"), dim_pose=DIM, hidden=8))
    with torch.no_grad():
        m.head.weight.zero_()
        m.head.bias.copy_(torch.tensor([0.0, 0.0, bias_concept]))
    return m.eval()


def test_leakage_rate_follows_threshold():
    motions = [np.random.default_rng(i).normal(size=(40 + i, DIM)).astype(np.float32) for i in range(5)]
    assert leakage_rate(motions, _model(3.0), "violence").all()
    assert not leakage_rate(motions, _model(-3.0), "violence").any()
    with pytest.raises(HmuError, match="no label 'concept:dance'"):
        leakage_rate(motions, _model(0.0), "dance")


def test_padding_does_not_change_a_motion_score():
    torch.manual_seed(1)
    m = ActionClassifier(ActionClassifierConfig(labels=("a", "concept:c"), dim_pose=DIM, hidden=8)).eval()
    rng = np.random.default_rng(0)
    short, long = rng.normal(size=(41, DIM)).astype(np.float32), rng.normal(size=(90, DIM)).astype(np.float32)
    alone = m.predict_proba([short])
    batched = m.predict_proba([short, long])
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)


def test_save_load_roundtrip_and_probe(tmp_path):
    m = _model(2.0)
    p = tmp_path / "c.tar"
    m.save(p, meta={"threshold": 0.7, "heldout": {"n": 3}})
    with pytest.raises(HmuError, match="exists"):
        m.save(p)
    probe = LeakageProbe.load(p, "violence")
    assert probe.threshold == 0.7 and probe.meta["heldout"]["n"] == 3
    assert probe([np.zeros((40, DIM), np.float32)]).tolist() == [True]
    with pytest.raises(HmuError, match="not found"):
        LeakageProbe.load(tmp_path / "missing.tar", "violence")


def test_roc_auc_known_values():
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert np.isnan(roc_auc(np.array([0.5, 0.5]), np.array([1, 1])))


def _labelled_folder(root, n=60):
    """Toy dataset: 'kick' motions have a large feature 0 (violence), 'walk' motions do not."""
    from src.data.humanml3d import Caption, HumanML3DFolder

    rng = np.random.default_rng(0)
    f = HumanML3DFolder(root, create=True)
    motions = {}
    for i in range(n):
        mid = f"{i:04d}"
        kick = i % 2 == 0
        m = rng.normal(size=(int(rng.integers(40, 60)), DIM)).astype(np.float32)
        if kick:
            m[:, 0] += 3.0
        f.write_motion(mid, m)
        f.write_captions(mid, [Caption("x", ("x/NOUN",))])
        motions[mid] = {"actions": ["kick" if kick else "walk"], "concepts": ["violence"] if kick else [],
                        "segments": [], "captions": []}
    ids = sorted(motions)
    f.write_split("train", ids[:40])
    f.write_split("val", ids[40:50])
    f.write_split("test", ids[50:])
    f.write_mean_std(np.zeros(DIM, np.float32), np.ones(DIM, np.float32))
    (root / "labels.json").write_text(json.dumps({"version": 1, "fps": 20, "concepts": {"violence": ["kick"]},
                                                  "motions": motions}))


def test_train_classifier_cli_on_toy_labels(tmp_path, cli):
    _labelled_folder(tmp_path / "dataset" / "synth")
    args = ("src.train.classifier", "--dataset_name", "synth", "--dataset_dir", str(tmp_path / "dataset"),
            "--checkpoints_dir", str(tmp_path / "ck"), "--max_epoch", "6", "--no_progress")
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "ck" / "synth" / "action_classifier" / "model" / "classifier.tar"
    probe = LeakageProbe.load(out, "violence")
    held = probe.meta["heldout"]["concepts"]["violence"]
    assert held["auc"] > 0.9 and "accuracy" in held
    r2 = cli(*args)
    assert r2.returncode == 2 and "already exists" in r2.stderr and len(r2.stderr.strip().splitlines()) == 1
