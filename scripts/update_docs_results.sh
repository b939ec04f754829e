#!/usr/bin/env bash
# Regenerate every number README.md quotes: the quickstart (with attacks), the LCR selection sweep, the TMR split
# measurement, the quickstart's models under the hmu protocol and the benchmarks, copied/written under docs/results/,
# then README.md's marked tables rendered from them. The quickstart's own timing (a fresh venv install, about 10 min)
# is redone only with HMU_BENCH_QUICKSTART=1.
# Usage: bash scripts/update_docs_results.sh [--force]   (--force: redo the quickstart from scratch)
# About 15-20 CPU minutes on 2 cores after a finished quickstart (whose stages skip themselves).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$HMU_ROOT"
python -m src.quickstart --attacks "$@"
[ -f checkpoints/synth/tmr/config.json ] || python -m src.train.tmr --dataset_name synth --name tmr --no_progress
python -m bench.lcr_sweep --out docs/results/lcr_sweep
python -m bench.tmr_split --out docs/results/tmr_split
python -m bench.protocols --quickstart results/quickstart --protocol hmu --out docs/results/protocols/hmu --force
# benchmarks (timings: run them on an otherwise idle machine)
bash bench/record.sh lcr_select python -m bench.lcr --part select
bash bench/record.sh lcr_collect python -m bench.lcr --part collect
bash bench/record.sh lcr_vs_finetune python -m bench.lcr_vs_finetune
bash bench/record.sh eval python bench/eval.py --repeats 10
bash bench/record.sh gen_eval_small python bench/gen_eval.py --sizes small --rounds 4
[ "${HMU_BENCH_QUICKSTART:-0}" = 1 ] && bash bench/record.sh quickstart bash bench/quickstart.sh --install
python -m src.report.readme docs/results --collect results/quickstart --write README.md
python -m src.report.readme docs/results --check README.md
