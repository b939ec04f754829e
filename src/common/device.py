"""Device selection for CLIs. Library code never names a device: it follows its tensors."""
from __future__ import annotations

import logging

from .errors import HmuError

log = logging.getLogger(__name__)


def resolve_device(gpu_id: int | None = None, device: str | None = None):
    """``--device`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) wins over ``--gpu_id`` (-1 = CPU).

    Asking for an accelerator that is not there is an error (HmuError), never a silent fall-back:
    a run that the user believes is on a GPU must not quietly take hours on the CPU.
    """
    import torch

    if device is None:
        device = "cpu" if gpu_id is None or int(gpu_id) < 0 else f"cuda:{int(gpu_id)}"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise HmuError(f"unknown device '{device}' (use cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise HmuError(f"--gpu_id/--device asks for {device} but no CUDA GPU is available (use --gpu_id -1 for CPU)")
        idx = dev.index or 0
        if idx >= torch.cuda.device_count():
            raise HmuError(f"GPU {idx} does not exist ({torch.cuda.device_count()} visible); use --gpu_id -1 for CPU")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise HmuError("--device mps asked for but MPS is not available")
    return dev

