"""``python -m src.eval.attack``: upstream's name of the attack command, ``python -m src.attacks``."""
from src.attacks.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
