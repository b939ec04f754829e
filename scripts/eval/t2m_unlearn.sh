#!/usr/bin/env bash
# Evaluate a model on the forget and retain test sets of a concept; writes results/<run>/metrics.json.
# Usage: bash scripts/eval/t2m_unlearn.sh --dataset_name synth --concept violence --method original [flags...]
# Every flag goes to `python -m src.eval.t2m_unlearn` (see --help).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
exec python -m src.eval.t2m_unlearn "$@"
