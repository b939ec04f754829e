"""``python -m src.eval.ncs_compute`` (this module; the name is an alias): the NCS figures (src/eval/ncs.py) of a
batch generation, as upstream's script.

    python -m src.methods.gen_t2m_batch --dataset_name synth --name t2m_tiny --res_name tres_tiny \\
        --split kw_splits/test-w-violence.txt --repeat_times 3 --run_name forget_gen --skip_viz
    python -m src.eval.ncs_compute --file generation/forget_gen/records.json --tmr_name tmr

Two inputs are accepted:

- upstream's records, where every record already carries its ``retrieval`` list (``[{"description": ...}, ...]``
  in rank order): the ranks are read from it, exactly as upstream's ``ncs_compute.py`` does;
- ``gen_t2m_batch``'s records (``feats_path`` per record): each generated motion is encoded by the TMR run
  ``--tmr_name`` and retrieves from a text gallery, every caption line of the ``--gallery_split`` motions
  (default ``test``; upstream keeps its gallery outside the repository, so this choice is ours), the first
  ``--top`` texts kept (upstream's retrieval lists, written into ``ncs.json`` with each rank).

A text "holds the concept" when it contains one of ``--forget_kw`` as a case-sensitive substring (upstream's test;
default: the concept's keywords from assets/splits.json). Writes ``ncs.json`` beside the records file (``--out``),
logs the figures under upstream's ``unlearn/`` keys (JSONL, and wandb with ``--wandb``) and prints them.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from src.common.errors import HmuError, cli
from src.common.validate import POSITIVE
from src.config.command import DeviceOptions, Locations, RunOptions, WandbFlags, group, opt

PROG = "python -m src.eval.ncs_compute"


@dataclasses.dataclass(kw_only=True)
class NcsConfig:
    """The NCS figures of a batch generation (records.json), as upstream's ncs_compute.py."""

    file: str = opt(None, required=True, help="records.json of python -m src.methods.gen_t2m_batch (or upstream's "
                                              "results file with retrieval lists)")
    forget_kw: list[str] | None = opt(None, help="concept keywords, matched as case-sensitive substrings (default: "
                                                 "--concept's keywords)")
    concept: str = opt("violence", help="concept whose keywords are used without --forget_kw")
    dataset_name: str | None = opt(None, help="dataset (default: the records file's dataset_name)")
    tmr_name: str = opt("tmr", help="TMR run checkpoints/<dataset>/<tmr_name>")
    gallery_split: str = opt("test", help="split whose caption lines form the retrieval gallery")
    top: int = opt(10, range=POSITIVE, help="retrieved texts kept per motion (a rank beyond is top + 1)")
    run_name: str | None = opt(None, help="name of the wandb run / JSONL log (default: the records' folder)")
    out: str | None = opt(None, help="output JSON (default: ncs.json beside --file)")
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "glove_dir"))
    device: DeviceOptions = group(DeviceOptions)
    run: RunOptions = group(RunOptions, only=("force", "verbose"))
    wandb: WandbFlags = group(WandbFlags)



CONFIG = NcsConfig


