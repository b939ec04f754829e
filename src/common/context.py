"""The one context of a command run: paths, the resolved dataset spec, device, overwrite and progress policy.

Built once per run by ``src.config.command.command_context``; library code receives it (or the parts it needs)
instead of names to look up again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .datasets import DatasetSpec
from .errors import HmuError
from .paths import Paths


@dataclass(frozen=True)
class Context:
    paths: Paths
    spec: DatasetSpec | None
    device: Any  # torch.device (torch is imported only by commands that need it)
    force: bool = False
    progress: bool = True
    wandb: Any = None  # src.common.logging.WandbOptions or None

    @property
    def dataset(self) -> DatasetSpec:
        if self.spec is None:
            raise HmuError("this command needs --dataset_name")
        return self.spec

    @property
    def data_root(self) -> Path:
        """``dataset/<folder>`` of the run's dataset."""
        return self.paths.dataset_dir / self.dataset.folder

    def run_dir(self, name: str) -> Path:
        """``checkpoints/<dataset>/<name>`` as upstream lays it out."""
        return self.paths.checkpoints_dir / self.dataset.ckpt_folders[0] / name
