"""Upstream's ``cd src/momask_codes && python train_vq.py ...``: trains the VQ-VAE with
``python -m src.train.vq`` (same flags; checkpoints go to the repository's checkpoints/, not the current folder)."""
from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a file from src/momask_codes/
    from src.train.vq import main

    raise SystemExit(main())
