#!/usr/bin/env bash
# LCR on a concept, then the forget/retain evaluation of the edited VQ with the original transformers.
# Usage: bash scripts/eval/lcr.sh <concept> [dataset] [flags...]
#   e.g. bash scripts/eval/lcr.sh violence synth --vq_name rvq --trans_name mtrans --res_name rtrans --repeat_times 3
# Sweep over --code_prune as upstream's lcr.sh (one edit + evaluation per value, runs lcr<k>_<concept>):
#   bash scripts/eval/lcr.sh violence HumanML3D --code_prune_sweep 32 8 16 64 --select upstream --upstream_collection
# Flags are split by python -m src.methods.pipeline (method flags vs evaluation flags); --model bamm passes through.
# NPROC=<n> runs it under torchrun on n processes (TORCHRUN_ARGS: more torchrun flags); see scripts/_launch.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
hmu_run src.methods.pipeline lcr "$@"
