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


def get_spec(name: str) -> DatasetSpec:
    """Look a dataset up by name or alias (case-insensitive); HmuError listing the known ones otherwise."""
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise HmuError(f"unknown dataset '{name}' (known: {', '.join(SPECS)})")
    return SPECS[key]


def dataset_names() -> list[str]:
    return list(SPECS)
