#!/usr/bin/env bash
# UCE and RECE on a concept (cond_emb of the masked + residual transformers), then the evaluation of each.
# Usage: bash scripts/eval/rece_uce.sh <concept> [dataset] [flags...]
#   e.g. bash scripts/eval/rece_uce.sh violence synth --trans_name mtrans --res_name rtrans --repeat_times 3
# Flags are split by python -m src.methods.pipeline (method flags vs evaluation flags); --model bamm passes through.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
exec python -m src.methods.pipeline rece_uce "$@"
