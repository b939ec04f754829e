"""``src.gen`` output folders are replaced whole (issue 26): built in a hidden sibling, swapped in at the end.

- a ``--force`` rerun with fewer prompts leaves none of the earlier run's files;
- a run that fails (or is killed) before its index is written leaves the old folder exactly as it was;
- a folder that is not a generation folder is never replaced, even with ``--force``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from src.common.errors import HmuError
from src.common.io import begin_staged_folder, commit_staged_folder, recover_folder, staged_folder

REPO = Path(__file__).resolve().parents[1]


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.parent.iterdir() if p.name.startswith(f".{d.name}."))


def _fill(stage: Path, n: int, tag: str) -> None:
    (stage / "features").mkdir()
    for i in range(n):
        (stage / "features" / f"p{i:03d}.npy").write_text(f"{tag}{i}")
    (stage / "index.json").write_text(json.dumps({"n": n, "tag": tag}))


def test_rerun_with_fewer_items_leaves_no_stale_file(tmp_path):
    out = tmp_path / "gen"
    with staged_folder(out, force=False, index="index.json") as s:
        _fill(s, 3, "old")
    with staged_folder(out, force=True, index="index.json") as s:
        _fill(s, 1, "new")
    assert sorted(_tree(out)) == ["features/p000.npy", "index.json"]
    assert (out / "features" / "p000.npy").read_text() == "new0"
    assert _leftovers(out) == []
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_failure_before_the_index_keeps_the_old_folder(tmp_path):
    out = tmp_path / "gen"
    with staged_folder(out, force=False, index="index.json") as s:
        _fill(s, 3, "old")
    before = _tree(out)
    with pytest.raises(RuntimeError), staged_folder(out, force=True, index="index.json") as s:
        (s / "features").mkdir()
        (s / "features" / "p000.npy").write_text("new0")
        raise RuntimeError("the video title crashed")
    assert _tree(out) == before and _leftovers(out) == []


def test_without_force_or_on_a_foreign_folder_nothing_is_replaced(tmp_path):
    out = tmp_path / "gen"
    with staged_folder(out, force=False, index="index.json") as s:
        _fill(s, 1, "old")
    with pytest.raises(HmuError, match="--force"):
        begin_staged_folder(out, force=False, index="index.json")
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(HmuError, match="not empty"):
        begin_staged_folder(home, force=True, index="index.json")
    assert (home / "thesis.tex").read_text() == "years of work"
    empty = tmp_path / "empty"
    empty.mkdir()
    s = begin_staged_folder(empty, force=False, index="index.json")
    _fill(s, 1, "x")
    commit_staged_folder(s, empty, index="index.json")
    assert (empty / "index.json").is_file()


@pytest.mark.parametrize("when", ["before_index", "after_index"])
def test_killed_writer_leaves_the_old_folder_and_the_next_writer_cleans_up(tmp_path, when):
    out = tmp_path / "gen"
    with staged_folder(out, force=False, index="index.json") as s:
        _fill(s, 3, "old")
    before = _tree(out)
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from src.common.io import begin_staged_folder
out = Path({str(out)!r})
s = begin_staged_folder(out, force=True, index="index.json")
(s / "features").mkdir()
(s / "features" / "p000.npy").write_text("new0")
if {when == "after_index"!r}:
    (s / "index.json").write_text("{{}}")
os.kill(os.getpid(), signal.SIGKILL)
"""
    r = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert r.returncode == -signal.SIGKILL
    assert _tree(out) == before                       # the old folder, untouched
    assert len(_leftovers(out)) == 1                  # the dead writer's stage
    recover_folder(out)
    assert _tree(out) == before and _leftovers(out) == []


# ------------------------------------------------------------------------------------------------ through the CLI
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    from test_train_momask import train_tiny

    return train_tiny(tmp_path_factory.mktemp("gen_staging"))


def _gen_argv(tiny_runs, prompts: Path, out: Path) -> list[str]:
    ckpt, data = tiny_runs
    return ["--name", "mask", "--res_name", "res", "--dataset_name", "synth", "--text_path", str(prompts),
            "--seed", "5", "--checkpoints_dir", str(ckpt), "--dataset_dir", str(data), "--no_animate",
            "--no_progress", "--out", str(out)]


def test_gen_force_rerun_replaces_the_whole_folder(tiny_runs, tmp_path, monkeypatch):
    from src.gen.__main__ import main

    out = tmp_path / "gen"
    three = tmp_path / "three.txt"
    three.write_text("a person kicks#40\na person walks#40\na person jumps#40\n")
    one = tmp_path / "one.txt"
    one.write_text("a person walks#40\n")
    assert main(_gen_argv(tiny_runs, three, out)) == 0
    assert len(list((out / "features").rglob("*.npy"))) == 3
    old = _tree(out)
    # a crash after the motions were generated, before the index: the old folder is intact
    import src.viz.export as export

    def crash(*a, **k):
        raise RuntimeError("title rendering failed")

    monkeypatch.setattr(export, "write_outputs", crash)
    monkeypatch.setattr("src.gen.__main__.write_outputs", crash, raising=False)
    with pytest.raises(RuntimeError):
        import src.gen.__main__ as gm
        gm.main.__wrapped__(_gen_argv(tiny_runs, one, out) + ["--force"])
    assert _tree(out) == old
    monkeypatch.undo()
    assert main([*_gen_argv(tiny_runs, one, out), "--force"]) == 0
    index = json.loads((out / "prompts.json").read_text())
    listed = {i["features"] for i in index["items"]} | {i["joints"] for i in index["items"]} | {"prompts.json"}
    assert set(_tree(out)) == listed and len(index["items"]) == 1   # nothing of the 3-prompt run is left
