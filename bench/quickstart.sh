#!/usr/bin/env bash
# Time and peak memory of the whole quickstart from scratch (fresh data, checkpoints and results in a temp folder;
# the venv is reused). Usage: bash bench/quickstart.sh [--fast] [quickstart flags...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/_venv.sh"
work="$(mktemp -d "${TMPDIR:-/tmp}/hmu_bench_qs.XXXXXX")"
trap 'rm -rf "$work"' EXIT
python - "$work" "$@" <<'PY'
import resource, subprocess, sys, time
work, extra = sys.argv[1], sys.argv[2:]
cmd = [sys.executable, "-m", "src.quickstart", "--checkpoints_dir", f"{work}/checkpoints", "--dataset_dir",
       f"{work}/dataset", "--results_dir", f"{work}/results", *extra]
t0 = time.time()
rc = subprocess.call(cmd)
wall = time.time() - t0
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB; the largest single process
t1 = time.time()
rc2 = subprocess.call(cmd, stdout=subprocess.DEVNULL)
again = time.time() - t1
print(f"quickstart{' ' + ' '.join(extra) if extra else ''}: exit {rc}, wall {wall:.1f} s ({wall / 60:.2f} min), "
      f"peak memory of one stage {peak_mb:.0f} MiB; second run (all stages skipped): {again:.1f} s (exit {rc2})")
sys.exit(rc or rc2)
PY
