"""``python -m src.methods.rece``: RECE on the text projections of the masked and residual transformers, saved as NEW runs.

The flags and the run are shared with the other text-projection edit: src/methods/text_edit.py.
"""
from __future__ import annotations

from collections.abc import Sequence

from src.common.errors import cli


@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.methods.text_edit import run_cli

    return run_cli("rece", argv)


if __name__ == "__main__":
    raise SystemExit(main())
