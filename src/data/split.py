"""Alias: ``python -m src.data.split`` runs :mod:`src.cli.split` (the command sits on the top floor: its TMR
refinement imports models, gen and train)."""
from src.cli.split import main

if __name__ == "__main__":
    raise SystemExit(main())
