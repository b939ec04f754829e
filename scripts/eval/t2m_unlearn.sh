#!/usr/bin/env bash
# Evaluate a model on the forget and retain test sets of a concept; writes results/<run>/metrics.json.
# Usage: bash scripts/eval/t2m_unlearn.sh --dataset_name synth --concept violence --method original [flags...]
#        (every flag goes to `python -m src.eval.t2m_unlearn`, see --help), or in upstream's wrapper flags:
#        bash scripts/eval/t2m_unlearn.sh --dataset HumanML3D --split_name violence --ckpt lcr16_HumanML3D_violence.tar \
#            --method LCR --name LCR16        # --name is the results label; see python -m src.eval.t2m_unlearn_sh
# NPROC=<n> runs it under torchrun on n processes (TORCHRUN_ARGS: more torchrun flags); see scripts/_launch.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
hmu_run src.eval.t2m_unlearn_sh "$@"
