"""One paths object: where checkpoints, datasets, word vectors and results live.

Defaults are relative to the repository root (not the CWD) and can be moved with flags or the environment
variables HMU_CHECKPOINTS, HMU_DATASET, HMU_GLOVE, HMU_RESULTS.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _env_path(var: str, default: Path) -> Path:
    v = os.environ.get(var)
    return Path(v).expanduser().resolve() if v else default


@dataclass(frozen=True)
class Paths:
    checkpoints_dir: Path
    dataset_dir: Path
    glove_dir: Path
    results_dir: Path

    @classmethod
    def default(cls, *, checkpoints_dir: str | os.PathLike | None = None, dataset_dir: str | os.PathLike | None = None,
                glove_dir: str | os.PathLike | None = None, results_dir: str | os.PathLike | None = None) -> Paths:
        """Flags win over environment variables, which win over the repository defaults."""
        def pick(flag, var, sub):
            return Path(flag).expanduser().resolve() if flag else _env_path(var, REPO_ROOT / sub)
        return cls(
            checkpoints_dir=pick(checkpoints_dir, "HMU_CHECKPOINTS", "checkpoints"),
            dataset_dir=pick(dataset_dir, "HMU_DATASET", "dataset"),
            glove_dir=pick(glove_dir, "HMU_GLOVE", "glove"),
            results_dir=pick(results_dir, "HMU_RESULTS", "results"),
        )

    def data_root(self, dataset_name: str) -> Path:
        """``dataset/<folder>`` for a dataset name or alias (``t2m`` -> ``HumanML3D``)."""
        from src.common.datasets import get_spec
        return self.dataset_dir / get_spec(dataset_name).folder

    def run_dir(self, dataset_name: str, name: str) -> Path:
        """``checkpoints/<dataset>/<name>`` as upstream lays it out."""
        from src.common.datasets import get_spec
        return self.checkpoints_dir / get_spec(dataset_name).ckpt_folders[0] / name

    def glove(self, dataset_name: str) -> Path:
        """Word-vector folder for a dataset: ``glove/<dataset>/``, then ``dataset/<dataset>/glove/``, then ``glove/``.

        The first that holds ``our_vab_data.npy`` wins; ``glove/`` is returned otherwise (the loader names it in its error).
        """
        from src.common.datasets import get_spec
        folder = get_spec(dataset_name).folder
        for cand in (self.glove_dir / folder, self.dataset_dir / folder / "glove"):
            if (cand / "our_vab_data.npy").exists():
                return cand
        return self.glove_dir


def tmr_run_dir(paths: Paths, dataset_name: str, name: str, *, existing: bool = False) -> Path:
    """A TMR run folder ``checkpoints/<dataset>/<name>``; with ``existing``, the first of the dataset's checkpoint
    folders (ours, then upstream's alias such as ``t2m``, then upstream's TMR folder ``src/TMR/models/``) that holds
    the run (its ``config.json``), else ours. Here, below data/ and eval/, so the split and NCS commands can read it."""
    from src.common.datasets import get_spec

    cands = [Path(paths.checkpoints_dir) / f / name for f in get_spec(dataset_name).ckpt_folders]
    if existing:
        cands.append(REPO_ROOT / "src" / "TMR" / "models" / name)  # where upstream's README puts TMR checkpoints
        return next((c for c in cands if (c / "config.json").is_file()), cands[0])
    return cands[0]


ENV_GENERATION = "HMU_GENERATION"


def generation_root(flag: str | os.PathLike | None = None) -> Path:
    """``--generation_dir``, else env HMU_GENERATION, else ``<repo>/generation`` (upstream's ``./generation``): the
    root of every generation folder (``src.gen``, its alias ``src.momask_codes.gen_t2m``, ``gen_t2m_batch``)."""
    if flag:
        return Path(flag).expanduser().resolve()
    env = os.environ.get(ENV_GENERATION)
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "generation"
