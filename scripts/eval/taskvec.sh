#!/usr/bin/env bash
# Task-vector negation (SafeMo's MMU; --mode static|gated) on a concept, then the forget/retain evaluation of the
# edited masked transformer with the original residual transformer and VQ.
# Usage: bash scripts/eval/taskvec.sh <concept> [dataset] [flags...]
#   e.g. bash scripts/eval/taskvec.sh violence synth --vq_name rvq --trans_name mtrans --res_name rtrans --steps 200
# Flags are split by python -m src.methods.pipeline (method flags vs evaluation flags); see python -m src.methods.taskvec --help.
# NPROC=<n> runs it under torchrun on n processes (TORCHRUN_ARGS: more torchrun flags); see scripts/_launch.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
hmu_run src.methods.pipeline taskvec "$@"
