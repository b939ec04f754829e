"""The dataset table: every size, rate and folder name that other modules need, one row per dataset."""
from __future__ import annotations

from dataclasses import dataclass, field

from src.common.errors import HmuError


@dataclass(frozen=True)
class DatasetSpec:
    name: str                      # canonical name used in flags and splits.json
    folder: str                    # dataset/<folder>
    dim_pose: int                  # feature size per frame
    joints_num: int
    fps: int
    max_motion_length: int         # frames
    min_motion_length: int         # frames; shorter motions are skipped by loaders
    unit_length: int               # VQ temporal downsampling / evaluator unit
    max_text_len: int = 20         # tokens kept by the evaluator's text side
    aliases: tuple[str, ...] = ()  # other names accepted on the command line / in opt.txt (first one = upstream ckpt folder)
    synthetic: bool = False
    kinematic_chain: tuple[tuple[int, ...], ...] = field(default=())
    eval_protocol: str = "hmu"     # default evaluation protocol (src/eval/sets.py): upstream's on real datasets

    @property
    def ckpt_folders(self) -> tuple[str, ...]:
        """Folder names under ``checkpoints/`` that hold this dataset's models, ours first."""
        return (self.name, *self.aliases)

    def crop_length(self, n_frames: int, *, at_least_one_unit: bool = False) -> int:
        """Frames kept of an ``n_frames`` motion: ``min(n, max_motion_length) // unit_length * unit_length``.

        ``at_least_one_unit``: a length asked for a generation (a prompt's), never below one VQ unit."""
        n = crop_length(n_frames, unit_length=self.unit_length, max_motion_length=self.max_motion_length)
        return max(n, self.unit_length) if at_least_one_unit else n


def crop_length(n_frames: int, *, unit_length: int, max_motion_length: int) -> int:
    """The one length-crop rule (upstream's evaluation loader): ``min(n, max) // unit * unit`` frames.

    For callers that hold the two sizes but no spec (a checkpoint's config); ``DatasetSpec.crop_length`` otherwise."""
    return min(int(n_frames), int(max_motion_length)) // int(unit_length) * int(unit_length)


# HumanML3D / SMPL 22-joint skeleton: right leg, left leg, spine+head, right arm, left arm.
T2M_KINEMATIC_CHAIN = ((0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20))
KIT_KINEMATIC_CHAIN = ((0, 11, 12, 13, 14, 15), (0, 16, 17, 18, 19, 20), (0, 1, 2, 3, 4), (3, 5, 6, 7), (3, 8, 9, 10))

SPECS: dict[str, DatasetSpec] = {
    "HumanML3D": DatasetSpec("HumanML3D", "HumanML3D", 263, 22, 20, 196, 40, 4, aliases=("t2m",),
                             kinematic_chain=T2M_KINEMATIC_CHAIN),
    "KIT-ML": DatasetSpec("KIT-ML", "KIT-ML", 251, 21, 12, 196, 24, 4, aliases=("kit", "KIT"),
                          kinematic_chain=KIT_KINEMATIC_CHAIN),
    "Motion-X": DatasetSpec("Motion-X", "Motion-X", 263, 22, 20, 196, 40, 4, aliases=("motionx", "Motion_X"),
                            kinematic_chain=T2M_KINEMATIC_CHAIN),
    # The embedded procedural dataset: HumanML3D's exact layout, shorter clips so CPU training takes minutes.
    "synth": DatasetSpec("synth", "synth", 263, 22, 20, 196, 40, 4, synthetic=True,
                         kinematic_chain=T2M_KINEMATIC_CHAIN, eval_protocol="fixed"),
}

_ALIASES = {a.lower(): s.name for s in SPECS.values() for a in (s.name, *s.aliases)}


DATASET_FILE = "dataset.json"   # a folder's own spec: {"schema": "hmu.dataset/1", "like": "HumanML3D", ...}


def folder_spec(dataset_dir, name: str) -> DatasetSpec | None:
    """The spec of ``<dataset_dir>/<name>/dataset.json`` (written by ``python -m src.data.import_bvh``), registered
    under ``name`` so every later lookup finds it; None when the folder has no such file.

    The file names a known dataset it is laid out ``like`` (sizes, rates, skeleton) and may override
    ``min_motion_length``/``max_motion_length``; checkpoints go to ``checkpoints/<name>/``."""
    import json
    from dataclasses import replace
    from pathlib import Path

    path = Path(dataset_dir) / str(name) / DATASET_FILE
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HmuError(f"{path} is not readable JSON ({type(exc).__name__}); rewrite it or remove it") from None
    if not isinstance(obj, dict) or obj.get("schema") != "hmu.dataset/1" or not isinstance(obj.get("like"), str):
        raise HmuError(f"{path}: expected {{\"schema\": \"hmu.dataset/1\", \"like\": \"HumanML3D\", ...}}")
    like = get_spec(obj["like"])
    sizes = {}
    for key in ("min_motion_length", "max_motion_length"):
        if key in obj:
            v = obj[key]
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100_000:
                raise HmuError(f"{path}: {key} must be an integer between 1 and 100000, got {v!r}")
            sizes[key] = v
    spec = replace(like, name=str(name), folder=str(name), aliases=(), synthetic=False, **sizes)
    SPECS[spec.name] = spec
    _ALIASES[spec.name.lower()] = spec.name
    return spec


def get_spec(name: str, dataset_dir=None) -> DatasetSpec:
    """Look a dataset up by name or alias (case-insensitive), then as a folder with its own ``dataset.json`` in
    ``dataset_dir`` (default: the datasets root, ``HMU_DATASET``, else ./dataset); HmuError listing the known ones
    otherwise."""
    key = _ALIASES.get(str(name).lower())
    if key is None:
        import os
        from pathlib import Path

        # the default datasets root of src.common.paths.Paths (imported there from here, so not imported back)
        root = dataset_dir or os.environ.get("HMU_DATASET") or Path(__file__).resolve().parents[2] / "dataset"
        spec = folder_spec(Path(root).expanduser(), name) if str(name) and "/" not in str(name) else None
        if spec is not None:
            return spec
        raise HmuError(f"unknown dataset '{name}' (known: {', '.join(SPECS)}, or a folder of the datasets root "
                       f"with a {DATASET_FILE})")
    return SPECS[key]


def dataset_names() -> list[str]:
    return list(SPECS)
