"""Alias: ``python -m src.eval.t2m_unlearn_sh`` (``bash scripts/eval/t2m_unlearn.sh``) runs
:mod:`src.cli.t2m_unlearn_sh` (the command sits on the top floor: it also runs the qualitative generation)."""
from src.cli.t2m_unlearn_sh import main

if __name__ == "__main__":
    raise SystemExit(main())
