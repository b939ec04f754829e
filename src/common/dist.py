"""Running under ``torchrun``: the process group, this process's rank and device, and the few collectives hmu uses.

``torchrun --nproc_per_node N`` (or ``srun`` + ``torchrun`` across nodes) sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init` then starts the default process group with ``gloo`` on CPU and ``nccl`` on CUDA (chosen
from the device the CLI resolved) and, on CUDA, moves each rank to GPU ``LOCAL_RANK``. Without those variables every
function here is the single-process identity: rank 0 of a world of 1, no collective is called.

Rules the callers keep: every rank runs the same code; only rank 0 writes files (:func:`is_main`), and a value that
rank 0 computes from the disk reaches the others through :func:`on_main`, so a failure there is raised on every rank
rather than leaving them waiting at a barrier.

Only the standard library is imported at module level (torch inside the functions), so CLIs stay fast to ``--help``.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from src.common.errors import HmuError

T = TypeVar("T")


def env_world_size() -> int:
    """WORLD_SIZE as torchrun set it (1 when absent)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise HmuError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} is not an integer") from None


DEFAULT_TIMEOUT_S = 300.0  # rendezvous and collectives: minutes, not torch's 30-minute default
TIMEOUT_ENV = "HMU_DIST_TIMEOUT"
MANUAL_ENV = "HMU_DIST_MANUAL"  # 1: the rank variables were set by a launcher other than torchrun (srun, mpirun...)


def _int_env(name: str, default: str | None = None) -> int | None:
    v = os.environ.get(name, default)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        raise HmuError(f"{name}={v!r} is not an integer") from None


def timeout_s() -> float:
    """Seconds a rendezvous or a collective may wait for the other processes (``HMU_DIST_TIMEOUT``, default 300)."""
    v = os.environ.get(TIMEOUT_ENV)
    if v is None or v == "":
        return DEFAULT_TIMEOUT_S
    try:
        t = float(v)
    except ValueError:
        raise HmuError(f"{TIMEOUT_ENV}={v!r} is not a number of seconds") from None
    if not 1 <= t <= 86400:
        raise HmuError(f"{TIMEOUT_ENV}={v!r} must be between 1 and 86400 seconds")
    return t


def check_launch_env() -> tuple[int, int]:
    """(rank, world size) of a multi-process launch, checked before any rendezvous so that a wrong environment is
    one line at once instead of a silent wait: integers, 0 <= RANK < WORLD_SIZE, LOCAL_RANK >= 0, MASTER_ADDR and
    a MASTER_PORT in 1..65535, and a launcher that started the other processes (torchrun sets
    TORCHELASTIC_RUN_ID; another launcher says so with HMU_DIST_MANUAL=1)."""
    world = env_world_size()
    if world < 1:
        raise HmuError(f"WORLD_SIZE={world} must be >= 1")
    if world > 65536:
        raise HmuError(f"WORLD_SIZE={world} is more processes than hmu supports (65536)")
    if world == 1:
        return 0, 1
    launched = os.environ.get("TORCHELASTIC_RUN_ID") or os.environ.get(MANUAL_ENV) == "1"
    if not launched:
        raise HmuError(f"WORLD_SIZE={world} is set but this process was not started by torchrun (no "
                       f"TORCHELASTIC_RUN_ID): start it with torchrun --nproc_per_node {world} ..., unset WORLD_SIZE "
                       f"for one process, or set {MANUAL_ENV}=1 if another launcher started all {world}")
    r = _int_env("RANK")
    if r is None:
        raise HmuError(f"WORLD_SIZE={world} but RANK is not set (start the processes with torchrun)")
    if not 0 <= r < world:
        raise HmuError(f"RANK={r} is outside 0..{world - 1} (WORLD_SIZE={world})")
    local = _int_env("LOCAL_RANK", "0")
    if local < 0:
        raise HmuError(f"LOCAL_RANK={local} must be >= 0")
    if not os.environ.get("MASTER_ADDR"):
        raise HmuError(f"WORLD_SIZE={world} but MASTER_ADDR is not set: no address to meet the other processes at "
                       f"(torchrun sets it; with another launcher export MASTER_ADDR and MASTER_PORT)")
    port = _int_env("MASTER_PORT")
    if port is None or not 1 <= port <= 65535:
        raise HmuError(f"MASTER_PORT={os.environ.get('MASTER_PORT')!r} must be a port number in 1..65535")
    return r, world


