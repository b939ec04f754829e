#!/usr/bin/env bash
# ESD (negative guidance distilled into LoRA adapters) on a concept, then the forget/retain evaluation of the
# edited masked transformer with the original residual transformer and VQ.
# Usage: bash scripts/eval/esd.sh <concept> [dataset] [flags...]
#   e.g. bash scripts/eval/esd.sh violence synth --vq_name rvq --trans_name mtrans --res_name rtrans --steps 200
# Flags are split by python -m src.methods.pipeline (method flags vs evaluation flags); see python -m src.methods.esd --help.
# NPROC=<n> runs it under torchrun on n processes (TORCHRUN_ARGS: more torchrun flags); see scripts/_launch.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
hmu_run src.methods.pipeline esd "$@"
