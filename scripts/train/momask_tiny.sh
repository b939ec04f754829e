#!/usr/bin/env bash
# The tiny MoMask on synth, in order: VQ (rvq_tiny), masked transformer (t2m_tiny), residual transformer (tres_tiny),
# length estimator (length_estimator). Extra flags (e.g. --force, --gpu_id 0, --checkpoints_dir DIR) go to all four.
# Usage: bash scripts/train/momask_tiny.sh [flags...]
# NPROC=<n> runs it under torchrun on n processes (TORCHRUN_ARGS: more torchrun flags); see scripts/_launch.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
hmu_run src.train.vq --name rvq_tiny --dataset_name synth "$@"
hmu_run src.train.mask --name t2m_tiny --vq_name rvq_tiny --dataset_name synth "$@"
hmu_run src.train.residual --name tres_tiny --vq_name rvq_tiny --dataset_name synth "$@"
hmu_run src.train.length --name length_estimator --dataset_name synth "$@"
