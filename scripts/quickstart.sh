#!/usr/bin/env bash
# The main job on the embedded default: install, generate synth, split, (train -> unlearn -> evaluate -> report).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
python -m src.quickstart "$@"
