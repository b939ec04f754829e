"""Ground-truth leakage: does a generated motion still contain the forgotten concept? An action classifier decides.

Upstream measures forgetting only through text-motion embedding distances. On ``synth`` the ground truth is known
(``labels.json``), so a classifier trained on its features (src/models/classifier.py, src/train/classifier.py) can
decide per motion whether the concept is present:

- leakage on forget prompts: fraction of motions generated from forget-set captions flagged as the concept;
- leakage on implicit prompts: same, for prompts that describe the concept without its keywords;
- false-positive rate on retain prompts: fraction of retain-set generations flagged.

Intervals: :func:`src.eval.loop.evaluate` reports the per-repeat ci95, a Wilson interval over all decisions and a
bootstrap over items. The classifier's own held-out accuracy and AUC are stored in its checkpoint's ``meta``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from src.common.errors import HmuError
from src.models.classifier import CONCEPT_PREFIX, ActionClassifier

CLASSIFIER_FOLDER = "action_classifier"
CLASSIFIER_FILE = "classifier.tar"


def classifier_path(checkpoints_dir: str | os.PathLike, dataset_name: str) -> Path:
    """``<checkpoints>/<dataset>/action_classifier/model/classifier.tar``."""
    from src.common.datasets import get_spec

    return Path(checkpoints_dir) / get_spec(dataset_name).name / CLASSIFIER_FOLDER / "model" / CLASSIFIER_FILE


def concept_scores(motions: Sequence[np.ndarray], classifier: ActionClassifier, concept: str) -> np.ndarray:
    """(N,) probability that each raw (T_i, dim_pose) motion contains ``concept``."""
    j = classifier.label_index(CONCEPT_PREFIX + concept)
    if len(motions) == 0:
        return np.zeros(0, np.float32)
    return classifier.predict_proba(motions)[:, j]


def leakage_rate(motions: Sequence[np.ndarray], classifier: ActionClassifier, concept: str, *,
                 threshold: float = 0.5) -> np.ndarray:
    """(N,) bool per-sample decisions: the classifier flags ``concept`` in the motion (probability > threshold).

    The mean of the result is the leakage rate (or the false-positive rate on retain prompts).
    """
    return concept_scores(motions, classifier, concept) > threshold


@dataclass
class LeakageProbe:
    """The one wrapper of the action classifier: the callable :func:`src.eval.loop.evaluate` takes (raw motions ->
    (N,) bool), and the attacks' ground-truth judge (:class:`src.attacks.scoring.Judge`)."""

    classifier: ActionClassifier
    concept: str
    threshold: float = 0.5
    meta: dict[str, Any] | None = None

    def __call__(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        return leakage_rate(motions, self.classifier, self.concept, threshold=self.threshold)

    def concept_flags(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        """(N,) bool: the concept is in the motion (the Judge interface)."""
        return self(motions)

    def action_flags(self, motions: Sequence[np.ndarray], actions: Sequence[str]) -> np.ndarray:
        """(N,) bool: motion i shows ``actions[i]`` (probability > 0.5)."""
        if len(motions) == 0:
            return np.zeros(0, bool)
        proba = self.classifier.predict_proba(motions)
        cols = np.array([self.classifier.label_index(a) for a in actions])
        return proba[np.arange(len(motions)), cols] > 0.5

    @classmethod
    def load(cls, path: str | os.PathLike, concept: str) -> LeakageProbe:
        """Load a trained classifier; its stored threshold is used. HmuError if it does not know ``concept``."""
        if not Path(path).is_file():
            raise HmuError(f"action classifier not found: {path} (train it: python -m src.train.classifier "
                           f"--dataset_name synth)")
        model, meta = ActionClassifier.load(path)
        model.label_index(CONCEPT_PREFIX + concept)
        return cls(model, concept, float(meta.get("threshold", 0.5)), meta)


def frame_flags(motion: np.ndarray, classifier: ActionClassifier, concept: str, *, threshold: float = 0.5,
                window: int = 40, stride: int = 4) -> np.ndarray:
    """(T,) bool: the frames the classifier calls ``concept``, from a sliding window over a raw (T, dim_pose) motion.

    The classifier scores whole clips, so frame t gets the decision on the ``window``-frame clip centred on it
    (shifted to lie inside the motion; a motion shorter than the window is one clip), computed every ``stride``
    frames and held in between. ``window`` 40 frames is 2 s at HumanML3D's 20 fps, about one kick or punch.
    """
    m = np.asarray(motion, np.float32)
    T = len(m)
    if T == 0:
        return np.zeros(0, bool)
    if T <= window:
        return np.full(T, bool(concept_scores([m], classifier, concept)[0] > threshold))
    centres = np.arange(0, T, max(1, int(stride)))
    starts = np.clip(centres - window // 2, 0, T - window)
    clips = [m[s:s + window] for s in starts]
    hits = concept_scores(clips, classifier, concept) > threshold
    return hits[np.minimum(np.arange(T) // max(1, int(stride)), len(hits) - 1)]
