# Sourced by scripts/train/*.sh and scripts/eval/*.sh after _venv.sh: `hmu_run <module> [flags...]` runs
# `python -m <module>`, or, with NPROC=<n> set, `torchrun --nproc_per_node <n> -m <module>` (every rank on the same
# flags; src/common/dist.py picks gloo on CPU and nccl on CUDA, where rank i uses GPU LOCAL_RANK).
#   NPROC=4 bash scripts/train/mask.sh --name m --vq_name v --gpu_id 0
#   NPROC=4 TORCHRUN_ARGS="--nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint host:29500" bash ...
# TORCHRUN_ARGS is passed to torchrun as is (word-split); without rendezvous flags in it, --standalone is added.
hmu_run() {
    local module="$1"
    shift
    if [ -z "${NPROC:-}" ]; then
        python -m "$module" "$@"
        return
    fi
    case "$NPROC" in
        '' | *[!0-9]*) echo "error: NPROC must be a positive integer, got '$NPROC'" >&2; return 2 ;;
    esac
    if [ "$NPROC" -lt 1 ]; then
        echo "error: NPROC must be a positive integer, got '$NPROC'" >&2
        return 2
    fi
    # shellcheck disable=SC2206
    local extra=(${TORCHRUN_ARGS:-})
    case " ${TORCHRUN_ARGS:-} " in
        *" --rdzv"* | *" --master_addr"* | *" --nnodes"*) ;;
        *) extra=(--standalone "${extra[@]}") ;;
    esac
    python -m torch.distributed.run --nproc_per_node "$NPROC" "${extra[@]}" -m "$module" "$@"
}
