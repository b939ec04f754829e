"""Reference values of the motion-quality metrics (src/eval/quality.py) on ground-truth motion: synth and real mocap.

    python -m bench.quality_reference [--synth_n 600] [--synth_seed 0] [--real_dir PATH] [--out docs/results/quality]

Generated motions are judged against these: a jerk, skating or floor figure is plausible when it is near real
mocap's. ``synth`` is the embedded dataset exactly as ``python -m src.data.synth`` writes it (``new_joints``; generated
here into a temporary folder, nothing under dataset/ is touched), split into its violent motions (the forget concept)
and the others, plus the frames around its action transitions (segment boundaries of labels.json, +-4 frames: the
masked measures on natural transitions, the reference for LCR's replaced-code transitions). ``real`` is the
Bandai-Namco mocap converted to HumanML3D joints (``../shared/fixtures/real_motion/bandai1``, CC BY-NC 4.0, measuring
only), all clips and by content. Prints one line per set and writes ``<out>/reference.json``.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from src.common.errors import cli
from src.common.validate import Range
from src.config.command import RunOptions, group, opt, parse_config

REPO = Path(__file__).resolve().parents[1]
LOCOMOTION = {"walk", "run", "dash", "walk-back", "walk-left", "walk-right"}
TRANSITION_PAD = 4   # frames each side of a synth action boundary


@dataclasses.dataclass(kw_only=True)
class QualityReferenceConfig:
    """Reference values of the motion-quality metrics on synth and real mocap."""

    synth_n: int = opt(600, help="synth motions to generate (the dataset's first n, as generate_synth makes them)",
                       range=Range(lo=20))
    synth_seed: int = opt(0, help="synth seed (the quickstart's dataset uses 0)")
    real_dir: str | None = opt(None, help="real mocap folder with joints.npz and labels.json (env HMU_REAL_MOTION, "
                                          "else ../shared/fixtures/real_motion/bandai1 beside the repository)")
    out: str = opt("docs/results/quality", help="folder of reference.json")
    run: RunOptions = group(RunOptions)

    def real_path(self) -> Path:
        if self.real_dir:
            return Path(self.real_dir)
        env = os.environ.get("HMU_REAL_MOTION")
        return Path(env) if env else REPO.parent / "shared" / "fixtures" / "real_motion" / "bandai1"


def _synth_sets(n: int, seed: int) -> dict:
    import tempfile

    import numpy as np

    from src.data.synth import generate_synth
    from src.data.synth.truth import read_labels

    with tempfile.TemporaryDirectory(prefix="hmu-quality-") as tmp:
        root = Path(tmp) / "synth"
        generate_synth(root, n=n, seed=seed, workers=1, word_vectors="procedural")
        labels = read_labels(root)["motions"]
        ids = sorted(labels)
        joints = {i: np.load(root / "new_joints" / f"{i}.npy") for i in ids}
    violent = {i for i in ids if "violence" in labels[i]["concepts"]}
    masks = []
    for i in ids:
        m = np.zeros(len(joints[i]), dtype=bool)
        for seg in labels[i]["segments"][1:]:
            s = int(seg["start"])
            m[max(0, s - TRANSITION_PAD): s + TRANSITION_PAD] = True
        masks.append(m)
    return {"joints": joints, "ids": ids, "violent": violent, "transition_masks": masks}


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(QualityReferenceConfig, argv, prog="python -m bench.quality_reference", doc=__doc__,
                       raw_description=True)
    import json
    import sys
    import time

    import numpy as np

    from src.common.errors import HmuError
    from src.common.io import atomic_write_json, refuse_overwrite
    from src.eval.quality import QualityConfig, quality_metrics

    out_file = Path(cfg.out) / "reference.json"
    refuse_overwrite(out_file, cfg.run.force, "reference file")
    real = cfg.real_path()
    if not (real / "joints.npz").is_file() or not (real / "labels.json").is_file():
        raise HmuError(f"real mocap not found: {real} needs joints.npz and labels.json (--real_dir)")

    sets: dict[str, dict] = {}

    def add(name: str, joints: list, masks=None, note: str = "") -> None:
        if not joints:
            print(f"{name}: no motions, skipped", flush=True)
            return
        t = time.perf_counter()
        r = quality_metrics(joints, masks)
        r["seconds"] = round(time.perf_counter() - t, 3)
        if note:
            r["note"] = note
        sets[name] = r
        show = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items() if k != "note"}
        print(name, " ".join(f"{k}={v}" for k, v in show.items()), flush=True)

    syn = _synth_sets(cfg.synth_n, cfg.synth_seed)
    sj = syn["joints"]
    add("synth", [sj[i] for i in syn["ids"]])
    add("synth/violent", [sj[i] for i in syn["ids"] if i in syn["violent"]])
    add("synth/other", [sj[i] for i in syn["ids"] if i not in syn["violent"]])
    add("synth/action_transitions", [sj[i] for i in syn["ids"]], syn["transition_masks"],
        note=f"masked_*: frames within {TRANSITION_PAD} of a segment boundary of labels.json")

    with np.load(real / "joints.npz") as z:
        clips = {k: z[k] for k in z.files}
    labels = json.loads((real / "labels.json").read_text(encoding="utf-8"))
    names = sorted(clips)
    add("real", [clips[k] for k in names])
    add("real/violent", [clips[k] for k in names if labels[k]["violent"]],
        note="punch, kick, slash")
    add("real/locomotion", [clips[k] for k in names if labels[k]["content"] in LOCOMOTION],
        note=", ".join(sorted(LOCOMOTION)))
    add("real/other", [clips[k] for k in names
                       if not labels[k]["violent"] and labels[k]["content"] not in LOCOMOTION])

    q = QualityConfig()
    result = {
        "command": " ".join(["python -m bench.quality_reference", *(sys.argv[1:] if argv is None else argv)]),
        "config": {"synth_n": cfg.synth_n, "synth_seed": cfg.synth_seed, "real": "bandai1 (Bandai-Namco "
                   "Research Motiondataset-1, CC BY-NC 4.0), converted to HumanML3D joints"},
        "thresholds": {"fps": q.fps, "floor": q.floor, "contact_height_m": q.contact_height,
                       "skate_speed_m_per_s": q.skate_speed, "skate_window_steps": q.skate_window,
                       "foot_joints": list(q.foot_joints)},
        "sets": sets,
    }
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_file, result)
    print(f"wrote {out_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
