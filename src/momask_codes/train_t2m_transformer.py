"""Upstream's ``cd src/momask_codes && python train_t2m_transformer.py ...``: trains the masked transformer with
``python -m src.train.mask`` (same flags; checkpoints go to the repository's checkpoints/, not the current folder)."""
from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a file from src/momask_codes/
    from src.train.mask import main

    raise SystemExit(main())
