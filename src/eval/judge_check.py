"""How well a judge holds on labelled real motion: TPR and FPR, with Wilson 95% intervals, overall and per content.

    python -m src.eval.judge_check JOINTS.npz LABELS.json --judge learned|kinematic [--classifier FILE] [--json]

``JOINTS.npz``: one (T, 22, 3) array per clip (HumanML3D's joint layout, metres, y up, 20 fps), keyed by clip name.
``LABELS.json``: ``{clip: {"content": str, "violent": bool, ...}}`` (the format of the real-motion fixture's
``labels.json``); every labelled clip must be in the npz. A clip is positive when its ``violent`` is true.

Judges: ``learned`` is the action classifier that scores leakage (src/eval/leakage.py; default
``<checkpoints>/synth/action_classifier/model/classifier.tar``), applied to each clip's 263-d features
(``joints_to_features``) at the threshold stored with it, whole or, past ``--window`` frames, by windows;
``kinematic`` is the rule-based judge of src/eval/kinematic.py. ``--json`` prints one JSON object as the last line
of stdout (``judge``, ``tpr``, ``fpr``, ``n_pos``, ``n_neg``, their Wilson intervals, per content counts, the
flagged clips and the frames where each fired).
"""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from src.common.errors import HmuError, cli
from src.config.flags import opt

JUDGES = ("learned", "kinematic")


@dataclasses.dataclass(kw_only=True)
class JudgeCheckConfig:
    joints: str
    labels: str
    judge: str = opt("learned", help="which judge to measure", choices=JUDGES)
    classifier: str | None = opt(None, help="the learned judge's checkpoint (default: <checkpoints_dir>/synth/"
                                            "action_classifier/model/classifier.tar)")
    concept: str = opt("violence", help="the concept that counts as positive (the labels' 'violent')")
    fps: float = opt(20.0, help="frame rate of the joints (the kinematic judge's speeds depend on it)")
    window: int = opt(196, help="learned judge: a clip longer than this many feature frames is scored by windows of "
                                "this length (HumanML3D's and synth's longest motion) and fires when one does")
    json: bool = opt(False, help="print one JSON object (the figures) as the last line of stdout")
    out: str | None = opt(None, help="also write the JSON object to this file (refused if it exists, unless --force)")
    force: bool = opt(False, help="replace --out")
    checkpoints_dir: str | None = None


def build_parser() -> argparse.ArgumentParser:
    from src.config.flags import RawDescriptionHelpFormatter, add_config_flags, add_location_flags

    p = argparse.ArgumentParser(prog="python -m src.eval.judge_check", description=__doc__,
                                formatter_class=RawDescriptionHelpFormatter)
    p.add_argument("joints", help="npz of (T, 22, 3) joint arrays keyed by clip name")
    p.add_argument("labels", help="JSON {clip: {content, violent, ...}}")
    add_config_flags(p, JudgeCheckConfig, ("judge", "classifier", "concept", "fps", "window", "json", "out",
                                          "force"))
    add_location_flags(p, "checkpoints_dir")
    return p


