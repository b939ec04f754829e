#!/usr/bin/env bash
# Fetch CLIP's ViT-B-32.pt with the clip package into checkpoints/clip/; never overwrites existing files.
# Flags: --checkpoints_dir, --from_dir DIR (a folder holding ViT-B-32.pt).
# Without the needed package in $HMU_VENV it stops first, in one line saying how to install it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_preflight.sh" clip "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
python -m src.prepare.download clip "$@"
