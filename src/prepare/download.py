"""Fetch the released MoMask checkpoints, evaluator and GloVe vectors (and CLIP's ViT-B-32.pt) into hmu's layout.

The Google-Drive file ids and archive names are upstream's (momask-codes ``prepare/*.sh``). Every archive is
checked (zip integrity, no paths escaping the target, the expected files present) before anything is moved
into place, and nothing that already exists is overwritten. Without network (or without ``gdown``) the
command stops with one line saying which file to fetch and where to put it.

For tests and offline machines, ``--from_dir DIR`` (or env ``HMU_DOWNLOAD_FROM``) takes ``DIR/<archive name>``
instead of downloading.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from src.common.errors import HmuError, cli
from src.config.command import Locations, RunOptions, group, parse_config
from src.config.flags import opt

log = logging.getLogger(__name__)

ENV_FROM = "HMU_DOWNLOAD_FROM"


@dataclass(frozen=True)
class Archive:
    key: str
    file_id: str        # Google-Drive id from upstream's prepare script
    filename: str       # archive name as upstream's script saves it
    target: str         # "checkpoints/<folder>" or "glove"
    expected: tuple[str, ...]  # glob patterns (relative to the target) that must exist after extraction
    what: str

    @property
    def url(self) -> str:
        return f"https://drive.google.com/file/d/{self.file_id}/view"


ARCHIVES: dict[str, Archive] = {a.key: a for a in (
    Archive("models-t2m", "1vXS7SHJBgWPt59wupQ5UUzhFObrnGkQ0", "humanml3d_models.zip", "checkpoints/t2m",
            ("length_estimator/model/finest.tar", "*/opt.txt", "*/model/*.tar"), "MoMask models for HumanML3D"),
    Archive("models-kit", "1FapdHNkxPouasVM8MWgg1f6sd_4Lua2q", "kit_models.zip", "checkpoints/kit",
            ("length_estimator/model/finest.tar", "*/opt.txt", "*/model/*.tar"), "MoMask models for KIT-ML"),
    Archive("evaluator-t2m", "19C_eiEr0kMGlYVJy_yFL6_Dhk3RvmwhM", "humanml3d_evaluator.zip", "checkpoints/t2m",
            ("text_mot_match/model/*.tar",), "text-motion evaluator for HumanML3D"),
    Archive("evaluator-kit", "1TKIZ3TSSZawpilC-7Kw7Ws4sNNuzb49p", "kit_evaluator.zip", "checkpoints/kit",
            ("text_mot_match/model/*.tar",), "text-motion evaluator for KIT-ML"),
    Archive("glove", "1cmXKUT31pqd7_XpJAiWEo1K81TMYHA5n", "glove.zip", "glove",
            ("our_vab_data.npy", "our_vab_words.pkl", "our_vab_idx.pkl"), "GloVe word vectors (evaluator)"),
)}

GROUPS = {
    "models": {"t2m": ["models-t2m"], "kit": ["models-kit"]},
    "evaluator": {"t2m": ["evaluator-t2m"], "kit": ["evaluator-kit"]},
    "glove": {"t2m": ["glove"], "kit": ["glove"]},
}


def target_dir(archive: Archive, *, checkpoints_dir: Path, glove_dir: Path) -> Path:
    if archive.target == "glove":
        return glove_dir
    return checkpoints_dir / archive.target.split("/", 1)[1]


def _matches(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern))


def missing_files(root: Path, expected: Sequence[str]) -> list[str]:
    """Patterns of ``expected`` with no match under ``root``."""
    return [pat for pat in expected if not _matches(root, pat)]


def check_zip(path: Path) -> list[str]:
    """Member names of a sound archive; HmuError if it is corrupt or a member would land outside the target."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise HmuError(f"archive {path} is corrupt or incomplete ({exc}); delete it and try again") from None
    if bad is not None:
        raise HmuError(f"archive {path} is corrupt (CRC error in {bad}); delete it and try again")
    for n in names:
        pp = PurePosixPath(n)
        if pp.is_absolute() or ".." in pp.parts:
            raise HmuError(f"archive {path} holds an unsafe path '{n}'; refusing to extract it")
    return names


def _content_root(extracted: Path, expected: Sequence[str]) -> Path:
    """The folder inside an extracted archive that holds the expected layout (archives may wrap it in one folder)."""
    cands = [extracted] + sorted(p for p in extracted.rglob("*") if p.is_dir())
    for c in cands:
        if not missing_files(c, expected):
            return c
    return extracted


