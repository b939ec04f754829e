#!/usr/bin/env bash
# Install what the tests need (into .venv) and run the whole suite, slow tests included.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
export HMU_FIXTURES="${HMU_FIXTURES:-$HMU_ROOT/../shared/fixtures/upstream}"
export HMU_TEST_SH=1  # tests that need this venv fail instead of skipping when run from here
python -m pytest -q "$@"
