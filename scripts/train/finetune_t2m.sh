#!/usr/bin/env bash
# Fine-tuning on the retain set (upstream's scripts/train/fintetune_t2m.sh): the masked transformer of HumanML3D's
# released MoMask continues training on kw_splits/train_val-wo-violence and is written as a NEW run mtrans_t2m_ft.
# Flags after the defaults win, e.g. change the data, the source or resume (upstream: "modify the script"):
#   bash scripts/train/finetune_t2m.sh --dataset_name synth --trans_name t2m_tiny --res_name tres_tiny
#   bash scripts/train/finetune_t2m.sh --is_continue            # resume mtrans_t2m_ft from its latest.tar
# Every flag goes to `python -m src.methods.finetune` (see --help there).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
exec python -m src.methods.finetune --dataset_name HumanML3D --concept violence --name mtrans_t2m_ft "$@"
