"""Precompute the MiniLM features of every caption and prompt of a dataset, once, for all training and evaluation runs.

    python -m src.prepare.text_features --dataset_name synth [--dataset_dir DIR] [--force]

Writes ``<dataset>/text_features/all-MiniLM-L6-v2.npz`` (captions + (N, 384) float32 features + the weights' id).
Every run that builds the MiniLM encoder on that dataset starts from it (a caption it lacks is encoded on the fly), so
the ~7,500 distinct synth captions go through the model once instead of once per training stage.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from src.common.errors import HmuError, cli
from src.config.command import DeviceOptions, Locations, RunOptions, config_parser, group, parse_config
from src.config.flags import opt

PROG = "python -m src.prepare.text_features"


@dataclasses.dataclass(kw_only=True)
class TextFeaturesConfig:
    """Precompute the MiniLM features of every caption and prompt of a dataset, once."""

    dataset_name: str = opt("synth", help="dataset name or alias")
    batch_size: int = opt(128, help="captions per forward pass")
    where: Locations = group(Locations, only=("dataset_dir",))
    device: DeviceOptions = group(DeviceOptions)
    run: RunOptions = group(RunOptions)


def build_parser() -> argparse.ArgumentParser:
    return config_parser(TextFeaturesConfig, prog=PROG, doc=__doc__)


def dataset_texts(root) -> list[str]:
    """Distinct caption texts of ``texts/*.txt`` plus the texts of prompts.json and implicit_prompts.json, sorted."""
    from pathlib import Path

    root = Path(root)
    out: set[str] = set()
    for f in sorted((root / "texts").glob("*.txt")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.add(line.split("#")[0].strip())
    for name in ("prompts.json", "implicit_prompts.json"):
        path = root / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        groups = data.values() if isinstance(data, dict) else [data]
        for group in groups:
            for p in group if isinstance(group, list) else []:
                if isinstance(p, dict) and isinstance(p.get("text"), str):
                    out.add(p["text"])
    return sorted(out)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(TextFeaturesConfig, argv, prog=PROG, doc=__doc__)
    import time

    import torch

    from src.common.io import refuse_overwrite
    from src.common.progress import progress
    from src.config.command import command_context
    from src.models.text_encoders import (MiniLMTextEncoder, read_feature_cache, text_cache_file,
                                          write_feature_cache)

    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run)
    root = ctx.data_root
    if not (root / "texts").is_dir():
        raise HmuError(f"no texts/ folder in {root} (generate or download the dataset first)")
    out = text_cache_file(root)
    texts = dataset_texts(root)
    if not texts:
        raise HmuError(f"no caption in {root / 'texts'}")
    enc = MiniLMTextEncoder(device=ctx.device)
    if out.is_file() and not ctx.force and read_feature_cache(out, model=enc.model_id(), dim=enc.dim) is not None:
        refuse_overwrite(out, ctx.force, "text-feature cache")  # a good cache; a damaged or stale one is rebuilt
    t0 = time.perf_counter()
    feats = []
    for i in progress(range(0, len(texts), cfg.batch_size), desc="MiniLM features", unit="batch",
                      enabled=ctx.progress):
        feats.append(enc.encode(texts[i:i + cfg.batch_size]).cpu())
    write_feature_cache(out, texts, torch.cat(feats).numpy(), model=enc.model_id())
    print(f"{len(texts)} caption features ({enc.dim}-d) in {time.perf_counter() - t0:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
