# Sourced by the sbatch templates: torchrun's rendezvous from the SLURM variables, for scripts/_launch.sh.
# One srun task per node runs torchrun, which starts one process per GPU of that node (NPROC); the nodes meet at the
# job's first host (c10d rendezvous, id = the job id), so the same template runs on 1 node or on several.
set -euo pipefail
: "${SLURM_JOB_ID:?run this through sbatch}"
HMU_RDZV_HOST="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
HMU_RDZV_PORT="${HMU_RDZV_PORT:-$((29500 + SLURM_JOB_ID % 1000))}"
# GPUs per node: --gpus-per-node sets SLURM_GPUS_ON_NODE; fall back to the visible devices.
if [ -z "${NPROC:-}" ]; then
    NPROC="${SLURM_GPUS_ON_NODE:-$(nvidia-smi -L 2>/dev/null | wc -l)}"
fi
NPROC="${NPROC%%(*}"  # SLURM may write "4(x2)"
export NPROC
export TORCHRUN_ARGS="--nnodes ${SLURM_NNODES:-1} --rdzv_id $SLURM_JOB_ID --rdzv_backend c10d --rdzv_endpoint $HMU_RDZV_HOST:$HMU_RDZV_PORT ${TORCHRUN_ARGS:-}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( ${SLURM_CPUS_PER_TASK:-8} / (NPROC > 0 ? NPROC : 1) ))}"
echo "[hmu] job $SLURM_JOB_ID: ${SLURM_NNODES:-1} node(s) x $NPROC process(es), rendezvous $HMU_RDZV_HOST:$HMU_RDZV_PORT"
