"""Download logic against local stand-in archives: integrity, expected files, no overwrite, offline message."""
from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from src.common.errors import HmuError
from src.prepare import download as D

REPO = Path(__file__).resolve().parents[1]


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


MODELS = {"rvq_x/opt.txt": b"opt", "rvq_x/model/net_best_fid.tar": b"w", "length_estimator/model/finest.tar": b"l"}


def test_models_install_from_local_archive_and_never_overwrite(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_zip(src / "humanml3d_models.zip", MODELS)
    ck = tmp_path / "ck"
    assert D.main(["models", "--from_dir", str(src), "--checkpoints_dir", str(ck)]) == 0
    assert (ck / "t2m" / "rvq_x" / "model" / "net_best_fid.tar").read_bytes() == b"w"
    assert not list((ck / "t2m").glob(".*"))  # the work folder is gone
    # a second archive with new content changes nothing that exists
    make_zip(src / "humanml3d_models.zip", {k: b"NEW" for k in MODELS} | {"other_run/opt.txt": b"o",
                                                                            "other_run/model/a.tar": b"a"})
    (ck / "t2m" / "length_estimator" / "model" / "finest.tar").unlink()  # incomplete: triggers a re-install
    D.install(D.ARCHIVES["models-t2m"], target=ck / "t2m", from_dir=src)
    assert (ck / "t2m" / "rvq_x" / "model" / "net_best_fid.tar").read_bytes() == b"w"
    assert (ck / "t2m" / "other_run" / "opt.txt").is_file()


def test_already_present_skips_fetch(tmp_path):
    ck = tmp_path / "ck" / "t2m"
    for name, data in MODELS.items():
        (ck / name).parent.mkdir(parents=True, exist_ok=True)
        (ck / name).write_bytes(data)
    assert D.install(D.ARCHIVES["models-t2m"], target=ck, from_dir=tmp_path / "nowhere") == []


def test_wrapped_glove_archive_lands_in_glove_dir(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    make_zip(src / "glove.zip", {f"glove/our_vab_{n}": b"x" for n in ("data.npy", "words.pkl", "idx.pkl")})
    monkeypatch.setenv(D.ENV_FROM, str(src))
    g = tmp_path / "g"
    assert D.main(["glove", "--glove_dir", str(g)]) == 0
    assert sorted(p.name for p in g.iterdir()) == ["our_vab_data.npy", "our_vab_idx.pkl", "our_vab_words.pkl"]


def test_corrupt_unsafe_and_incomplete_archives_install_nothing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    target = tmp_path / "ck" / "t2m"
    a = D.ARCHIVES["evaluator-t2m"]
    (src / a.filename).write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(HmuError, match="corrupt"):
        D.install(a, target=target, from_dir=src)
    make_zip(src / a.filename, {"../evil.txt": b"x", "text_mot_match/model/finest.tar": b"e"})
    with pytest.raises(HmuError, match="unsafe"):
        D.install(a, target=target, from_dir=src)
    make_zip(src / a.filename, {"something_else/file.txt": b"x"})
    with pytest.raises(HmuError, match="lacks the expected files text_mot_match"):
        D.install(a, target=target, from_dir=src)
    assert not target.exists() or not any(target.iterdir())
    # a truncated download is caught by the zip check
    make_zip(src / a.filename, {"text_mot_match/model/finest.tar": b"e" * 1000})
    data = (src / a.filename).read_bytes()
    (src / a.filename).write_bytes(data[: len(data) // 2])
    with pytest.raises(HmuError, match="corrupt"):
        D.install(a, target=target, from_dir=src)


def test_offline_message_names_file_and_place(tmp_path, monkeypatch):
    import sys
    import types

    def no_network(**kw):
        raise ConnectionError("no route to host")

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=no_network))
    with pytest.raises(HmuError) as e:
        D.install(D.ARCHIVES["models-t2m"], target=tmp_path / "t2m")
    msg = str(e.value)
    # the folder asked for, not the default checkpoints/t2m (issue 17)
    assert "\n" not in msg and "humanml3d_models.zip" in msg and f"{tmp_path / 't2m'}/" in msg
    assert D.ARCHIVES["models-t2m"].file_id in msg
    assert D.main(["models", "--checkpoints_dir", str(tmp_path)]) == 2  # the CLI turns it into one line


def test_upstream_ids_and_scripts():
    assert {a.file_id for a in D.ARCHIVES.values()} == {
        "1vXS7SHJBgWPt59wupQ5UUzhFObrnGkQ0", "1FapdHNkxPouasVM8MWgg1f6sd_4Lua2q", "19C_eiEr0kMGlYVJy_yFL6_Dhk3RvmwhM",
        "1TKIZ3TSSZawpilC-7Kw7Ws4sNNuzb49p", "1cmXKUT31pqd7_XpJAiWEo1K81TMYHA5n"}
    for what in ("models", "evaluator", "glove", "clip"):
        script = REPO / "scripts" / "prepare" / f"download_{what}.sh"
        text = script.read_text()
        assert f"src.prepare.download {what}" in text and '"$@"' in text and "set -euo pipefail" in text
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0


def test_help_is_fast(cli):
    r = cli("src.prepare.download", "--help")
    assert r.returncode == 0 and "--from_dir" in r.stdout


# ------------------------------------------------------------------------------------------------ issue 17: scripts
SCRIPTS = ("models", "evaluator", "glove", "clip")


def _fake_packages(root: Path) -> Path:
    """gdown and clip stand-ins that behave as on a machine without network."""
    root.mkdir()
    (root / "gdown.py").write_text("def download(**kw):\n    raise ConnectionError('no route to host')\n")
    (root / "clip").mkdir()
    (root / "clip" / "__init__.py").write_text("")
    (root / "clip" / "clip.py").write_text(
        "import urllib.error\n_MODELS = {'ViT-B/32': 'https://example.invalid/ViT-B-32.pt'}\n"
        "def _download(url, root):\n    raise urllib.error.URLError('offline')\n")
    return root


def _script(what: str, tmp_path: Path, env_extra: dict) -> subprocess.CompletedProcess:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HMU_DOWNLOAD_FROM", "HMU_CHECKPOINTS")}
    env.setdefault("HMU_VENV", str(Path(sys.executable).parents[1]))
    env.update(env_extra)
    return subprocess.run(["bash", str(REPO / "scripts" / "prepare" / f"download_{what}.sh"), "--checkpoints_dir",
                           str(tmp_path / "asked_ck"), "--glove_dir", str(tmp_path / "asked_glove")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)


def _target(what: str, tmp_path: Path) -> str:
    return str(tmp_path / ("asked_glove" if what == "glove" else "asked_ck/clip" if what == "clip" else "asked_ck/t2m"))


@pytest.mark.parametrize("what", SCRIPTS)
def test_script_offline_one_line_error_names_the_folder_asked_for(tmp_path, what, monkeypatch):
    """With the package present but no network: one line on stderr, naming the --checkpoints_dir/--glove_dir folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))   # no ~/.cache/clip/ViT-B-32.pt
    fake = _fake_packages(tmp_path / "fake")
    r = _script(what, tmp_path, {"PYTHONPATH": str(fake), "HOME": str(tmp_path / "home")})
    assert r.returncode != 0
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1, r.stderr
    assert _target(what, tmp_path) in err[0] and "checkpoints/t2m/" not in err[0].replace(str(tmp_path), "")
    assert not (tmp_path / "asked_ck").exists() and not (tmp_path / "asked_glove").exists()   # no empty folders left


@pytest.mark.parametrize("what", SCRIPTS)
def test_script_without_the_package_stops_first_in_one_line(tmp_path, what):
    """No gdown (clip) in the venv: one line saying how to install it there, before the venv is created or filled."""
    import importlib.util

    if what == "clip" and importlib.util.find_spec("clip") is not None:
        # without a venv the check runs on the python3 on PATH, here the test venv, where clip-anytorch is installed
        pytest.skip("clip-anytorch is installed in the test environment (requirements-text.txt)")
    venv = tmp_path / "no_venv_yet"
    r = _script(what, tmp_path, {"HMU_VENV": str(venv), "PYTHONPATH": str(tmp_path / "empty"),
                                 "HOME": str(tmp_path / "home")})
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(err) == 1, r.stderr
    pkg = "clip" if what == "clip" else "gdown"
    assert f"{pkg} is not installed in {venv}" in err[0]
    assert f"python3 -m venv {venv} && {venv}/bin/python -m pip" in err[0]
    assert _target(what, tmp_path) in err[0]
    assert not venv.exists() and "creating virtual environment" not in r.stdout


def test_clip_from_dir_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "ViT-B-32.pt").write_bytes(b"weights")
    ck = tmp_path / "ck"
    assert D.main(["clip", "--checkpoints_dir", str(ck), "--from_dir", str(src)]) == 0
    assert (ck / "clip" / "ViT-B-32.pt").read_bytes() == b"weights"
    # a copy in the clip package's cache counts as present, and the text encoder looks there too
    cache = tmp_path / "home" / ".cache" / "clip"
    cache.mkdir(parents=True)
    (cache / "ViT-B-32.pt").write_bytes(b"cached")
    assert D.install_clip(checkpoints_dir=tmp_path / "other") is None
    from src.models import text_encoders as te

    monkeypatch.setenv("HMU_CHECKPOINTS", str(tmp_path / "other"))
    assert te.default_clip_path() == cache / "ViT-B-32.pt"
    (cache / "ViT-B-32.pt").unlink()
    with pytest.raises(HmuError, match="download_clip.sh"):
        te.ClipTextEncoder()
