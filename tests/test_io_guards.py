"""The guarded readers and writers of src.common.io against more than one payload each (issue 26).

- ``safe_pickle_load`` and ``torch_load`` refuse every pickle that names a code-running global: ``eval``, ``exec``,
  ``builtins.getattr`` (with ``__import__``), ``subprocess.Popen``, ``os.system``, and such an object nested inside
  containers. Each payload would create a marker file when run; the test checks the refusal AND the marker's absence.
- ``atomic_torch_save`` refuses NaN and inf anywhere in the object (nested too), writes nothing, and keeps an
  older file intact.
"""
from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import pytest

from src.common.errors import HmuError
from src.common.io import atomic_torch_save, safe_pickle_load, torch_load


class _Reduce:
    """Pickles as ``fn(*args)``."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _getattr_payload(marker: Path) -> bytes:
    """Protocol-0 pickle: ``getattr(__import__('os'), 'system')('touch marker')`` (three builtins globals)."""
    return (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'touch "
            + str(marker).encode() + b"'\ntR.")


def _payloads(marker: Path) -> dict[str, object]:
    cmd = f"open({str(marker)!r}, 'w').close()"
    return {
        "eval": _Reduce(eval, (cmd,)),
        "exec": _Reduce(exec, (cmd,)),
        "os.system": _Reduce(os.system, (f"touch {marker}",)),
        "subprocess.Popen": _Reduce(subprocess.Popen, (["touch", str(marker)],)),
        "nested": {"weights": [1.0, 2.0], "meta": {"opts": [("ok", _Reduce(eval, (cmd,)))]}},
    }


PAYLOADS = ["eval", "exec", "os.system", "subprocess.Popen", "nested", "builtins.getattr"]


def _write_pickle(path: Path, name: str, marker: Path) -> None:
    if name == "builtins.getattr":
        path.write_bytes(_getattr_payload(marker))
    else:
        path.write_bytes(pickle.dumps(_payloads(marker)[name], protocol=2))


def test_the_payloads_really_run_code_when_unpickled(tmp_path):
    """The payloads are live: a plain pickle.loads creates the marker (so a refusal below means something)."""
    for name in PAYLOADS:
        marker = tmp_path / f"ran_{name}"
        p = tmp_path / f"{name}.pkl"
        _write_pickle(p, name, marker)
        obj = pickle.loads(p.read_bytes())  # noqa: S301 - the point of this test
        if name == "subprocess.Popen":
            obj.wait()
        assert marker.exists(), name


@pytest.mark.parametrize("name", PAYLOADS)
def test_safe_pickle_load_refuses_every_code_running_global(tmp_path, name):
    marker = tmp_path / "ran"
    p = tmp_path / "words.pkl"
    _write_pickle(p, name, marker)
    with pytest.raises(HmuError) as e:
        safe_pickle_load(p, what="word-vector file")
    assert str(p) in str(e.value) and "refused" in str(e.value)
    assert not marker.exists()


def test_safe_pickle_load_still_reads_plain_data(tmp_path):
    from collections import OrderedDict

    obj = {"a": [1, 2.5, "x", None, True], "b": (1, 2), "c": {3, 4}, "d": frozenset({5}), "e": OrderedDict(z=1)}
    p = tmp_path / "ok.pkl"
    p.write_bytes(pickle.dumps(obj, protocol=2))
    assert safe_pickle_load(p) == obj


@pytest.mark.parametrize("name", PAYLOADS)
def test_torch_load_refuses_every_code_running_global(tmp_path, name):
    import torch

    marker = tmp_path / "ran"
    p = tmp_path / "net.tar"
    if name == "builtins.getattr":  # a raw pickle stream in place of a torch file
        p.write_bytes(_getattr_payload(marker))
    else:
        torch.save({"state_dict": {"w": torch.ones(2)}, "extra": _payloads(marker)[name]}, p)
    with pytest.raises(HmuError) as e:
        torch_load(p)
    assert str(p) in str(e.value)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ atomic_torch_save
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "nested_nan", "half_nan"])
def test_atomic_torch_save_refuses_non_finite_and_keeps_the_old_file(tmp_path, bad):
    import torch

    p = tmp_path / "net.tar"
    atomic_torch_save({"w": torch.ones(3)}, p)
    old = p.read_bytes()
    v = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}.get(bad, float("nan"))
    w = torch.ones(3)
    w[1] = v
    if bad == "half_nan":
        obj = {"w": w.half()}
    elif bad == "nested_nan":
        obj = {"model": {"layers": [{"w": torch.ones(2)}, {"w": w}]}, "epoch": 3}
    else:
        obj = {"w": w}
    with pytest.raises(HmuError) as e:
        atomic_torch_save(obj, p)
    assert str(p) in str(e.value) and "NaN or inf" in str(e.value)
    if bad == "nested_nan":
        assert "model.layers.1.w" in str(e.value)
    assert p.read_bytes() == old
    assert sorted(x.name for x in tmp_path.iterdir()) == ["net.tar"]   # no temporary file left


def test_atomic_torch_save_writes_finite_objects_and_integer_tensors(tmp_path):
    import torch

    p = tmp_path / "ok.tar"
    obj = {"w": torch.arange(4.0), "codes": torch.tensor([-1, 3]), "step": 2}
    atomic_torch_save(obj, p)
    back = torch_load(p)
    assert torch.equal(back["w"], obj["w"]) and torch.equal(back["codes"], obj["codes"]) and back["step"] == 2
