"""Does the model do the action? Generated vs ground-truth figures per synth action: highest ankle, wrist reach.

    python bench/action_gen.py --checkpoints_dir CKPT --dataset_dir DATA [--name t2m_tiny --res_name tres_tiny]
                               [--repeats 8] [--seed 0] [--cond_scale 4] [--time_steps 18] [--json OUT.json]

For every prompt of synth's ``prompts.json`` (forget: kick, punch, jab, hook, uppercut; retain: walk, run, ...) the
model generates ``--repeats`` motions at the prompt's length; each gives its highest ankle above the floor and its
farthest wrist reach from the chest (``src.data.action_figures``, whole clip). The ground truth is every labelled
segment of that action in the test split (``new_joints``). Printed per action: the number of motions, the median
and the 10th-90th percentiles of both figures, generated and ground truth. The issue-30 target: kick prompts' median
highest ankle >= 0.5 m over >= 16 generations; punch prompts' wrist reach as the ground truth's.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def figures(values) -> dict:
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"n": 0}
    return {"n": int(len(v)), "median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
            "p90": float(np.percentile(v, 90))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoints_dir", default=None)
    p.add_argument("--dataset_dir", default=None)
    p.add_argument("--name", default="t2m_tiny")
    p.add_argument("--res_name", default="tres_tiny")
    p.add_argument("--vq_name", default=None)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cond_scale", type=float, default=None)
    p.add_argument("--time_steps", type=int, default=None)
    p.add_argument("--sets", default="forget,retain", help="prompts.json sets to generate")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    import numpy as np
    import torch

    from src.common.paths import Paths
    from src.data.action_figures import segment_figures
    from src.data.datasets import resolve_ids
    from src.data.motion import recover_from_ric
    from src.data.synth.truth import read_eval_prompts, read_labels
    from src.gen.generate import load_generator

    paths = Paths.default(checkpoints_dir=a.checkpoints_dir, dataset_dir=a.dataset_dir)
    root = paths.data_root("synth")
    sampling = {k: v for k, v in (("cond_scale", a.cond_scale), ("time_steps", a.time_steps)) if v is not None}
    gen = load_generator(dataset_name="synth", name=a.name, res_name=a.res_name, vq_name=a.vq_name,
                         checkpoints_dir=a.checkpoints_dir, dataset_dir=a.dataset_dir, **sampling)
    prompts = read_eval_prompts(root)
    rows: dict[str, dict[str, list]] = {}
    g = torch.Generator().manual_seed(a.seed)
    for set_name in a.sets.split(","):
        items = prompts.get(set_name, [])
        caps = [it["text"] for it in items for _ in range(a.repeats)]
        lens = [it["length"] for it in items for _ in range(a.repeats)]
        acts = [it["action"] for it in items for _ in range(a.repeats)]
        for act, feats in zip(acts, gen.generate(caps, lens, generator=g)):
            f = segment_figures(recover_from_ric(feats, 22))
            r = rows.setdefault(act, {"gen_ankle": [], "gen_reach": [], "gt_ankle": [], "gt_reach": []})
            r["gen_ankle"].append(f["ankle_m"])
            r["gen_reach"].append(f["reach_m"])
    labels = read_labels(root)
    for mid in resolve_ids(root, "test"):
        segs = labels["motions"].get(mid, {}).get("segments", [])
        if not any(s["action"] in rows for s in segs):
            continue
        joints = np.load(root / "new_joints" / f"{mid}.npy")
        for s in segs:
            if s["action"] in rows:
                f = segment_figures(joints, (s["start"], s["end"]))
                rows[s["action"]]["gt_ankle"].append(f["ankle_m"])
                rows[s["action"]]["gt_reach"].append(f["reach_m"])
    table = {act: {k: figures(v) for k, v in r.items()} for act, r in rows.items()}
    print(f"{a.name} + {a.res_name} ({paths.checkpoints_dir}), {a.repeats} generations per prompt, seed {a.seed}, "
          f"sampling {gen.sampling()}")
    print(f"{'action':<11}{'n gen':>6}{'ankle gen':>18}{'ankle GT':>18}{'reach gen':>18}{'reach GT':>18}"
          "  (median [p10, p90], m)")

    def cell(f):
        return f"{f['median']:.2f} [{f['p10']:.2f},{f['p90']:.2f}]" if f["n"] else "-"
    for act, t in table.items():
        print(f"{act:<11}{t['gen_ankle']['n']:>6}{cell(t['gen_ankle']):>18}{cell(t['gt_ankle']):>18}"
              f"{cell(t['gen_reach']):>18}{cell(t['gt_reach']):>18}")
    if a.json:
        Path(a.json).write_text(json.dumps({"name": a.name, "res_name": a.res_name, "repeats": a.repeats,
                                            "seed": a.seed, "sampling": gen.sampling(), "actions": table},
                                           indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
