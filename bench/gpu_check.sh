#!/usr/bin/env bash
# One check of a machine with a GPU, in under 8 minutes; prints a one-line summary at the end and exits 1 if a step
# failed (2 if there is no usable GPU at all).
#   1. parity on CUDA (float32, TF32 off): bench/gpu_parity.py holds CUDA to the CPU results within 1e-4; the CPU
#      results are held to upstream's fixtures at 1e-5 by tests/test_generate_parity.py, which runs here too (CPU);
#   2. the quickstart --fast on GPU 0 (fresh folders in a temporary directory);
#   3. with 2+ GPUs: torchrun on 2 GPUs (nccl) of the tiny engine model, its weights compared with 1 GPU.
# Usage: bash bench/gpu_check.sh        (HMU_GPU_CHECK_KEEP=DIR keeps the quickstart's files in DIR)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/_venv.sh"
start=$(date +%s)
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: FAIL - no CUDA device visible to torch ($(python -c 'import torch; print(torch.__version__)' 2>&1)); nothing was checked" >&2
    exit 2
fi
ngpu=$(python -c "import torch; print(torch.cuda.device_count())")
name=$(python -c "import torch; print(torch.cuda.get_device_name(0))")
work="${HMU_GPU_CHECK_KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/hmu_gpu_check.XXXXXX")}"
mkdir -p "$work"
declare -a results
status=0
step() {  # step <label> <timeout seconds> <command...>
    local label="$1" limit="$2"
    shift 2
    local t0=$(date +%s)
    echo "=== $label"
    if timeout "$limit" "$@"; then
        results+=("$label ok ($(( $(date +%s) - t0 ))s)")
    else
        results+=("$label FAIL ($(( $(date +%s) - t0 ))s)")
        status=1
    fi
}
step "parity-cuda" 120 python bench/gpu_parity.py --device cuda:0
step "parity-cpu-fixtures" 120 python -m pytest -q -x tests/test_generate_parity.py
step "quickstart-fast" 300 python -m src.quickstart --fast --gpu_id 0 --checkpoints_dir "$work/checkpoints" \
    --dataset_dir "$work/dataset" --results_dir "$work/results"
if [ "$ngpu" -ge 2 ]; then
    step "torchrun-2gpu" 180 bash -c '
        set -e
        python tests/dist/tiny_train.py "$1/ddp1" --device cuda
        python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dist/tiny_train.py "$1/ddp2" --device cuda
        python -c "
import sys, torch
a = torch.load(sys.argv[1] + \"/ddp1/model/latest.tar\", weights_only=True)[\"net\"]
b = torch.load(sys.argv[1] + \"/ddp2/model/latest.tar\", weights_only=True)[\"net\"]
d = max(float((a[k] - b[k]).abs().max()) for k in a)
print(f\"2 GPUs vs 1 GPU: max |dw| = {d:.2e}\")
sys.exit(0 if d < 1e-4 else 1)
" "$1"' _ "$work"
else
    results+=("torchrun-2gpu skipped (1 GPU)")
fi
[ -z "${HMU_GPU_CHECK_KEEP:-}" ] && rm -rf "$work"
summary="$(IFS=';'; echo "${results[*]}")"
echo "gpu_check: $([ $status -eq 0 ] && echo PASS || echo FAIL) on $ngpu x $name in $(( $(date +%s) - start ))s: ${summary//;/, }"
exit $status
