#!/usr/bin/env bash
# Combined LCR (upstream's lcr_combined.sh): the union of the codes selected for each sub-concept on its own keyword
# split (violence = kick with --code_prune 16 + punch_jab_box_hit_beat with 8), one edit, then the evaluation on the
# concept's splits. Run: lcr_combined_<concept>.
# Usage: bash scripts/eval/lcr_combined.sh <concept> [dataset] [flags...]
#   e.g. bash scripts/eval/lcr_combined.sh violence HumanML3D --select upstream --upstream_collection
#        bash scripts/eval/lcr_combined.sh violence synth --sub_concepts kick:8,punch_jab_box_hit_beat:8
# Every sub-concept's keyword splits must exist (python -m src.data.split <dataset> <sub-concept>).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
exec python -m src.methods.pipeline lcr "$@" --combined
