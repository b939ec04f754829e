"""``python -m src.data.import_bvh --in DIR --out dataset/<name>``: BVH motion capture -> a HumanML3D-format dataset.

For every ``*.bvh`` of ``--in`` (a folder, or one file): read it (:mod:`src.data.bvh`, forward kinematics in the
channel order its header gives), take HumanML3D's 22 joints from the skeleton's joints (:data:`SKELETONS`: the
Bandai-Namco Research Motion dataset, CMU mocap's BVH conversion, Mixamo, and hmu's own export), convert the file's
unit to metres, resample to 20 fps by linear interpolation, put the clip's lowest point on the floor (y = 0), and
write

- ``new_joints/<stem>.npy`` (T, 22, 3) float32: those joints, metres, y up, world placement as captured (not turned
  to face Z+; joints_to_features does that for the features);
- ``new_joint_vecs/<stem>.npy`` (T-1, 263) float32: the project's joints -> features (:func:`src.data.motion.
  joints_to_features`, HumanML3D's ``process_file``);
- ``texts/<stem>.txt``: HumanML3D caption lines ``caption#word/POS ...#0.0#0.0`` from ``--labels`` (JSON or
  tab-separated, see :func:`read_labels`) or ``--caption_template``;
- ``train/val/test/train_val/all.txt`` (seeded shuffle, ``--split_ratio``), ``Mean.npy``/``Std.npy`` (train split,
  HumanML3D's group-averaged std), ``import.json`` (what was read, with which skeleton, unit and frame rate) and
  ``dataset.json`` (laid out like HumanML3D: every command then takes ``--dataset_name <name>`` with
  ``--dataset_dir`` the folder's parent).

The folder is built beside ``--out`` and moved into place at the end (an existing one only with ``--force``), so an
interrupted or failed import leaves no half-written dataset. A bad file (unknown skeleton, missing joints,
non-numeric channels, no frames, unreadable) is a one-line error naming it; ``--skip_bad`` skips it with a warning.

The axes are taken as the file has them: y up (BVH's convention and that of every skeleton below); the facing
direction does not matter (the features turn each clip to face Z+).
"""
from __future__ import annotations

import dataclasses
import json
import logging

from src.common.datasets import DATASET_FILE
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from src.common.errors import HmuError, cli
from src.config.flags import opt

log = logging.getLogger(__name__)

FPS = 20.0           # HumanML3D's frame rate
LEG_RANGE_M = (0.25, 1.5)  # plausible hip -> knee -> ankle length of a person, metres (HumanML3D's target: 0.83)
MAX_SECONDS = 3600.0       # a longer clip is a wrong Frame Time, not a motion (and would fill the memory at 20 fps)


# ---------------------------------------------------------------------------------------------------------------------
# Skeletons: which source joint(s) give each of HumanML3D's 22 joints (several names = their mean position)

HML_JOINTS = ("pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
              "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow",
              "r_elbow", "l_wrist", "r_wrist")


@dataclass(frozen=True)
class SkeletonMap:
    """A source skeleton: per HumanML3D joint the source joint names whose mean position it is, and the file unit
    in metres."""

    name: str
    joints: tuple[tuple[str, ...], ...]
    unit_m: float
    source: str   # where the joint names come from

    def required(self) -> list[str]:
        return list(dict.fromkeys(n for group in self.joints for n in group))


def _lr(template: Sequence[str | tuple[str, ...]], left: str, right: str) -> tuple[tuple[str, ...], ...]:
    """Expand ``{s}`` in each name to the left/right spelling; entries are in HumanML3D order."""
    out = []
    for k, entry in enumerate(template):
        side = right if HML_JOINTS[k].startswith("r_") else left
        names = (entry,) if isinstance(entry, str) else entry
        out.append(tuple(n.format(s=side) for n in names))
    return tuple(out)


