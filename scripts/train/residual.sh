#!/usr/bin/env bash
# Train MoMask's residual model; every flag goes to `python -m src.train.residual` (see --help there).
# Example: bash scripts/train/residual.sh --name <run> --dataset_name synth [--gpu_id 0]
# NPROC=<n> runs it under torchrun on n processes (TORCHRUN_ARGS: more torchrun flags); see scripts/_launch.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
hmu_run src.train.residual "$@"
