#!/usr/bin/env bash
# Upstream's path (src/momask_codes/prepare/download_glove.sh) for scripts/prepare/download_glove.sh; same flags.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/prepare/download_glove.sh" "$@"
