"""``python -m src.methods.uce``: UCE on the text projections, saved as NEW runs (src/methods/text_edit.py)."""
from src.methods.text_edit import cli_main

main = cli_main("uce")

if __name__ == "__main__":
    raise SystemExit(main())
