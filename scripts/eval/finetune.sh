#!/usr/bin/env bash
# Fine-tuning on the retain set (baseline), then the forget/retain evaluation.
# Usage: bash scripts/eval/finetune.sh <concept> [dataset] [flags...]
#   --preset upstream: the paper's baseline (both transformers, 500 more epochs, batch 64, lr 2e-5); default budget
#   e.g. bash scripts/eval/finetune.sh violence synth --vq_name rvq --trans_name mtrans --res_name rtrans --repeat_times 3
# Flags are split by python -m src.methods.pipeline (method flags vs evaluation flags); --model bamm passes through.
# NPROC=<n> runs it under torchrun on n processes (TORCHRUN_ARGS: more torchrun flags); see scripts/_launch.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
hmu_run src.methods.pipeline finetune "$@"
