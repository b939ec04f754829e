#!/usr/bin/env bash
# Train BAMM's transformer on a trained VQ (residual layers: a MoMask residual transformer on the same VQ).
# Usage: bash scripts/train/bamm.sh [flags...]
#   e.g. bash scripts/train/bamm.sh --name bamm_tiny --vq_name rvq_tiny --dataset_name synth
# NPROC=<n> runs it under torchrun on n processes (TORCHRUN_ARGS: more torchrun flags); see scripts/_launch.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
hmu_run src.train.bamm "$@"
