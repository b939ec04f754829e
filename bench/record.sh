#!/usr/bin/env bash
# Run one bench command and keep its output as a committed result file, so README.md's benchmarks table is rendered
# from what the script printed (python -m src.report.readme, block "benchmarks").
# Usage: bash bench/record.sh NAME COMMAND...     -> docs/results/bench/NAME.txt (stdout and stderr, with a header)
# e.g.   bash bench/record.sh eval python bench/eval.py --repeats 10
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/_venv.sh"
name="$1"; shift
out="docs/results/bench/$name.txt"
mkdir -p "$(dirname "$out")"
tmp="$(mktemp "$out.partial.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
{
    echo "# command: $*"
    echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- src bench scripts 2>/dev/null || echo +uncommitted-changes)"
    echo "# machine: $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), load before: $(cut -d' ' -f1 /proc/loadavg)"
} > "$tmp"
"$@" 2>&1 | tee -a "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "recorded $out"
