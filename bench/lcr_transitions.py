"""Is LCR jerkier than the original at its replaced codes? Motion quality on the frames decoded from a replaced code
(+- ``--pad`` frames), for the LCR-edited model and the original on the same frames (src/eval/transitions.py).

    python -m bench.lcr_transitions --dataset_name synth --name t2m_tiny --res_name tres_tiny \\
        --lcr_name rvq_tiny_lcr --split kw_splits/test-w-violence [--n 64] [--seed 0] [--pad 4] [--json out.json]

The original is ``--name``/``--res_name`` with their own VQ; the edit is the same transformers with the VQ run
``--lcr_name`` (its ``model/net_best_fid.tar`` holds LCR's ``removed_codes``). Prompts: the first caption and length
of the first ``--n`` motions of ``--split`` (a split of the dataset, e.g. the forget split, where replaced codes are
common). Prints one row per measure (whole motions, then the masked frames) for both models.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from src.common.errors import cli
from src.common.validate import Range
from src.config.command import DeviceOptions, Locations, RunOptions, group, opt, parse_config

ROWS = ("jerk_mean", "jerk_p95", "skate_ratio", "skate_speed", "penetration_mean", "float_mean", "bone_drift_mean",
        "bone_drift_rel")


@dataclasses.dataclass(kw_only=True)
class LcrTransitionsConfig:
    """Motion quality at LCR's replaced codes, edited vs original."""

    dataset_name: str = opt("synth", help="dataset name")
    name: str = opt(help="masked (or BAMM) transformer run")
    res_name: str | None = opt(None, help="residual transformer run (none: base layer only)")
    vq_name: str | None = opt(None, help="the original VQ run (default: the transformer's)")
    lcr_name: str = opt(help="the LCR-edited VQ run (python -m src.methods.lcr --name ...)")
    ckpt: str = opt("net_best_fid.tar", help="transformer checkpoint file")
    split: str = opt(help="split of the dataset whose captions are generated (e.g. kw_splits/test-w-violence)")
    n: int = opt(64, help="prompts (the split's first n motions)", range=Range(lo=1))
    seed: int = opt(0, help="generation seed (the same for both models)")
    pad: int = opt(4, help="frames each side of a replaced token's frames", range=Range(lo=0))
    json: str | None = opt(None, help="also write the figures as JSON here")
    device: DeviceOptions = group(DeviceOptions)
    where: Locations = group(Locations)
    run: RunOptions = group(RunOptions)


def table(out: dict) -> list[str]:
    """Text rows: measure, original, edited, edited / original; whole motions then the masked frames."""
    lines = [f"replaced tokens {out['replaced_tokens']}, masked frames {out['masked_frames']} of {out['frames']} "
             f"(pad {out['pad']}), same code ids: {out['ids_equal']}",
             f"{'measure':<24}{'original':>12}{'LCR':>12}{'LCR/orig':>10}"]
    for prefix in ("", "masked_"):
        for k in ROWS:
            a, b = out["original"][prefix + k], out["edited"][prefix + k]
            ratio = f"{b / a:10.2f}" if a else f"{'-':>10}"
            lines.append(f"{prefix + k:<24}{a:12.4f}{b:12.4f}{ratio}")
    return lines


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(LcrTransitionsConfig, argv, prog="python -m bench.lcr_transitions", doc=__doc__)
    from src.common.io import atomic_write_json, refuse_overwrite
    from src.config.command import command_context
    from src.eval.sets import load_eval_set
    from src.eval.transitions import removed_codes, transition_figures
    from src.gen.generate import load_generator
    from src.models.checkpoint import find_run_dir

    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run)
    common = {"dataset_name": cfg.dataset_name, "name": cfg.name, "res_name": cfg.res_name, "ckpt": cfg.ckpt,
              "checkpoints_dir": ctx.paths.checkpoints_dir, "dataset_dir": ctx.paths.dataset_dir, "device": ctx.device}
    original = load_generator(vq_name=cfg.vq_name, **common)
    edited = load_generator(vq_name=cfg.lcr_name, text_encoder=original.text_encoder, **common)
    removed = removed_codes(find_run_dir(ctx.paths, cfg.dataset_name, cfg.lcr_name) / "model" / "net_best_fid.tar")
    root = ctx.paths.data_root(cfg.dataset_name)
    items = load_eval_set(root, cfg.split).items[:cfg.n]
    out = transition_figures(original, edited, removed, [it.captions[0].text for it in items],
                             [it.length for it in items], seed=cfg.seed, pad=cfg.pad)
    print("\n".join(table(out)))
    if cfg.json:
        refuse_overwrite(cfg.json, cfg.run.force)
        atomic_write_json(Path(cfg.json), {**out, "config": dataclasses.asdict(cfg)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