def _read_records(path: Path) -> tuple[dict, list[dict]]:
    if not path.is_file():
        raise HmuError(f"--file not found: {path}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HmuError(f"{path} is not a JSON file ({exc})") from None
    recs = obj.get("records") if isinstance(obj, dict) else None
    if not isinstance(recs, list) or not recs or not all(isinstance(r, dict) and "name" in r for r in recs):
        raise HmuError(f"{path}: expected {{\"records\": [{{\"name\": ..., ...}}, ...]}} with at least one record")
    return obj, recs


def tmr_retrieval(records: Sequence[dict], base: Path, *, run_dir: Path, root: Path, glove_dir: Path,
                  keywords: Sequence[str], gallery_split: str, top: int, max_motion_length: int,
                  device) -> tuple[list[list[str]], int]:
    """Each record's generated motion (``feats_path``, relative to ``base``) encoded by TMR -> the captions of its
    ``top`` nearest gallery texts in rank order (upstream's retrieval lists), and the gallery size."""
    from src.data.humanml3d import read_motion
    from src.models.tmr.model import get_sim_matrix
    from src.models.tmr.refine_split import build_refiner

    # (the refiner refuses a gallery where no line holds a keyword: every rank would then be top + 1)
    ref = build_refiner(run_dir=run_dir, root=root, glove_dir=glove_dir, keywords=keywords, match="substring",
                        max_rank=top, max_motion_length=max_motion_length, train_split=gallery_split)
    ref.model.to(device)
    if any("feats_path" not in r for r in records):
        raise HmuError("a record has neither a retrieval list nor a feats_path")
    lat = ref.feature_latents([read_motion(base / r["feats_path"], dim_pose=int(ref.mean.shape[0])) for r in records])
    sims = get_sim_matrix(lat, ref.ref_latents.to(lat.device)).cpu().double().numpy()
    order = np.argsort(-sims, axis=1, kind="stable")[:, :top]
    return [[ref.ref_captions[j] for j in row] for row in order], len(ref.ref_captions)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.common.io import refuse_overwrite
    from src.config.command import command_context, parse_config

    cfg = parse_config(NcsConfig, argv, prog=PROG)
    path = Path(cfg.file)
    out = Path(cfg.out) if cfg.out else path.with_name("ncs.json")
    refuse_overwrite(out, cfg.run.force, what="NCS results")
    meta, records = _read_records(path)
    needs_tmr = not all(isinstance(r.get("retrieval"), list) for r in records)
    ctx = command_context(cfg.dataset_name or meta.get("dataset_name") or "synth", cfg.device, cfg.where, cfg.run,
                          cfg.wandb, needs_device=needs_tmr)
    return compute_ncs(cfg, ctx, path=path, out=out, records=records)


def compute_ncs(cfg: NcsConfig, ctx, *, path: Path, out: Path, records: list[dict]) -> int:
    """Ranks (from the records' lists, else TMR retrieval) -> the NCS summary, written to ``out``, logged, printed."""
    from src.common.io import atomic_write_json
    from src.common.logging import MetricLogger
    from src.common.paths import tmr_run_dir
    from src.data.keywords import forget_keywords
    from src.eval.ncs import ncs_summary, retrieval_ranks

    spec = ctx.dataset
    keywords = list(cfg.forget_kw or forget_keywords(spec.name, cfg.concept))
    if all(isinstance(r.get("retrieval"), list) for r in records):
        retrieved = [[s.get("description", "") for s in r["retrieval"]] for r in records]
        source = "retrieval lists in the records"
    else:
        run_dir = tmr_run_dir(ctx.paths, spec.name, cfg.tmr_name, existing=True)
        retrieved, gallery = tmr_retrieval(records, path.parent, run_dir=run_dir, root=ctx.data_root,
                                           glove_dir=ctx.paths.glove(spec.name), keywords=keywords,
                                           gallery_split=cfg.gallery_split, top=cfg.top,
                                           max_motion_length=spec.max_motion_length, device=ctx.device)
        source = f"TMR {run_dir}, gallery: caption lines of {cfg.gallery_split} ({gallery} texts), top {cfg.top}"
    ranks = retrieval_ranks(retrieved, keywords)
    summary = ncs_summary(ranks, [r["name"] for r in records], [r.get("repeat", 0) for r in records])
    atomic_write_json(out, {"file": str(path), "keywords": keywords, "source": source, "summary": summary,
                            "ranks": [{"name": r["name"], "repeat": r.get("repeat", 0), "rank": int(k),
                                       "retrieval": [{"description": c} for c in caps]}
                                      for r, k, caps in zip(records, ranks, retrieved)]})
    logger = MetricLogger(out.with_suffix(".jsonl"), wandb=ctx.wandb, name=cfg.run_name or path.parent.name,
                          config=dataclasses.asdict(cfg), job_type="ncs")
    logger.log(**{f"unlearn/{k}": v for k, v in summary.items()})
    where = logger.finish()
    print(f"NCS of {len(records)} generations ({int(summary['forget_size'])} motions, {int(summary['repeats'])} "
          f"repeats); {source}")
    for k in ("ncs@1", "ncs@2", "ncs@3", "ncs@5", "ncs@10", "mean_rank", "median_rank"):
        ci = summary[f"conf/{k}"]
        print(f"  {k:<12} {summary[k]:.3f}" + ("" if np.isnan(ci) else f" ± {ci:.3f}") + f"   min over repeats: "
              f"{summary[f'min_{k}']:.3f}")
    print(f"written {out}" + (f"; {where}" if where else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
