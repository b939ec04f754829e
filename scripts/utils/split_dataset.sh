#!/usr/bin/env bash
# Keyword forget/retain splits: dataset/<ds>/kw_splits/{split}-w-{concept}.txt and -wo-.
# Usage: bash scripts/utils/split_dataset.sh <dataset> <concept> [--main_split test] [--match substring] [--force] ...
#        upstream spellings work too: --dataset HumanML3D --split_name violence --main_split test --min_occurence 2
#        --tmr refines by TMR retrieval (needs checkpoints/<ds>/tmr from `python -m src.train.tmr`) and writes
#        kw_splits/{split}-w-{concept}-tmr.txt / -wo-...-tmr.txt (--tmr_name --tmr_method knn|upstream_filter
#        --tmr_min_occurence --max_rank --repeat_times)
# Everything is parsed by `python -m src.data.split` (see --help there).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../_venv.sh"
python -m src.data.split "$@"
