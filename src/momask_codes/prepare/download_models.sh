#!/usr/bin/env bash
# Upstream's path (src/momask_codes/prepare/download_models.sh) for scripts/prepare/download_models.sh; same flags.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/prepare/download_models.sh" "$@"
