#!/usr/bin/env bash
# Time and peak memory of the whole quickstart from scratch (fresh data, checkpoints and results in a temp folder;
# the venv is reused, or with --install a new one is created in the temp folder and its install is timed too, as on a
# fresh clone), then the time of a second run, which must skip every stage.
# Peak memory is the largest sum of resident memory over the quickstart's whole process tree (stages run in parallel),
# sampled every 0.2 s from /proc, and the largest single process as reported by the kernel.
# Usage: bash bench/quickstart.sh [--install] [--keep DIR] [quickstart flags...]   (--keep: leave the run's files in DIR)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
install=0; keep=""
if [ "${1:-}" = "--install" ]; then install=1; shift; fi
if [ "${1:-}" = "--keep" ]; then keep="$2"; shift 2; fi
if [ -n "$keep" ]; then mkdir -p "$keep"; work="$(cd "$keep" && pwd)"
else work="$(mktemp -d "${TMPDIR:-/tmp}/hmu_bench_qs.XXXXXX")"; trap 'rm -rf "$work"' EXIT; fi
if [ "$install" = 1 ]; then py=python3; export HMU_VENV="$work/venv"
else source "$root/scripts/_venv.sh"; py=python; fi
cd "$root"
"$py" - "$work" "$install" "$@" <<'PY'
import os, resource, subprocess, sys, threading, time
work, install, extra = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
dirs = ["--checkpoints_dir", f"{work}/checkpoints", "--dataset_dir", f"{work}/dataset", "--results_dir",
        f"{work}/results"]
# with --install the venv is created by scripts/quickstart.sh itself, inside the timed run
cmd = (["bash", "scripts/quickstart.sh"] if install else [sys.executable, "-m", "src.quickstart"]) + dirs + extra


def tree_rss_kib(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields["PPid"]), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


t0 = time.time()
proc = subprocess.Popen(cmd)
peak = [0]
def sample():
    while proc.poll() is None:
        peak[0] = max(peak[0], tree_rss_kib(proc.pid))
        time.sleep(0.2)
threading.Thread(target=sample, daemon=True).start()
rc = proc.wait()
wall = time.time() - t0
single_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
t1 = time.time()
rc2 = subprocess.call(cmd, stdout=subprocess.DEVNULL)
again = time.time() - t1
what = "venv install + quickstart" if install else "quickstart"
print(f"{what}{' ' + ' '.join(extra) if extra else ''}: exit {rc}, wall {wall:.1f} s ({wall / 60:.2f} min), "
      f"peak memory {peak[0] / 1024:.0f} MiB summed over all running stages (largest single process "
      f"{single_mb:.0f} MiB); second run (all stages skipped): {again:.1f} s (exit {rc2})")
sys.exit(rc or rc2)
PY
