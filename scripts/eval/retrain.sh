#!/usr/bin/env bash
# Retain-only reference D_r (trained from scratch on the retain set), then the forget/retain evaluation.
# Usage: bash scripts/eval/retrain.sh <concept> [dataset] [flags...]
#   e.g. bash scripts/eval/retrain.sh violence synth --vq_name rvq --trans_name mtrans --res_name rtrans --repeat_times 3
# Flags are split by python -m src.methods.pipeline (method flags vs evaluation flags); --model bamm passes through.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
exec python -m src.methods.pipeline retrain "$@"
