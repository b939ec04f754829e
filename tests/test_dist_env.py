"""torchrun's environment is checked before any rendezvous (issue 26): a wrong one is one line at once, and a
rendezvous that cannot complete ends after HMU_DIST_TIMEOUT seconds, not torch's 30 minutes."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.common import dist
from src.common.errors import HmuError

REPO = Path(__file__).resolve().parents[1]
DIST_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
             dist.MANUAL_ENV, dist.TIMEOUT_ENV)


@pytest.fixture
def env(monkeypatch):
    for k in DIST_VARS:
        monkeypatch.delenv(k, raising=False)

    def set_(**kw):
        for k, v in kw.items():
            monkeypatch.setenv(k, str(v))
    return set_


TORCHRUN = {"TORCHELASTIC_RUN_ID": "x", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


def test_single_process_needs_nothing(env):
    assert dist.check_launch_env() == (0, 1)
    env(WORLD_SIZE=1)
    assert dist.check_launch_env() == (0, 1)


@pytest.mark.parametrize("case, expect", [
    ({"WORLD_SIZE": 2}, "not started by torchrun"),
    ({"WORLD_SIZE": 2, "RANK": 0, "MASTER_ADDR": "x", "MASTER_PORT": 1}, "not started by torchrun"),
    ({**TORCHRUN, "WORLD_SIZE": 2, "RANK": 2}, "RANK=2 is outside 0..1"),
    ({**TORCHRUN, "WORLD_SIZE": 2, "RANK": -1}, "RANK=-1 is outside"),
    ({**TORCHRUN, "WORLD_SIZE": 2}, "RANK is not set"),
    ({**TORCHRUN, "WORLD_SIZE": "two", "RANK": 0}, "WORLD_SIZE='two' is not an integer"),
    ({**TORCHRUN, "WORLD_SIZE": 0, "RANK": 0}, "WORLD_SIZE=0 must be >= 1"),
    ({**TORCHRUN, "WORLD_SIZE": 10**9, "RANK": 0}, "more processes"),
    ({**TORCHRUN, "WORLD_SIZE": 2, "RANK": 1, "LOCAL_RANK": -3}, "LOCAL_RANK=-3"),
    ({"TORCHELASTIC_RUN_ID": "x", "MASTER_PORT": 29500, "WORLD_SIZE": 2, "RANK": 0}, "MASTER_ADDR is not set"),
    ({**TORCHRUN, "MASTER_PORT": 70000, "WORLD_SIZE": 2, "RANK": 0}, "MASTER_PORT='70000'"),
    ({**TORCHRUN, "MASTER_PORT": "", "WORLD_SIZE": 2, "RANK": 0}, "MASTER_PORT"),
])
def test_bad_launch_environment_is_one_line_before_any_rendezvous(env, case, expect):
    env(**case)
    with pytest.raises(HmuError, match=expect.replace("(", r"\(").replace(")", r"\)")) as e:
        dist.check_launch_env()
    assert "\n" not in str(e.value)


def test_good_launch_environment(env):
    env(**TORCHRUN, WORLD_SIZE=4, RANK=3, LOCAL_RANK=1)
    assert dist.check_launch_env() == (3, 4)
    env(**{dist.MANUAL_ENV: "1"}, TORCHELASTIC_RUN_ID="")
    assert dist.check_launch_env() == (3, 4)


@pytest.mark.parametrize("value, ok", [(None, 300.0), ("5", 5.0), ("0", None), ("1e9", None), ("soon", None),
                                       ("nan", None)])
def test_timeout_default_is_minutes_and_bounded(env, value, ok):
    if value is not None:
        env(**{dist.TIMEOUT_ENV: value})
    if ok is None:
        with pytest.raises(HmuError, match=dist.TIMEOUT_ENV):
            dist.timeout_s()
    else:
        assert dist.timeout_s() == ok
    assert dist.DEFAULT_TIMEOUT_S <= 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("rank", [0, 1])
def test_a_rendezvous_missing_a_process_ends_after_the_timeout_with_one_line(rank):
    """WORLD_SIZE=2 but one process: rank 0 waits for a client, rank 1 for a server; either ends after the timeout
    (3 s here) with one line naming the address, instead of waiting 30 minutes."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from src.common import dist\nfrom src.common.errors import HmuError\n"
            "try:\n    dist.init('cpu')\nexcept HmuError as e:\n    print('ERR', e); sys.exit(2)\n"
            "print('joined')\n") % str(REPO)
    e = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    port = _free_port()
    e.update({"WORLD_SIZE": "2", "RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
              dist.MANUAL_ENV: "1", dist.TIMEOUT_ENV: "3"})
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=120, check=False)
    took = time.monotonic() - t0
    assert r.returncode == 2, r.stderr[-2000:]
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("ERR") and f"127.0.0.1:{port}" in line and "within 3 s" in line
    assert took < 90