def fetch(archive: Archive, dest: Path, *, from_dir: Path | None, target: Path | None = None) -> Path:
    """Put ``archive.filename`` at ``dest``: copied from ``from_dir`` when given, else downloaded with gdown.

    ``target`` (the folder the archive is for) is what the error messages name; default: the archive's own
    ``checkpoints/<folder>``."""
    if from_dir is not None:
        src = from_dir / archive.filename
        if not src.is_file():
            raise HmuError(f"{src} not found (--from_dir/{ENV_FROM} must hold {archive.filename})")
        shutil.copyfile(src, dest)
        return dest
    manual = (f"download {archive.filename} from {archive.url} and rerun with --from_dir <its folder>, "
              f"or unzip it yourself into {target or archive.target}/")
    try:
        import gdown
    except ImportError:
        raise HmuError(f"gdown is not installed ({sys.executable} -m pip install gdown); or {manual}") from None
    try:
        out = gdown.download(id=archive.file_id, output=str(dest), quiet=False)
    except Exception as exc:  # noqa: BLE001 - network errors come in many types
        raise HmuError(f"could not download {archive.filename} ({type(exc).__name__}); {manual}") from None
    if not out or not dest.is_file() or dest.stat().st_size == 0:
        raise HmuError(f"could not download {archive.filename} (no network?); {manual}")
    return dest


def _make_dirs(path: Path) -> list[Path]:
    """mkdir -p; returns the folders it created, deepest first."""
    made = []
    p = path
    while not p.exists():
        made.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    return made


def _remove_empty(made: list[Path]) -> None:
    for p in made:
        try:
            p.rmdir()
        except OSError:
            break


def install(archive: Archive, *, target: Path, from_dir: Path | None = None, keep_archive: bool = False) -> list[str]:
    """Fetch, check and extract one archive into ``target``; files already there are kept. Returns the files added."""
    if not missing_files(target, archive.expected):
        log.info("%s already present in %s", archive.what, target)
        return []
    made = _make_dirs(target)
    work = Path(tempfile.mkdtemp(prefix=f".{archive.key}.", dir=target))
    added: list[str] = []
    try:
        zpath = fetch(archive, work / archive.filename, from_dir=from_dir, target=target)
        check_zip(zpath)
        extracted = work / "x"
        with zipfile.ZipFile(zpath) as zf:
            zf.extractall(extracted)
        root = _content_root(extracted, archive.expected)
        missing = missing_files(root, archive.expected)
        if missing:
            raise HmuError(f"archive {archive.filename} lacks the expected files {', '.join(missing)}; "
                           f"nothing was installed into {target}")
        for f in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
            rel = f.relative_to(root)
            if rel.parts[0].startswith("__MACOSX"):
                continue
            dest = target / rel
            if dest.exists():
                # never overwrite: an existing checkpoint or file is kept as it is
                log.warning("kept existing %s (not overwritten)", dest)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest)
            added.append(str(dest))
        if keep_archive:
            keep = target / archive.filename
            if not keep.exists():
                os.replace(zpath, keep)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not added:
            _remove_empty(made)   # a failed fetch leaves no empty folders behind
    still = missing_files(target, archive.expected)
    if still:
        raise HmuError(f"{target} still lacks {', '.join(still)} after installing {archive.filename}")
    return added


# ------------------------------------------------------------------------------------------------------------ CLIP
CLIP_FILE = "ViT-B-32.pt"
CLIP_MODEL = "ViT-B/32"


def clip_candidates(checkpoints_dir: Path) -> list[Path]:
    """Where hmu looks for CLIP's weights: ``<checkpoints>/clip/ViT-B-32.pt``, then the clip package's own cache."""
    return [checkpoints_dir / "clip" / CLIP_FILE, Path("~/.cache/clip").expanduser() / CLIP_FILE]


def install_clip(*, checkpoints_dir: Path, from_dir: Path | None = None) -> Path | None:
    """Put ViT-B-32.pt into ``<checkpoints>/clip/`` (from ``from_dir``, else with the clip package's downloader, which
    checks its SHA-256). Returns the file added, or None when one is already in a place hmu looks."""
    have = next((p for p in clip_candidates(checkpoints_dir) if p.is_file()), None)
    if have is not None:
        log.info("CLIP weights already present: %s", have)
        return None
    target = checkpoints_dir / "clip"
    dest = target / CLIP_FILE
    if from_dir is not None:
        src = from_dir / CLIP_FILE
        if not src.is_file():
            raise HmuError(f"{src} not found (--from_dir/{ENV_FROM} must hold {CLIP_FILE})")
        target.mkdir(parents=True, exist_ok=True)
        from src.common.io import atomic_path

        with atomic_path(dest, suffix=".pt") as tmp:
            shutil.copyfile(src, tmp)
        return dest
    try:
        from clip.clip import _MODELS, _download  # type: ignore
    except ImportError as exc:
        raise HmuError(f"the clip package cannot load ({exc}); install it with: {sys.executable} -m pip install "
                       f"--no-deps clip-anytorch==2.6.* ftfy regex; or put {CLIP_FILE} into {target}/") from None
    made = _make_dirs(target)
    try:
        got = Path(_download(_MODELS[CLIP_MODEL], str(target)))
    except Exception as exc:  # noqa: BLE001 - network errors come in many types
        _remove_empty(made)
        raise HmuError(f"could not download {CLIP_FILE} into {target} ({type(exc).__name__}; no network?); put it "
                       f"there by hand, or in ~/.cache/clip/") from None
    if got != dest:
        os.replace(got, dest)
    return dest


