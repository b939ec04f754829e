import os
import signal
import subprocess
import sys
import textwrap

import pytest

from src.common.errors import HmuError, cli
from src.common.io import atomic_write_bytes, refuse_overwrite, torch_load
from src.common.datasets import get_spec


def test_spec_aliases_and_unknown():
    assert get_spec("t2m").name == "HumanML3D"
    assert get_spec("humanml3d").dim_pose == 263
    with pytest.raises(HmuError, match="unknown dataset 'nope'"):
        get_spec("nope")


def test_cli_wrapper_one_line(capsys):
    @cli
    def main(argv=None):
        raise HmuError("bad thing in file.txt")

    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: bad thing in file.txt"


def test_refuse_overwrite(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("x")
    with pytest.raises(HmuError, match="--force"):
        refuse_overwrite(p, force=False)
    refuse_overwrite(p, force=True)


def test_atomic_write_killed_midway_keeps_old_file(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.getcwd()!r})
        from src.common.io import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, 'w') as fh:
                fh.write('partial')
                fh.flush()
                os.kill(os.getpid(), 9)
    """)
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_text() == "old"


def test_torch_load_errors(tmp_path):
    with pytest.raises(HmuError, match="not found"):
        torch_load(tmp_path / "missing.tar")
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(HmuError, match="bad.tar"):
        torch_load(bad)
    atomic_write_bytes(tmp_path / "ok.bin", b"1")


def test_cli_output_piped_into_a_closed_reader_is_quiet():
    """`python -m src.quickstart --list | head -1`: the reader leaves early; no error line, no traceback."""
    r = subprocess.run(f"{sys.executable} -m src.quickstart --list --dataset_dir /nonexistent_hmu | head -1",
                       shell=True, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)), check=False)
    assert r.stdout.count("\n") == 1 and r.stdout.startswith("todo")
    assert "error" not in r.stderr and "Traceback" not in r.stderr
