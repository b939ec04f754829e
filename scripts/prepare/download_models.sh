#!/usr/bin/env bash
# Fetch upstream's released models archive(s) with gdown into the hmu layout; never overwrites existing files.
# Flags: --dataset t2m|kit|all, --from_dir DIR (use archives already downloaded), --checkpoints_dir, --glove_dir.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
python -m src.prepare.download models "$@"
