#!/usr/bin/env bash
# Fetch upstream's released models archive(s) with gdown into the hmu layout; never overwrites existing files.
# Flags: --dataset t2m|kit|all, --from_dir DIR (use archives already downloaded), --checkpoints_dir, --glove_dir.
# Without the needed package in $HMU_VENV it stops first, in one line saying how to install it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_preflight.sh" models "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
python -m src.prepare.download models "$@"