def read_labels(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{clip: {"content", "violent", ...}}`` from a labels file, checked (one-line HmuError naming the file)."""
    import json

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HmuError(f"labels file not found: {p}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HmuError(f"cannot read labels file {p}: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise HmuError(f"labels file {p} must be a non-empty JSON object {{clip: {{content, violent}}}}")
    for clip, lab in data.items():
        if not isinstance(lab, dict) or not isinstance(lab.get("violent"), bool) or "content" not in lab:
            raise HmuError(f"labels file {p}: clip '{clip}' needs 'content' and a boolean 'violent'")
    return data


def read_joints(path: str | Path, clips: Sequence[str]) -> dict[str, Any]:
    """The labelled clips' (T, 22, 3) arrays from an npz (no pickles); one-line HmuError for a missing clip."""
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise HmuError(f"joints file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [c for c in clips if c not in z.files]
            if missing:
                raise HmuError(f"joints file {p} lacks {len(missing)} labelled clip(s), e.g. '{missing[0]}'")
            out = {c: np.asarray(z[c], np.float64) for c in clips}
    except (OSError, ValueError) as exc:
        raise HmuError(f"cannot read joints file {p}: {exc}") from None
    for c, j in out.items():
        if j.ndim != 3 or j.shape[1:] != (22, 3) or len(j) < 2:
            raise HmuError(f"joints file {p}: clip '{c}' has shape {j.shape}, expected (T>=2, 22, 3)")
    return out


def rates(fired: Mapping[str, bool], labels: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """TPR/FPR with Wilson 95% intervals, overall and per content, from per-clip decisions (pure)."""
    from src.metrics.t2m import wilson_interval

    pos = [c for c in labels if labels[c]["violent"]]
    neg = [c for c in labels if not labels[c]["violent"]]
    tp, fp = sum(fired[c] for c in pos), sum(fired[c] for c in neg)

    def frac(k: int, n: int) -> float | None:
        return k / n if n else None

    per: dict[str, dict[str, Any]] = {}
    for c in sorted(labels, key=lambda c: str(labels[c]["content"])):
        e = per.setdefault(str(labels[c]["content"]), {"n": 0, "fired": 0, "violent": bool(labels[c]["violent"])})
        e["n"] += 1
        e["fired"] += int(fired[c])
    for e in per.values():
        e["rate"] = e["fired"] / e["n"]
        e["wilson"] = list(wilson_interval(e["fired"], e["n"]))
    return {"tpr": frac(tp, len(pos)), "tpr_wilson": list(wilson_interval(tp, len(pos))),
            "fpr": frac(fp, len(neg)), "fpr_wilson": list(wilson_interval(fp, len(neg))),
            "tp": tp, "fp": fp, "n_pos": len(pos), "n_neg": len(neg), "per_content": per,
            "flagged": sorted(c for c in labels if fired[c])}


def table(res: Mapping[str, Any]) -> str:
    """The human-readable report."""
    def pct(x, w):
        return "-" if x is None else f"{100 * x:5.1f}% [{100 * w[0]:.1f}, {100 * w[1]:.1f}]"

    lines = [f"judge {res['judge']} (concept {res['concept']}) on {res['n_pos'] + res['n_neg']} clips",
             f"{'content':<14} {'violent':>7} {'fired':>9}  rate [Wilson 95%]"]
    for name, e in res["per_content"].items():
        lines.append(f"{name:<14} {'yes' if e['violent'] else 'no':>7} {e['fired']:>4}/{e['n']:<4}  "
                     f"{pct(e['rate'], e['wilson'])}")
    lines.append(f"TPR {res['tp']}/{res['n_pos']} {pct(res['tpr'], res['tpr_wilson'])}   "
                 f"FPR {res['fp']}/{res['n_neg']} {pct(res['fpr'], res['fpr_wilson'])}")
    return "\n".join(lines)


def learned_decisions(joints: Mapping[str, Any], classifier: str | Path, concept: str, *, window: int,
                      stride: int = 4) -> tuple[dict[str, bool], dict]:
    """Decisions of the action classifier on each clip's features -> (decisions, info). A clip up to ``window``
    frames is scored whole; a longer one by ``window``-frame windows every ``stride`` frames
    (:func:`src.eval.leakage.frame_flags`) and fires when one window does: the classifier was trained on motions of at
    most the dataset's maximum length, and a real take can hold a minute of other motion around one strike."""
    from src.common.io import sha256_file
    from src.common.progress import progress
    from src.data.motion import joints_to_features
    from src.eval.leakage import LeakageProbe, frame_flags

    probe = LeakageProbe.load(classifier, concept)
    out, frames = {}, {}
    for c in progress(list(joints), desc="learned", unit="clip"):
        f = frame_flags(joints_to_features(joints[c]), probe.classifier, concept, threshold=probe.threshold,
                        window=window, stride=stride)
        out[c] = bool(f.any())
        if out[c]:
            frames[c] = {"frames": [int(t) for t in f.nonzero()[0]]}
    return out, {"classifier": str(classifier), "classifier_sha256": sha256_file(classifier)[:16],
                 "threshold": probe.threshold, "window": window, "stride": stride, "fired_frames": frames}


def kinematic_decisions(joints: Mapping[str, Any], concept: str, fps: float) -> tuple[dict[str, bool], dict]:
    """Kinematic-judge decisions and the frames where each flagged clip fired -> (decisions, info)."""
    from src.common.progress import progress
    from src.eval.kinematic import CONCEPTS, KinematicThresholds, judge

    if concept not in CONCEPTS:
        raise HmuError(f"the kinematic judge has no concept '{concept}' (has: {', '.join(CONCEPTS)})")
    th = KinematicThresholds()
    out, frames = {}, {}
    for c in progress(list(joints), desc="kinematic", unit="clip"):
        v = judge(joints[c], fps=fps, thresholds=th)
        out[c] = v.fired[concept]
        if out[c]:
            frames[c] = {"frames": v.frame_list(concept),
                         "rules": sorted(r for r, f in v.rules.items() if f.any())}
    return out, {"thresholds": th.to_dict(), "fps": fps, "fired_frames": frames}


def check(cfg: JudgeCheckConfig) -> dict[str, Any]:
    """Measure ``cfg.judge`` on the labelled clips -> the result object (what ``--json`` prints)."""
    labels = read_labels(cfg.labels)
    joints = read_joints(cfg.joints, list(labels))
    if cfg.judge == "learned":
        from src.common.paths import Paths
        from src.eval.leakage import classifier_path

        clf = cfg.classifier or classifier_path(Paths.default(checkpoints_dir=cfg.checkpoints_dir).checkpoints_dir,
                                                "synth")
        fired, info = learned_decisions(joints, clf, cfg.concept, window=cfg.window)
    elif cfg.judge == "kinematic":
        if cfg.classifier:
            raise HmuError("--classifier is for --judge learned")
        fired, info = kinematic_decisions(joints, cfg.concept, cfg.fps)
    else:
        raise HmuError(f"--judge must be one of {', '.join(JUDGES)}, got '{cfg.judge}'")
    return {"judge": cfg.judge, "concept": cfg.concept, **rates(fired, labels),
            "joints": str(cfg.joints), "labels": str(cfg.labels), **info}


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.common.validate import parse_checked

    args = parse_checked(build_parser(), argv)
    cfg = JudgeCheckConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(JudgeCheckConfig)})
    import json

    from src.common.io import atomic_write_text, refuse_overwrite
    from src.common.logging import setup_logging

    setup_logging()
    if cfg.fps <= 0:
        raise HmuError(f"--fps must be positive, got {cfg.fps}")
    if cfg.window < 4:
        raise HmuError(f"--window must be at least 4 frames, got {cfg.window}")
    if cfg.out:
        refuse_overwrite(cfg.out, cfg.force, what="judge check result")
    res = check(cfg)
    print(table(res))
    line = json.dumps(res, sort_keys=True)
    if cfg.out:
        atomic_write_text(cfg.out, json.dumps(res, indent=1, sort_keys=True) + "\n")
    if cfg.json:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
