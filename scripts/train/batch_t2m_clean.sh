#!/usr/bin/env bash
# The full retain-only training (upstream's scripts/train/batch_t2m_clean.sh, the reference D_r): VQ-VAE, masked and
# residual transformers trained from scratch on HumanML3D without the forget motions of `violence`, as runs
# t2m_clean_vq, t2m_clean and t2m_clean_res. Flags after the defaults win, e.g.
#   bash scripts/train/batch_t2m_clean.sh --dataset_name synth --name synth_clean
#   bash scripts/train/batch_t2m_clean.sh --gpu_id 0 -- --max_epoch 50      # after --: flags for every trainer
# Every flag goes to `python -m src.methods.retrain` (see --help there).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
exec python -m src.methods.retrain --dataset_name HumanML3D --concept violence --name t2m_clean "$@"
