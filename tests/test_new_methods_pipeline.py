"""Issue 29: task vectors and ESD as method steps of the pipeline, with their scripts/eval wrappers."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from src.common.errors import HmuError

REPO = Path(__file__).resolve().parents[1]


def _plan(*argv):
    from src.methods.pipeline import parse_pipeline, plan

    return plan(*parse_pipeline(list(argv)))


def _flag(argv, name):
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize("method", ["taskvec", "esd"])
def test_pipeline_plans_the_edit_then_its_evaluation(method):
    steps = _plan(method, "violence", "synth", "--vq_name", "v", "--trans_name", "m", "--res_name", "r",
                  "--steps", "7", "--seed", "3")
    assert [s[0] for s in steps] == [f"src.methods.{method}", "src.eval.t2m_unlearn"]
    edit, ev = steps[0][1], steps[1][1]
    # the method step: its own flags reach it, the source and the new run are named, the evaluation's are not there
    assert _flag(edit, "--steps") == "7" and _flag(edit, "--trans_name") == "m"
    assert _flag(edit, "--name") == f"{method}_violence" and _flag(edit, "--seed") == "3"
    assert "--repeat_times" not in edit
    # the evaluation: the edited masked transformer with the ORIGINAL residual transformer and VQ
    assert _flag(ev, "--name") == f"{method}_violence" and _flag(ev, "--res_name") == "r"
    assert _flag(ev, "--vq_name") == "v" and _flag(ev, "--method") == method and "--steps" not in ev
    # the method's config checked the flags before any step
    from src.config.command import parse_config
    from importlib import import_module

    parse_config(import_module(f"src.methods.{method}").CONFIG, edit, prog=method)


def test_gated_taskvec_is_labelled_and_bad_flags_stop_the_plan():
    steps = _plan("taskvec", "violence", "synth", "--mode", "gated", "--no_eval")
    assert [s[0] for s in steps] == ["src.methods.taskvec"] and _flag(steps[0][1], "--mode") == "gated"
    ev = _plan("taskvec", "violence", "synth", "--mode", "gated")[1][1]
    assert _flag(ev, "--method") == "taskvec_gated"
    with pytest.raises(HmuError):
        _plan("esd", "violence", "synth", "--steps", "0")
    with pytest.raises(HmuError, match="bamm"):
        _plan("esd", "violence", "synth", "--model", "bamm")


@pytest.mark.parametrize("method", ["taskvec", "esd"])
def test_scripts_help(method):
    env = {**os.environ, "HMU_VENV": os.environ.get("HMU_VENV", "/work/main/.venv")}
    r = subprocess.run(["bash", f"scripts/eval/{method}.sh", "--help"], cwd=REPO, capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-1000:]
    assert "taskvec" in r.stdout and "esd" in r.stdout   # the pipeline's method choices


# ---------------------------------------------------------------------------------------------------- quickstart
def _qs(settings=None, **kw):
    from src.quickstart import FULL, plan

    root = Path("/tmp/qs")
    return plan(run="qs", settings=settings or FULL, seed=0, gpu=["--gpu_id", "-1"], ckpt=root / "ck",
                data=root / "ds", results=root / "res", **kw)


def test_quickstart_default_is_unchanged_and_methods_opt_in():
    from src.config.command import parse_config
    from src.methods.esd import EsdConfig
    from src.methods.taskvec import TaskVecConfig
    from src.quickstart import FAST, QuickstartConfig, critical_path, parse_methods

    default = _qs()
    assert not any(m in st.name for st in default for m in ("taskvec", "esd"))
    assert parse_config(QuickstartConfig, [], prog="qs").methods == ""
    assert parse_methods("") == [] and parse_methods("esd,taskvec") == ["esd", "taskvec"]
    with pytest.raises(HmuError, match="--methods: unknown method 'lcr'"):
        parse_methods("lcr")
    # the default run's stages and scheduling are those of a plan without extra methods
    assert critical_path(default) == critical_path(_qs(extra_methods=()))
    both = {st.name: st for st in _qs(FAST, extra_methods=["taskvec", "esd"])}
    for m, cls in (("taskvec", TaskVecConfig), ("esd", EsdConfig)):
        edit, ev = both[f"unlearn:{m}"], both[f"eval:{m}"]
        c = parse_config(cls, edit.argv, prog=m)           # the stage's argv is a valid command line
        assert (c.trans_name, c.name, c.steps, c.concept) == ("t2m_tiny", f"{m}_violence", 20, "violence")
        assert "train:mask" in edit.after and f"unlearn:{m}" in ev.after and "train:residual" in ev.after
        assert _flag(ev.argv, "--name") == f"{m}_violence" and _flag(ev.argv, "--res_name") == "tres_tiny"
        assert f"eval:{m}" in both["report"].after
        assert edit.outputs == [Path("/tmp/qs/ck/synth") / f"{m}_violence" / "model" / "net_best_fid.tar"]
