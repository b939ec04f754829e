#!/usr/bin/env bash
# The quickstart's method set forgetting each of several concepts, then one table concept x method.
# Usage: bash scripts/eval/all_concepts.sh <dataset> <concept,concept,...> [flags...]
#   e.g. bash scripts/eval/all_concepts.sh synth kick,punch_jab_box_hit_beat,jump_leap_hop,throw,violence [--fast]
# Results: results/quickstart[_fast]_<concept>/ per concept; table: results/all_concepts_<dataset>[_fast]/concepts.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
python -m src.cli.all_concepts "$@"
