#!/usr/bin/env bash
# Regenerate every number README.md quotes: the quickstart (with attacks), the LCR selection sweep and the TMR split
# measurement, copied/written under docs/results/, then README.md's marked tables rendered from them.
# Usage: bash scripts/update_docs_results.sh [--force]   (--force: redo the quickstart from scratch)
# About 15-20 CPU minutes on 2 cores after a finished quickstart (whose stages skip themselves).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$HMU_ROOT"
python -m src.quickstart --attacks "$@"
[ -f checkpoints/synth/tmr/config.json ] || python -m src.train.tmr --dataset_name synth --name tmr --no_progress
python -m bench.lcr_sweep --out docs/results/lcr_sweep
python -m bench.tmr_split --out docs/results/tmr_split
python -m src.report.readme docs/results --collect results/quickstart --write README.md
python -m src.report.readme docs/results --check README.md
