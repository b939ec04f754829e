#!/usr/bin/env bash
# UCE and RECE on a concept (cond_emb of the masked + residual transformers), then the evaluation of each.
# Usage: bash scripts/eval/rece_uce.sh <concept> [dataset] [flags...]
#   e.g. bash scripts/eval/rece_uce.sh violence synth --trans_name mtrans --res_name rtrans --repeat_times 3
# Flags are split by python -m src.methods.pipeline (method flags vs evaluation flags); --model bamm passes through.
# NPROC=<n> runs it under torchrun on n processes (TORCHRUN_ARGS: more torchrun flags); see scripts/_launch.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
hmu_run src.methods.pipeline rece_uce "$@"
