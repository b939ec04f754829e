#!/usr/bin/env bash
# Train MoMask's residual model; every flag goes to `python -m src.train.residual` (see --help there).
# Example: bash scripts/train/residual.sh --name <run> --dataset_name synth [--gpu_id 0]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
python -m src.train.residual "$@"
