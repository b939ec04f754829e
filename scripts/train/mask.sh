#!/usr/bin/env bash
# Train MoMask's mask model; every flag goes to `python -m src.train.mask` (see --help there).
# Example: bash scripts/train/mask.sh --name <run> --dataset_name synth [--gpu_id 0]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
python -m src.train.mask "$@"
