"""Upper bounds on sizes and counts, a full disk, and wandb usage errors are the user's (issue 26).

Each case is one line (HmuError) naming the key, flag, file or variable, before any work; none is a hang, an
overflow or "a bug in hmu".
"""
from __future__ import annotations

import errno
import logging

import numpy as np
import pytest

from src.common.errors import HmuError, is_user_error, one_line


# ------------------------------------------------------------------------------------------------ sizes and counts
@pytest.mark.parametrize("key, value", [("latent_dim", "100000000"), ("ff_size", "1000000000"),
                                        ("n_layers", "100000"), ("max_motion_length", "1000000000"),
                                        ("nb_code", "99999999"), ("clip_dim", "1e9"), ("width", "10000000")])
def test_opt_txt_sizes_have_upper_bounds(key, value):
    from src.config.momask import MaskTransConfig, VQConfig

    cls = VQConfig if key in ("nb_code", "width") else MaskTransConfig
    extra = {} if cls is VQConfig else {"n_heads": "1"}
    with pytest.raises(HmuError) as e:
        cls.from_dict({key: value, **extra}, source="ck/mask/opt.txt")
    assert "ck/mask/opt.txt" in str(e.value) and key in str(e.value)


def test_released_sizes_are_within_the_bounds():
    from src.config.momask import MaskTransConfig

    c = MaskTransConfig.from_dict({"latent_dim": "384", "ff_size": "1024", "n_layers": "8", "n_heads": "6",
                                   "max_motion_length": "196"})
    assert c.latent_dim == 384


@pytest.mark.parametrize("flag, value, ok", [("repeat_times", 1_000_000_000, False), ("repeat_times", 20, True),
                                             ("time_steps", 10**7, False), ("batch_size", 10**12, False),
                                             ("latent_dim", 10**8, False), ("mm_generations", 10**6, False)])
def test_flag_bounds(flag, value, ok):
    from src.common.validate import check_args

    if ok:
        check_args({flag: value})
    else:
        with pytest.raises(HmuError, match=f"--{flag}"):
            check_args({flag: value})


def test_gen_count_bound():
    from src.gen.generate import MAX_MOTIONS, check_generation_count

    check_generation_count(10, 10)
    with pytest.raises(HmuError, match="repeat_times"):
        check_generation_count(3, MAX_MOTIONS)
    with pytest.raises(HmuError, match=">= 1"):
        check_generation_count(3, 0)


@pytest.mark.parametrize("frames", [10**23, 2**63, 10**6])
def test_huge_prompt_length_is_cut_with_a_warning_not_an_overflow(frames, caplog):
    import torch
    from test_gen import tiny_generator

    gen = tiny_generator()
    with caplog.at_level(logging.WARNING):
        (out,) = gen.generate(["a person kicks"], [frames], generator=torch.Generator().manual_seed(0))
    assert out.shape[0] == 48                                     # the model's maximum (max_motion_length)
    assert any("above the model's maximum" in r.getMessage() for r in caplog.records)


def test_prompt_file_length_of_1e23_frames(tmp_path):
    from src.data.prompts import read_prompt_lines

    p = tmp_path / "p.txt"
    p.write_text("a person kicks#100000000000000000000000\n")
    (pr,) = read_prompt_lines(p)
    assert pr.length == 10**23            # kept as asked; the generator cuts it with a warning (test above)
    p.write_text("a person kicks#1e23\n")
    with pytest.raises(HmuError, match="integer number of frames"):
        read_prompt_lines(p)


# ------------------------------------------------------------------------------------------------ full disk
def _no_space_torch_save(*a, **k):
    raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0; "
                       "PytorchStreamWriter failed writing file data/0: file write failed")


def test_full_disk_during_torch_save_is_the_machines_problem(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import torch

    from src.common.io import atomic_torch_save

    p = tmp_path / "net.tar"
    atomic_torch_save({"w": torch.ones(2)}, p)
    old = p.read_bytes()
    monkeypatch.setattr(torch, "save", _no_space_torch_save)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9, 0))
    with pytest.raises(HmuError) as e:
        atomic_torch_save({"w": torch.zeros(2)}, p)
    assert str(e.value).startswith(f"no space left on device while writing {p}")
    assert p.read_bytes() == old and sorted(x.name for x in tmp_path.iterdir()) == ["net.tar"]


def test_torch_write_failure_with_free_space_is_not_called_a_full_disk(tmp_path, monkeypatch):
    import torch

    from src.common.io import atomic_torch_save

    monkeypatch.setattr(torch, "save", _no_space_torch_save)
    with pytest.raises(RuntimeError):
        atomic_torch_save({"w": torch.zeros(2)}, tmp_path / "net.tar")


def test_enospc_from_numpy_and_at_the_cli_boundary(tmp_path, monkeypatch):
    from src.common.io import atomic_save_npy

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(HmuError, match=f"no space left on device while writing {tmp_path / 'a.npy'}"):
        atomic_save_npy(tmp_path / "a.npy", np.zeros(3))
    exc = OSError(errno.ENOSPC, "No space left on device", "/data/out/metrics.json")
    assert is_user_error(exc) and one_line(exc) == "no space left on device while writing /data/out/metrics.json"


# ------------------------------------------------------------------------------------------------ wandb
@pytest.fixture
def no_wandb_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.mark.parametrize("mode, expect", [("online", "no wandb credentials"), ("run", "no wandb credentials"),
                                          ("onlin", "not a wandb mode"), ("offline", None), ("disabled", None)])
def test_wandb_usage_errors_are_the_users_and_come_first(no_wandb_credentials, monkeypatch, mode, expect):
    from src.common.logging import WandbOptions, check_wandb_usage

    monkeypatch.setenv("WANDB_MODE", mode)
    if expect is None:
        assert check_wandb_usage() == mode
        WandbOptions(enabled=True).check()
        return
    with pytest.raises(HmuError, match=expect):
        WandbOptions(enabled=True).check()
    WandbOptions(enabled=False).check()               # not asked for: not checked
    from src.eval.results import require_wandb

    with pytest.raises(HmuError, match=expect):
        require_wandb()


def test_wandb_online_with_a_key_is_fine(monkeypatch):
    from src.common.logging import check_wandb_usage

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert check_wandb_usage() == "online"


@pytest.fixture
def full_tmpfs(tmp_path):
    """A 256 KiB tmpfs (needs root and a mount-capable container; skipped otherwise): a real full disk."""
    import subprocess

    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)], capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)  # lazy: a failed writer may still hold a file open


@pytest.mark.parametrize("writer", ["torch", "numpy", "json"])
def test_a_real_full_disk_is_said_as_such(full_tmpfs, writer):
    import torch

    from src.common.io import atomic_save_npy, atomic_torch_save, atomic_write_json

    target = full_tmpfs / {"torch": "net.tar", "numpy": "a.npy", "json": "m.json"}[writer]
    with pytest.raises(HmuError) as e:
        if writer == "torch":
            atomic_torch_save({"w": torch.ones(256, 1024)}, target)
        elif writer == "numpy":
            atomic_save_npy(target, np.ones((256, 1024), np.float32))
        else:
            atomic_write_json(target, {"x": "y" * (1 << 20)})
    assert str(e.value).startswith(f"no space left on device while writing {target}")
    assert list(full_tmpfs.iterdir()) == []          # no partial file left
