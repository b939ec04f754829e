"""Shared test fixtures: the upstream parity folder (HMU_FIXTURES) and small helpers."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def fixtures_root() -> Path:
    return Path(os.environ.get("HMU_FIXTURES", REPO.parent / "shared" / "fixtures" / "upstream")).resolve()


@pytest.fixture(scope="session")
def fixtures() -> Path:
    root = fixtures_root()
    if not root.is_dir():
        pytest.skip(f"upstream fixtures not found at {root} (set HMU_FIXTURES)")
    return root


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` from the repo root and capture its output."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("HMU_DEBUG", None)
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or REPO, env=e, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small embedded ``synth`` dataset (120 motions, seed 0), generated once per test session."""
    from src.data.synth import generate_synth

    root = tmp_path_factory.mktemp("dataset") / "synth"
    generate_synth(root, n=120, seed=0, workers=1)
    return root
