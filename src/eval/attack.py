"""Alias of the attack CLI: ``python -m src.eval.attack ...`` runs ``python -m src.attacks ...``."""
from __future__ import annotations

if __name__ == "__main__":
    from src.attacks.__main__ import main

    raise SystemExit(main())
