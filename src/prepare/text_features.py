"""Precompute the MiniLM features of every caption and prompt of a dataset, once, for all training and evaluation runs.

    python -m src.prepare.text_features --dataset_name synth [--dataset_dir DIR] [--force]

Writes ``<dataset>/text_features/all-MiniLM-L6-v2.npz`` (captions + (N, 384) float32 features + the weights' id).
Every run that builds the MiniLM encoder on that dataset starts from it (a caption it lacks is encoded on the fly), so
the ~7,500 distinct synth captions go through the model once instead of once per training stage.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from src.common.errors import HmuError, cli


def build_parser() -> argparse.ArgumentParser:
    from src.config.flags import add_device_flags

    p = argparse.ArgumentParser(prog="python -m src.prepare.text_features", description=__doc__.split("\n")[0])
    p.add_argument("--dataset_name", default="synth", help="dataset name or alias (default: synth)")
    p.add_argument("--dataset_dir", default=None, help="datasets root (default: HMU_DATASET or ./dataset)")
    p.add_argument("--batch_size", type=int, default=128, help="captions per forward pass (default: 128)")
    p.add_argument("--force", action="store_true", help="recompute an existing cache")
    add_device_flags(p)
    return p


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
    args = build_parser().parse_args(argv)
    import time

    import torch
    from tqdm.auto import tqdm

    from src.common.device import resolve_device
    from src.common.io import refuse_overwrite
    from src.common.logging import setup_logging
    from src.common.paths import Paths
    from src.common.datasets import get_spec
    from src.models.text_encoders import (MiniLMTextEncoder, read_feature_cache, text_cache_file,
                                          write_feature_cache)

    setup_logging()
    if args.batch_size < 1:
        raise HmuError(f"--batch_size must be >= 1, got {args.batch_size}")
    spec = get_spec(args.dataset_name)
    root = Paths.default(dataset_dir=args.dataset_dir).data_root(spec.name)
    if not (root / "texts").is_dir():
        raise HmuError(f"no texts/ folder in {root} (generate or download the dataset first)")
    out = text_cache_file(root)
    texts = dataset_texts(root)
    if not texts:
        raise HmuError(f"no caption in {root / 'texts'}")
    enc = MiniLMTextEncoder(device=resolve_device(args.gpu_id, args.device))
    if out.is_file() and not args.force and read_feature_cache(out, model=enc.model_id(), dim=enc.dim) is not None:
        refuse_overwrite(out, args.force, "text-feature cache")  # a good cache; a damaged or stale one is rebuilt
    t0 = time.perf_counter()
    feats = []
    for i in tqdm(range(0, len(texts), args.batch_size), desc="MiniLM features", unit="batch"):
        feats.append(enc.encode(texts[i:i + args.batch_size]).cpu())
    write_feature_cache(out, texts, torch.cat(feats).numpy(), model=enc.model_id())
    print(f"{len(texts)} caption features ({enc.dim}-d) in {time.perf_counter() - t0:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