def is_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if is_initialized() else 0


def is_main() -> bool:
    """True on rank 0 (and in a single-process run): the one process that writes files and prints results."""
    return rank() == 0


def backend_for(device) -> str:
    """``nccl`` for a CUDA device, ``gloo`` otherwise."""
    return "nccl" if getattr(device, "type", str(device).split(":")[0]) == "cuda" else "gloo"


def init(device):
    """Start the process group when launched by torchrun (WORLD_SIZE > 1) -> this rank's device.

    On CUDA each rank takes GPU ``LOCAL_RANK`` (the ``--gpu_id`` flag then only says "CUDA"); on CPU the device is
    unchanged. Called once per process by the CLIs' setup; a second call returns the device unchanged.
    """
    import torch

    device = torch.device(device)
    r, world = check_launch_env()
    if world <= 1:
        return device
    import datetime

    import torch.distributed as dist

    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise HmuError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) visible")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not is_initialized():
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        t = timeout_s()
        where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        try:
            dist.init_process_group(backend_for(device), timeout=datetime.timedelta(seconds=t), **kwargs)
        except (RuntimeError, ValueError, OSError) as exc:  # DistStoreError, DistNetworkError, socket errors
            raise HmuError(f"rank {r} of {world}: could not meet the other processes at {where} within {t:g} s "
                           f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); are all {world} started? "
                           f"({TIMEOUT_ENV} sets the wait)") from None
        import atexit

        atexit.register(shutdown)
    return device


def init_cli(device):
    """:func:`init` for a CLI -> this rank's device; on the other ranks than 0, logging says only warnings and
    stdout goes to /dev/null, so a run speaks with one voice (rank 0's results and summary lines)."""
    device = init(device)
    if not is_main():
        import logging
        import sys

        logging.getLogger().setLevel(logging.WARNING)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    return device


def shutdown() -> None:
    """Destroy the process group (registered to run at exit), so torch does not warn of a leaked group."""
    if is_initialized():
        import torch.distributed as dist

        dist.destroy_process_group()


def barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier()


def check_divisible(batch_size: int, what: str = "--batch_size") -> int:
    """-> the per-rank batch size; the global batch (the flag) must split evenly over the ranks."""
    w = world_size()
    if batch_size % w:
        raise HmuError(f"{what} {batch_size} does not split over {w} processes (use a multiple of {w})")
    return batch_size // w


def shard(seq: Sequence[T]) -> Sequence[T]:
    """This rank's contiguous share of one global batch ``seq`` (numpy array, tensor or list of length divisible by
    the world size), like DistributedSampler's split of one global batch."""
    w = world_size()
    if w == 1:
        return seq
    n = len(seq)
    if n % w:
        raise HmuError(f"a batch of {n} does not split over {w} processes")
    k = n // w
    r = rank()
    return seq[r * k:(r + 1) * k]


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and return its result on every rank; an HmuError there is raised on every rank."""
    if world_size() == 1:
        return fn()
    import torch.distributed as dist

    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", fn())
        except HmuError as exc:
            box[0] = ("error", str(exc))
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise HmuError(value)
    return value


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (a one-element list in a single-process run)."""
    if world_size() == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """The mean of each scalar over the ranks (same keys on every rank)."""
    if world_size() == 1 or not values:
        return values
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    t /= world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def my_indices(n: int) -> list[int]:
    """The indices 0..n-1 this rank handles when n independent jobs (e.g. evaluation repeats) are dealt round-robin."""
    return list(range(rank(), n, world_size()))
