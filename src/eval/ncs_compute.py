"""Alias: ``python -m src.eval.ncs_compute`` runs :mod:`src.cli.ncs_compute` (the command sits on the top floor: it
reads TMR runs and models)."""
from src.cli.ncs_compute import main

if __name__ == "__main__":
    raise SystemExit(main())
