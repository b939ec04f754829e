#!/usr/bin/env bash
# Train MoMask's length model; every flag goes to `python -m src.train.length` (see --help there).
# Example: bash scripts/train/length.sh --name <run> --dataset_name synth [--gpu_id 0]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
python -m src.train.length "$@"