def requirement(what: str) -> str:
    """The package a download needs (when not taking files from --from_dir)."""
    return "clip" if what == "clip" else "gdown"


def preflight(what: str, needed: Sequence[str], targets: Sequence[Path], *, venv: str | None) -> None:
    """Before any other work (the venv's install included): HmuError in one line when the package the download
    needs is not importable, saying how to install it into ``venv`` and naming the folders asked for."""
    import importlib.util

    pkg = requirement(what)
    if not needed or importlib.util.find_spec(pkg) is not None:
        return
    pip = "gdown" if pkg == "gdown" else "--no-deps clip-anytorch==2.6.* ftfy regex"
    if venv:
        py = Path(venv) / "bin" / "python"
        fix = f"{py} -m pip install {pip}" if py.exists() else f"python3 -m venv {venv} && {py} -m pip install {pip}"
    else:
        fix = f"{sys.executable} -m pip install {pip}"
    where = ", ".join(dict.fromkeys(str(t) for t in targets))
    raise HmuError(f"{pkg} is not installed{f' in {venv}' if venv else ''}, and it is needed to fetch "
                   f"{', '.join(needed)} into {where}; install it with: {fix}   (or pass --from_dir DIR holding "
                   f"the files)")


PROG = "python -m src.prepare.download"


@dataclasses.dataclass(kw_only=True)
class DownloadConfig:
    """Download the released MoMask models, evaluator or GloVe vectors (upstream's archives) into
    checkpoints/<t2m|kit>/ and glove/, or CLIP's ViT-B-32.pt into checkpoints/clip/. Existing files are never
    overwritten."""

    what: str = opt(None, flag="what", choices=sorted([*GROUPS, "clip"]), help="which files to fetch")
    dataset: str = opt("t2m", choices=("t2m", "kit", "all"), help="HumanML3D (t2m), KIT-ML (kit) or both")
    from_dir: str | None = opt(None, help=f"take the archives from this folder instead of downloading (env {ENV_FROM})")
    keep_archive: bool = opt(False, action="store_true", help="keep the .zip next to what it unpacked")
    preflight: bool = opt(False, action="store_true",
                          help="only check that the needed package (gdown; clip for 'clip') is importable, in one "
                               "line naming the folders (what the scripts run before creating their venv)")
    venv: str | None = opt(None, help="the venv the scripts use (HMU_VENV), named in --preflight's fix")
    where: Locations = group(Locations, only=("checkpoints_dir", "glove_dir"))
    run: RunOptions = group(RunOptions, only=("verbose",))


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(DownloadConfig, argv, prog=PROG, doc=" ".join(DownloadConfig.__doc__.split()))
    from src.config.command import command_context

    paths = command_context(None, where=cfg.where, run=cfg.run).paths
    from_text = cfg.from_dir or os.environ.get(ENV_FROM) or None
    from_dir = Path(from_text).expanduser() if from_text else None
    if cfg.what == "clip":
        have = next((p for p in clip_candidates(paths.checkpoints_dir) if p.is_file()), None)
        if cfg.preflight:
            if from_dir is None and have is None:
                preflight("clip", [CLIP_FILE], [paths.checkpoints_dir / "clip"], venv=cfg.venv)
            return 0
        added = install_clip(checkpoints_dir=paths.checkpoints_dir, from_dir=from_dir)
        print(f"CLIP {CLIP_MODEL}: {'installed ' + str(added) if added else 'already present in ' + str(have)}")
        return 0
    datasets = ["t2m", "kit"] if cfg.dataset == "all" else [cfg.dataset]
    keys: list[str] = []
    for ds in datasets:
        for k in GROUPS[cfg.what][ds]:
            if k not in keys:
                keys.append(k)
    if cfg.preflight:
        todo = [(ARCHIVES[k], target_dir(ARCHIVES[k], checkpoints_dir=paths.checkpoints_dir,
                                         glove_dir=paths.glove_dir)) for k in keys]
        todo = [(a, t) for a, t in todo if missing_files(t, a.expected)]
        if from_dir is None:
            preflight(cfg.what, [a.filename for a, _ in todo], [t for _, t in todo], venv=cfg.venv)
        return 0
    for k in keys:
        a = ARCHIVES[k]
        target = target_dir(a, checkpoints_dir=paths.checkpoints_dir, glove_dir=paths.glove_dir)
        added = install(a, target=target, from_dir=from_dir, keep_archive=cfg.keep_archive)
        print(f"{a.what}: {'installed ' + str(len(added)) + ' files into' if added else 'already present in'} {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