SKELETONS: dict[str, SkeletonMap] = {
    # Bandai-Namco-Research-Motiondataset (GitHub BandaiNamcoResearchInc): every joint 6 channels, centimetres.
    "bandai": SkeletonMap("bandai", _lr((
        "Hips", "UpperLeg_{s}", "UpperLeg_{s}", "Spine", "LowerLeg_{s}", "LowerLeg_{s}", ("Spine", "Chest"),
        "Foot_{s}", "Foot_{s}", "Chest", "Toes_{s}", "Toes_{s}", "Neck", "Shoulder_{s}", "Shoulder_{s}", "Head",
        "UpperArm_{s}", "UpperArm_{s}", "LowerArm_{s}", "LowerArm_{s}", "Hand_{s}", "Hand_{s}"), "L", "R"),
        0.01, "Bandai-Namco Research Motion dataset BVH"),
    # CMU Graphics Lab mocap, BVH conversion (cgspeed / the 'daz-friendly' release): LHipJoint, LowerBack, Neck and
    # LeftShoulder have zero offsets, so the hips are the UpLegs, the collar the middle of shoulder and arm. Its unit
    # is the ASF file's length unit, 1/0.45 inch = 0.056444 m.
    "cmu": SkeletonMap("cmu", _lr((
        "Hips", "{s}UpLeg", "{s}UpLeg", "Spine", "{s}Leg", "{s}Leg", ("Spine", "Spine1"), "{s}Foot", "{s}Foot",
        "Spine1", "{s}ToeBase", "{s}ToeBase", "Neck1", ("{s}Shoulder", "{s}Arm"), ("{s}Shoulder", "{s}Arm"),
        "Head", "{s}Arm", "{s}Arm", "{s}ForeArm", "{s}ForeArm", "{s}Hand", "{s}Hand"), "Left", "Right"),
        0.0254 / 0.45, "CMU mocap BVH conversion"),
    # Mixamo (names with or without the 'mixamorig:' namespace), centimetres.
    "mixamo": SkeletonMap("mixamo", _lr((
        "Hips", "{s}UpLeg", "{s}UpLeg", "Spine", "{s}Leg", "{s}Leg", "Spine1", "{s}Foot", "{s}Foot", "Spine2",
        "{s}ToeBase", "{s}ToeBase", "Neck", "{s}Shoulder", "{s}Shoulder", "Head", "{s}Arm", "{s}Arm",
        "{s}ForeArm", "{s}ForeArm", "{s}Hand", "{s}Hand"), "Left", "Right"), 0.01, "Mixamo rig"),
}


def _hmu_map() -> SkeletonMap:
    from src.data.bvh import T2M_JOINT_NAMES

    return SkeletonMap("hmu", tuple((n,) for n in T2M_JOINT_NAMES), 1.0, "hmu's BVH export (src/viz/bvh.py)")


SKELETONS["hmu"] = _hmu_map()
SKELETON_CHOICES = ("auto", *SKELETONS)


def _key(name: str) -> str:
    """Joint names compare without a namespace ('mixamorig:Hips' -> 'hips') and case-insensitively."""
    return name.rsplit(":", 1)[-1].strip().lower()


def _name_index(names: Sequence[str], path: str) -> dict[str, int]:
    idx: dict[str, int] = {}
    for j, n in enumerate(names):
        k = _key(n)
        if k in idx:
            raise HmuError(f"{path}: joints '{names[idx[k]]}' and '{n}' have the same name up to case/namespace")
        idx[k] = j
    return idx


def detect_skeleton(names: Sequence[str], path: str) -> SkeletonMap:
    """The one skeleton of :data:`SKELETONS` whose joints the file has; HmuError naming the file otherwise."""
    have = set(_name_index(names, path))
    fits = [s for s in SKELETONS.values() if all(_key(n) in have for n in s.required())]
    if len(fits) == 1:
        return fits[0]
    if len(fits) > 1:
        raise HmuError(f"{path}: its joints fit several skeletons ({', '.join(s.name for s in fits)}): pass "
                       f"--skeleton")
    shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
    raise HmuError(f"{path}: unknown skeleton: its joints ({shown}) are none of {', '.join(SKELETONS)} "
                   f"(pass --skeleton to see which joints are missing)")


def map_joints(positions: np.ndarray, names: Sequence[str], skeleton: SkeletonMap, path: str) -> np.ndarray:
    """(T, J_src, 3) source joint positions -> (T, 22, 3) HumanML3D joints; HmuError naming missing joints."""
    idx = _name_index(names, path)
    missing = [n for n in skeleton.required() if _key(n) not in idx]
    if missing:
        raise HmuError(f"{path}: skeleton '{skeleton.name}' needs joint{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}, which the file lacks")
    out = np.empty(positions.shape[:1] + (len(HML_JOINTS), 3))
    for k, group in enumerate(skeleton.joints):
        out[:, k] = positions[:, [idx[_key(n)] for n in group]].mean(axis=1)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Motion: resample, floor, checks

