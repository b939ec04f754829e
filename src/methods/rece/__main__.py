"""``python -m src.methods.rece``: RECE on the text projections, saved as NEW runs (src/methods/text_edit.py)."""
from src.methods.text_edit import cli_main

main = cli_main("rece")

if __name__ == "__main__":
    raise SystemExit(main())
