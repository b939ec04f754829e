#!/usr/bin/env bash
# Upstream's spelling of scripts/train/finetune_t2m.sh (kept so the paper's README runs as written).
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/finetune_t2m.sh" "$@"