def resample(x: np.ndarray, src_frame_time: float, fps: float = FPS) -> np.ndarray:
    """Linear interpolation of (T, ...) frames spaced ``src_frame_time`` s to ``fps``: output frame k at k / fps s,
    for every such time within the recording (the last at or before (T-1) * src_frame_time)."""
    T = len(x)
    if T < 1:
        raise ValueError("no frames")
    if abs(src_frame_time * fps - 1.0) < 1e-9:
        return x.copy()
    n_out = int(math.floor((T - 1) * src_frame_time * fps + 1e-9)) + 1
    s = np.arange(n_out) / fps / src_frame_time        # fractional source frame of each output frame
    i0 = np.minimum(np.floor(s).astype(np.int64), max(T - 2, 0))
    w = (s - i0).reshape((-1,) + (1,) * (x.ndim - 1))
    i1 = np.minimum(i0 + 1, T - 1)
    return (1.0 - w) * x[i0] + w * x[i1]


def leg_length(joints: np.ndarray) -> float:
    """Median over frames of hip -> knee -> ankle, both legs averaged; joints (T, 22, 3)."""
    legs = [(1, 4, 7), (2, 5, 8)]
    ls = [np.linalg.norm(joints[:, a] - joints[:, b], axis=-1) + np.linalg.norm(joints[:, b] - joints[:, c], axis=-1)
          for a, b, c in legs]
    return float(np.median(np.mean(ls, axis=0)))


@dataclass
class Clip:
    """One imported clip: HumanML3D joints (T, 22, 3) metres at 20 fps on the floor, and where they came from."""

    stem: str
    joints: np.ndarray
    skeleton: str
    unit_m: float
    src_frames: int
    src_fps: float


def import_file(path: str | os.PathLike, *, skeleton: str = "auto", unit_scale: float = 0.0,
                fps: float = FPS) -> Clip:
    """Read one BVH and return its HumanML3D joints (see the module docstring); HmuError naming the file."""
    from src.data import bvh

    p = Path(path)
    b = bvh.read(p)
    if skeleton == "auto":
        smap = detect_skeleton(b.names, str(p))
    elif skeleton in SKELETONS:
        smap = SKELETONS[skeleton]
    else:
        raise HmuError(f"unknown skeleton '{skeleton}' for {p} (known: {', '.join(SKELETON_CHOICES)})")
    unit = float(unit_scale) if unit_scale else smap.unit_m
    seconds = (b.n_frames - 1) * b.frame_time
    if seconds > MAX_SECONDS:
        raise HmuError(f"{p}: {b.n_frames} frames of {b.frame_time:g} s last {seconds:g} s, more than "
                       f"{MAX_SECONDS:g} s: is its Frame Time right?")
    joints = map_joints(b.positions(), b.names, smap, str(p)) * unit
    joints = resample(joints, b.frame_time, fps)
    joints[..., 1] -= joints[..., 1].min()
    if not np.isfinite(joints).all():
        raise HmuError(f"{p}: forward kinematics gave non-finite positions")
    leg = leg_length(joints)
    if not LEG_RANGE_M[0] <= leg <= LEG_RANGE_M[1]:
        raise HmuError(f"{p}: the legs measure {leg:.3g} m with a unit of {unit:g} m ({smap.name}); a person's are "
                       f"{LEG_RANGE_M[0]}..{LEG_RANGE_M[1]} m: pass --unit_scale (metres per file unit)")
    if len(joints) < 2:
        raise HmuError(f"{p}: {b.n_frames} frame(s) at {b.fps:g} fps give {len(joints)} frame at {fps:g} fps; "
                       f"features need 2")
    return Clip(stem=p.stem, joints=joints, skeleton=smap.name, unit_m=unit, src_frames=b.n_frames, src_fps=b.fps)


# ---------------------------------------------------------------------------------------------------------------------
# Captions

_WORD = re.compile(r"[^\W\d_]+")


