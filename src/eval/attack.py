"""Alias: ``python -m src.eval.attack ...`` runs ``python -m src.attacks ...`` (through :mod:`src.cli.attack`)."""
from src.cli.attack import main

if __name__ == "__main__":
    raise SystemExit(main())