def read_labels(path: str | os.PathLike) -> dict[str, Any]:
    """Per clip stem: a caption (str), several captions (list of str) or fields for the template (object).

    ``.json``: an object keyed by stem (the real_motion fixture's ``labels.json``: ``{"<stem>": {"content": "kick",
    "style": "angry", ...}}``); a value's ``captions``/``caption``/``text`` key, when present, is the caption(s).
    Any other file: tab-separated ``stem<TAB>caption`` lines (a stem on several lines: several captions).
    """
    p = Path(path)
    if not p.is_file():
        raise HmuError(f"labels file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise HmuError(f"labels file {p} is not UTF-8 text") from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HmuError(f"labels file {p} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(data, dict):
            raise HmuError(f"labels file {p} must hold a JSON object keyed by clip stem")
        for k, v in data.items():
            ok = isinstance(v, (str, dict)) or (isinstance(v, list) and v and all(isinstance(s, str) for s in v))
            if not ok:
                raise HmuError(f"labels file {p}: entry '{k}' must be a caption, a list of captions or an object")
        return data
    out: dict[str, Any] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        stem, tab, cap = line.partition("\t")
        if not tab or not stem.strip() or not cap.strip():
            raise HmuError(f"labels file {p}, line {n}: want 'stem<TAB>caption'")
        out.setdefault(stem.strip(), []).append(cap.strip())
    return out


def captions_for(stem: str, label: Any, template: str, where: str) -> list[str]:
    """The caption texts of one clip: from its label (see :func:`read_labels`) or the template."""
    fields: dict[str, Any] = {"stem": stem, "name": " ".join(_WORD.findall(stem.replace("_", " ")))}
    if isinstance(label, str):
        caps = [label]
    elif isinstance(label, list):
        caps = list(label)
    else:
        lab = dict(label or {})
        given = lab.get("captions", lab.get("caption", lab.get("text")))
        if given is not None:
            caps = [given] if isinstance(given, str) else list(given)
        else:
            fields.update({k: v for k, v in lab.items() if isinstance(k, str)})
            fields.setdefault("content", fields["name"])
            try:
                caps = [template.format_map(fields)]
            except KeyError as exc:
                raise HmuError(f"--caption_template names field {exc} that {where} does not give for '{stem}' "
                               f"(fields: {', '.join(sorted(fields))})") from None
            except (ValueError, IndexError) as exc:
                raise HmuError(f"--caption_template '{template}' is not a valid template ({exc})") from None
    caps = [" ".join(str(c).replace("#", " ").split()) for c in caps]
    if not caps or any(not _WORD.search(c) for c in caps):
        raise HmuError(f"{where}: clip '{stem}' has an empty caption")
    return caps


def lexicon_tag(text: str) -> list[str]:
    """``word/POS`` tokens by dictionary (synth's lexicon, tagged as spaCy tags HumanML3D); unknown words ``/X``."""
    from src.data.synth.lexicon import tag_word

    out = []
    for w in _WORD.findall(text.replace("-", "")):
        try:
            out.append(tag_word(w))
        except KeyError:
            out.append(f"{w.lower()}/X")
    return out


def make_tagger(name: str):
    """``text -> [word/POS]``: spaCy (HumanML3D's rule, src.data.pos), synth's lexicon, or spaCy when installed."""
    from src.data import pos

    if name == "lexicon" or (name == "auto" and not pos.spacy_available()):
        return lexicon_tag, "lexicon"
    return pos.tag, "spacy"   # its pipeline is loaded once and cached


# ---------------------------------------------------------------------------------------------------------------------
# Splits

def split_ids(ids: Sequence[str], ratios: Sequence[float], seed: int) -> dict[str, list[str]]:
    """train/val/test by a seeded shuffle in ``ratios`` (each non-empty split at least one clip when there are 3 or
    more); fewer than 3 clips: every split holds every clip (with a warning). Lists keep the sorted id order."""
    ids = sorted(ids)
    n = len(ids)
    if n < 3:
        log.warning("only %d clip%s: train, val and test all hold %s (no held-out data)", n, "" if n == 1 else "s",
                    "it" if n == 1 else "them all")
        out = {"train": ids, "val": ids, "test": ids}
    else:
        r = np.asarray(ratios, dtype=np.float64)
        r = r / r.sum()
        n_val = max(1, int(round(n * r[1]))) if r[1] > 0 else 0
        n_test = max(1, int(round(n * r[2]))) if r[2] > 0 else 0
        while n - n_val - n_test < 1:
            if n_val >= n_test and n_val > 1:
                n_val -= 1
            else:
                n_test -= 1
        order = [ids[i] for i in np.random.default_rng(seed).permutation(n)]
        val, test = set(order[:n_val]), set(order[n_val:n_val + n_test])
        out = {"train": [i for i in ids if i not in val and i not in test], "val": [i for i in ids if i in val],
               "test": [i for i in ids if i in test]}
        for k in ("val", "test"):   # a split with ratio 0: the loaders still need a list
            if not out[k]:
                log.warning("split '%s' has ratio 0: it lists the train clips", k)
                out[k] = list(out["train"])
    out["train_val"] = sorted(set(out["train"]) | set(out["val"]))
    out["all"] = list(ids)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The import

@dataclass(kw_only=True)
class ImportBVHConfig:
    """What ``python -m src.data.import_bvh`` does (its flags are these fields)."""

    in_dir: str = opt(None, help="folder of .bvh files (not searched recursively), or one .bvh file",
                      metavar="DIR", flag="--in", aliases=("--in_dir",), required=True)
    out: str = opt(None, help="output dataset folder, e.g. dataset/mymocap", metavar="DIR", required=True)
    labels: str | None = opt(None, help="captions per clip stem: JSON object (stem -> caption, list of captions, "
                                        "or fields for --caption_template) or 'stem<TAB>caption' lines",
                             metavar="FILE")
    skeleton: str = opt("auto", help="source skeleton (auto: the one whose joint names the file has)",
                        choices=SKELETON_CHOICES)
    caption_template: str = opt("a person performs {content}", metavar="TEXT",
                                help="caption of a clip without a caption in --labels; fields: {stem}, {name} (the "
                                     "stem's words), {content} (default {name}) and the clip's label fields")
    unit_scale: float = opt(0.0, metavar="M", help="metres per file unit (0: the skeleton's: bandai/mixamo cm, cmu 0.056444, "
                                      "hmu m)")
    split_ratio: list[float] = opt(factory=lambda: [0.8, 0.1, 0.1], help="train val test fractions",
                                   metavar="F")
    seed: int = opt(0, help="seed of the train/val/test shuffle")
    tagger: str = opt("auto", help="caption POS tagger: spacy (HumanML3D's), lexicon (synth's word list, no "
                                   "spaCy), auto (spacy when installed)", choices=("auto", "spacy", "lexicon"))
    skip_bad: bool = opt(False, help="skip a file that cannot be imported (with a warning) instead of stopping")
    force: bool = opt(False, help="replace an existing output folder")
    no_progress: bool = opt(False, help="no progress bar over the files")

    @property
    def progress(self) -> bool:
        return not self.no_progress


def _bvh_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise HmuError(f"--in {src}: no such folder or file")
    files = sorted(f for f in src.iterdir() if f.suffix.lower() == ".bvh" and not f.name.startswith("."))
    if not files:
        raise HmuError(f"--in {src}: no .bvh file in this folder")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise HmuError(f"--in {src}: {stems[f.stem].name} and {f.name} have the same stem")
        stems[f.stem] = f
    return files


def _check_config(cfg: ImportBVHConfig) -> None:
    if not cfg.in_dir:
        raise HmuError("--in is required (a folder of .bvh files)")
    if not cfg.out:
        raise HmuError("--out is required (e.g. dataset/mymocap)")
    if cfg.skeleton not in SKELETON_CHOICES:
        raise HmuError(f"unknown --skeleton '{cfg.skeleton}' (known: {', '.join(SKELETON_CHOICES)})")
    if not math.isfinite(cfg.unit_scale) or cfg.unit_scale < 0:
        raise HmuError(f"--unit_scale must be a positive number of metres (or 0), got {cfg.unit_scale}")
    r = cfg.split_ratio
    if len(r) != 3 or any(not math.isfinite(x) or x < 0 for x in r) or r[0] <= 0:
        raise HmuError(f"--split_ratio wants 3 fractions >= 0 with train > 0, got {' '.join(map(str, r))}")


def import_bvh(cfg: ImportBVHConfig) -> dict[str, Any]:
    """Run the import (see the module docstring); returns the summary written to ``import.json``."""
    from src.common.io import recover_folder, refuse_overwrite, staging_dir, swap_in_folder
    from src.common.progress import progress
    from src.data.humanml3d import Caption, HumanML3DFolder
    from src.data.motion import joints_to_features, mean_std
    from src.common.validate import check_mean_std

    _check_config(cfg)
    files = _bvh_files(Path(cfg.in_dir))
    out = Path(cfg.out)
    recover_folder(out)
    refuse_overwrite(out, cfg.force, "dataset folder")
    labels = read_labels(cfg.labels) if cfg.labels else None
    where = f"labels file {cfg.labels}" if cfg.labels else "--caption_template"
    tagger, tagger_name = make_tagger(cfg.tagger)

    clips: list[Clip] = []
    skipped: list[str] = []
    for f in progress(files, desc="import bvh", unit="file", enabled=cfg.progress):
        try:
            clips.append(import_file(f, skeleton=cfg.skeleton, unit_scale=cfg.unit_scale))
        except HmuError as exc:
            if not cfg.skip_bad:
                raise
            log.warning("skipped: %s", exc)
            skipped.append(f"{f.name}: {exc}")
    if not clips:
        raise HmuError(f"--in {cfg.in_dir}: no file could be imported")
    texts = {c.stem: captions_for(c.stem, labels.get(c.stem) if labels else None, cfg.caption_template, where)
             for c in clips}
    unlabelled = [c.stem for c in clips if labels is not None and c.stem not in labels]
    if unlabelled:
        log.warning("%d clip%s not in %s (e.g. %s): captioned from --caption_template", len(unlabelled),
                    "" if len(unlabelled) == 1 else "s", cfg.labels, unlabelled[0])

    stage = staging_dir(out)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)   # mkdtemp makes it 0700; the dataset folder gets the usual permissions
    try:
        for sub in ("new_joints", "new_joint_vecs", "texts"):
            (stage / sub).mkdir()
        folder = HumanML3DFolder(stage, "HumanML3D")
        short, long = [], []
        for c in clips:
            feats = joints_to_features(c.joints)
            if len(feats) < 40:
                short.append(c.stem)
            elif len(feats) >= 200:
                long.append(c.stem)
            folder.write_motion(c.stem, feats, c.joints.astype(np.float32))
            folder.write_captions(c.stem, [Caption(t, tuple(tagger(t))) for t in texts[c.stem]])
        if short:
            log.warning("%d clip%s shorter than 2 s at 20 fps (e.g. %s): HumanML3D's loaders skip motions under 40 "
                        "frames", len(short), "" if len(short) == 1 else "s", short[0])
        if long:
            log.warning("%d clip%s of 10 s or more at 20 fps (e.g. %s): HumanML3D's text-motion loaders skip motions "
                        "of 200 frames or more (VQ training still uses them); cut them to use them for text",
                        len(long), "" if len(long) == 1 else "s", long[0])
        splits = split_ids([c.stem for c in clips], cfg.split_ratio, cfg.seed)
        for name, ids in splits.items():
            folder.write_split(name, ids)
        mean, std = mean_std([folder.motion(i) for i in splits["train"]], 22)
        check_mean_std(mean, std, mean_path=out / "Mean.npy", std_path=out / "Std.npy")
        folder.write_mean_std(mean, std)
        summary = {
            "source": str(Path(cfg.in_dir)), "fps": FPS, "tagger": tagger_name,
            "config": dataclasses.asdict(cfg),
            "clips": {c.stem: {"skeleton": c.skeleton, "unit_m": c.unit_m, "src_frames": c.src_frames,
                               "src_fps": round(c.src_fps, 6), "frames": int(len(c.joints))} for c in clips},
            "skipped": skipped, "splits": {k: len(v) for k, v in splits.items()},
        }
        (stage / "import.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        # the folder's own dataset spec: every command then takes --dataset_name <folder name> (src.common.datasets)
        (stage / DATASET_FILE).write_text(json.dumps({"schema": "hmu.dataset/1", "like": "HumanML3D"}, indent=2)
                                          + "\n", encoding="utf-8")
        swap_in_folder(stage, out)
    except BaseException:
        import shutil

        shutil.rmtree(stage, ignore_errors=True)
        raise
    return summary


# ---------------------------------------------------------------------------------------------------------------------
# CLI

@cli
def main(argv: Sequence[str] | None = None) -> int:
    from src.common.progress import apply_progress
    from src.config.command import parse_config

    cfg = parse_config(ImportBVHConfig, argv, prog="python -m src.data.import_bvh",
                       doc="Import BVH motion capture as a HumanML3D-format dataset (joints, 263-d features, captions, "
                           "splits, Mean/Std) at 20 fps.")
    from src.common.logging import setup_logging

    setup_logging()
    apply_progress(cfg.progress)
    s = import_bvh(cfg)
    frames = [c["frames"] for c in s["clips"].values()]
    skel = sorted({c["skeleton"] for c in s["clips"].values()})
    print(f"imported {len(frames)} clip{'s' if len(frames) != 1 else ''} ({', '.join(skel)}; {sum(frames)} frames at "
          f"20 fps, {min(frames)}..{max(frames)} per clip) -> {cfg.out}; splits "
          + ", ".join(f"{k} {v}" for k, v in s["splits"].items())
          + (f"; skipped {len(s['skipped'])}" if s["skipped"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
