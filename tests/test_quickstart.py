"""The quickstart's plan (pure) and its scheduler (with tiny fake stages), plus one slow end-to-end smoke run."""
import json
import sys
from pathlib import Path

import pytest

from src.common.errors import HmuError
from src.quickstart import FAST, FULL, Stage, critical_path, plan, run_stages

ROOT = Path("/tmp/x")


def _plan(settings=FULL):
    return plan(run="qs", settings=settings, seed=0, gpu=["--gpu_id", "-1"], ckpt=ROOT / "ck", data=ROOT / "ds",
                results=ROOT / "res")


def test_plan_covers_every_method_and_dependencies_come_first():
    stages = _plan()
    names = [s.name for s in stages]
    assert len(names) == len(set(names))
    for m in ("original", "lcr", "uce", "rece", "finetune", "retrain"):
        assert f"eval:{m}" in names
    assert names[-1] == "report"
    known = set(names)
    for s in stages:
        assert set(s.after) <= known, s.name
    # a topological order exists (the scheduler also checks this at run time)
    done: set[str] = set()
    todo = list(stages)
    while todo:
        ready = [s for s in todo if set(s.after) <= done]
        assert ready, f"cycle among {[s.name for s in todo]}"
        for s in ready:
            done.add(s.name)
            todo.remove(s)


def test_plan_outputs_and_flags():
    stages = {s.name: s for s in _plan()}
    assert stages["eval:lcr"].argv[stages["eval:lcr"].argv.index("--vq_name") + 1] == "lcr_violence"
    assert stages["report"].outputs == [ROOT / "res" / "qs" / "report" / "report.md"]
    # method stages write new runs, never the originals
    for name in ("unlearn:lcr", "unlearn:uce", "unlearn:rece", "unlearn:finetune", "unlearn:retrain"):
        outs = [str(p) for p in stages[name].outputs]
        assert outs and not any(f"/{orig}/" in o for o in outs for orig in ("rvq_tiny", "t2m_tiny", "tres_tiny"))
    fast = {s.name: s for s in _plan(FAST)}
    assert "--no_mm" in fast["eval:original"].argv and "--max_epoch" in fast["train:vq"].argv
    # the smoke run makes one before/after video (issue 17); the full run its default prompts
    rep = fast["report"].argv
    assert "--no_video" not in rep and rep[rep.index("--max_prompts") + 1] == "1"
    assert "--no_video" not in stages["report"].argv and "--max_prompts" not in stages["report"].argv
    # the seed must come before a "--" that hands the rest to sub-trainers
    argv = fast["unlearn:retrain"].argv
    assert argv.index("--seed") < argv.index("--")


def _stage(tmp, name, after=(), code="pass"):
    out = tmp / f"{name}.out"
    script = f"import pathlib, time\n{code}\npathlib.Path({str(out)!r}).write_text('ok')\n"
    return Stage(name, "runpy_stub", ["-c", script], [out], after=tuple(after))


def test_scheduler_runs_in_dependency_order_and_skips_finished(tmp_path, monkeypatch):
    import subprocess

    order = tmp_path / "order.txt"
    code = lambda n: f"open({str(order)!r}, 'a').write('{n}\\n'); time.sleep(0.3)"
    stages = [_stage(tmp_path, "a", code=code("a")), _stage(tmp_path, "b", ["a"], code("b")),
              _stage(tmp_path, "c", ["a"], code("c")), _stage(tmp_path, "d", ["b", "c"], code("d"))]
    real_popen = subprocess.Popen

    def popen(argv, **kw):  # replace "python -m src.common._run_code -c CODE" by "python -c CODE"
        return real_popen([sys.executable, *argv[3:]], **kw)

    monkeypatch.setattr(subprocess, "Popen", popen)
    wall = run_stages(stages, jobs=2, force=False, env={}, cwd=tmp_path, logs=tmp_path / "logs",
                      record_path=tmp_path / "stages.json", root=tmp_path)
    seq = order.read_text().split()
    assert seq[0] == "a" and seq[-1] == "d" and sorted(seq[1:3]) == ["b", "c"]
    # b and c ran side by side: the whole thing took less than the four sleeps in a row
    assert wall < 4 * 0.3 + 1.0
    rec = json.loads((tmp_path / "stages.json").read_text())
    assert set(rec) >= {"a", "b", "c", "d", "_total"}
    # second run: everything is skipped, nothing executes
    order.write_text("")
    run_stages(stages, jobs=2, force=False, env={}, cwd=tmp_path, logs=tmp_path / "logs",
               record_path=tmp_path / "stages.json", root=tmp_path)
    assert order.read_text() == ""


def test_ready_stages_start_longest_chain_first(tmp_path, monkeypatch):
    """With one lane, of two ready stages the one that others wait on goes first, whatever the plan order."""
    import subprocess

    order = tmp_path / "order.txt"
    code = lambda n: f"open({str(order)!r}, 'a').write('{n}\\n')"
    stages = [_stage(tmp_path, "leaf", code=code("leaf")), _stage(tmp_path, "root", code=code("root")),
              _stage(tmp_path, "mid", ["root"], code("mid")), _stage(tmp_path, "end", ["mid"], code("end"))]
    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kw: real_popen([sys.executable, *argv[3:]], **kw))
    run_stages(stages, jobs=1, force=False, env={}, cwd=tmp_path, logs=tmp_path / "logs",
               record_path=tmp_path / "stages.json", root=tmp_path)
    seq = order.read_text().split()
    assert seq[:2] == ["root", "mid"] and sorted(seq[2:]) == ["end", "leaf"]  # then a tie: plan order


def test_heartbeat_shows_the_running_stage_progress(tmp_path, monkeypatch, capsys):
    import subprocess

    from src.quickstart import _progress

    log = tmp_path / "x.log"
    log.write_text("$ cmd\nepoch 1/3: 10%|#  | 1/10\repoch 1/3: 50%|##### | 5/10\r")
    assert _progress(log) == "epoch 1/3: 50%|##### | 5/10"
    assert _progress(tmp_path / "missing.log") == ""
    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kw: real_popen([sys.executable, *argv[3:]], **kw))
    code = "import sys\nfor i in range(8):\n    print(f'step {i}/8', flush=True); time.sleep(0.1)"
    run_stages([_stage(tmp_path, "slow", code=code)], jobs=1, force=False, env={}, cwd=tmp_path,
               logs=tmp_path / "logs", record_path=tmp_path / "stages.json", root=tmp_path, heartbeat=0.3)
    beats = [ln for ln in capsys.readouterr().out.splitlines() if ": running " in ln]
    assert beats and all("slow" in ln for ln in beats)
    assert any("step " in ln for ln in beats)  # the stage's own latest line rides along


def test_critical_path_of_the_plan():
    longest = critical_path(_plan())
    # every stage's chain is at least as long as that of any stage waiting on it
    for st in _plan():
        for d in st.after:
            assert longest[d] > longest[st.name]
    assert longest["data"] == max(longest.values())
    assert longest["train:vq"] > longest["train:evaluator"]  # the VQ-VAE feeds every generator


def test_scheduler_reports_a_failing_stage_and_stops_its_dependents(tmp_path, monkeypatch, capsys):
    import subprocess

    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kw: real_popen([sys.executable, *argv[3:]], **kw))
    stages = [_stage(tmp_path, "a", code="raise SystemExit('boom in a')"), _stage(tmp_path, "b", ["a"])]
    with pytest.raises(HmuError, match="stage 'a' failed"):
        run_stages(stages, jobs=2, force=False, env={}, cwd=tmp_path, logs=tmp_path / "logs",
                   record_path=tmp_path / "stages.json", root=tmp_path)
    assert "boom in a" in capsys.readouterr().err
    assert not (tmp_path / "b.out").exists()


@pytest.mark.slow
def test_fast_quickstart_end_to_end(tmp_path, cli):
    r = cli("src.quickstart", "--fast", "--checkpoints_dir", str(tmp_path / "ck"), "--dataset_dir",
            str(tmp_path / "ds"), "--results_dir", str(tmp_path / "res"), timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    md = (tmp_path / "res" / "quickstart_fast" / "report" / "report.md").read_text()
    for method in ("original", "lcr", "uce", "rece", "finetune", "retrain"):
        assert method in md
    videos = list((tmp_path / "res" / "quickstart_fast" / "report" / "videos").glob("*.*"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0 and f"videos/{videos[0].name}" in md
    again = cli("src.quickstart", "--fast", "--checkpoints_dir", str(tmp_path / "ck"), "--dataset_dir",
                str(tmp_path / "ds"), "--results_dir", str(tmp_path / "res"))
    # 20 stages + "text" (the MiniLM caption features)
    assert again.returncode == 0 and again.stdout.count("done, skipped") == 21


def test_attacks_stage_is_optional_and_feeds_the_report():
    assert "eval:attacks" not in [s.name for s in _plan()]
    stages = {s.name: s for s in plan(run="qs", settings=FULL, seed=0, gpu=[], ckpt=ROOT / "ck", data=ROOT / "ds",
                                      results=ROOT / "res", attacks=True)}
    att = stages["eval:attacks"]
    assert "eval:attacks" in stages["report"].after
    assert {"unlearn:lcr", "unlearn:uce", "unlearn:rece", "unlearn:finetune", "unlearn:retrain"} <= set(att.after)
    models = att.argv[att.argv.index("--models") + 1].split(",")
    assert [m.split("=")[0] for m in models] == ["original", "lcr", "uce", "rece", "finetune", "retrain"]


def test_every_evaluation_waits_for_all_the_models_it_loads():
    stages = {s.name: s for s in _plan()}

    def closure(name):
        seen, todo = set(), [name]
        while todo:
            for d in stages[todo.pop()].after:
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen

    for label in ("original", "lcr", "uce", "rece", "finetune", "retrain"):
        deps = closure(f"eval:{label}")
        assert {"train:vq", "train:evaluator", "train:classifier", "split"} <= deps, label
    assert {"train:mask", "train:residual"} <= closure("eval:original") & closure("eval:lcr")


def test_every_evaluation_stage_passes_the_evaluation_cli_checks():
    """The quickstart's own flags must be accepted by the command they drive (a bad --mm_generations once failed
    the full run only after every model had trained)."""
    from src.eval.t2m_unlearn import parse

    for settings in (FULL, FAST):
        evals = [s for s in _plan(settings) if s.module == "src.eval.t2m_unlearn"]
        assert len(evals) == 6
        for stage in evals:
            parse(stage.argv)  # EvalConfig.check runs inside


def test_concept_reaches_every_stage_that_names_one():
    """--concept kick: the split, every unlearning run and every evaluation name kick, none violence; the data and
    the original models' stages are the same commands as violence's (so a second concept reuses them)."""
    base = {s.name: s for s in _plan()}
    kick = {s.name: s for s in plan(run="qs", settings=FULL, seed=0, gpu=["--gpu_id", "-1"], ckpt=ROOT / "ck",
                                    data=ROOT / "ds", results=ROOT / "res", attacks=True, concept="kick")}
    for s in kick.values():
        text = " ".join([*s.argv, *map(str, s.outputs)])
        assert "violence" not in text, s.name
    assert kick["split"].argv[:2] == ["synth", "kick"]
    assert any(str(p).endswith("train_val-w-kick.txt") for p in kick["split"].outputs)
    for name in ("unlearn:lcr", "unlearn:uce", "unlearn:rece", "unlearn:finetune", "unlearn:retrain"):
        argv = kick[name].argv
        assert argv[argv.index("--concept") + 1] == "kick" and argv[argv.index("--name") + 1].endswith("_kick")
    for name in ("eval:original", "eval:lcr", "eval:retrain", "eval:attacks"):
        argv = kick[name].argv
        assert argv[argv.index("--concept") + 1] == "kick", name
    for name in ("data", "train:vq", "train:mask", "train:residual", "train:evaluator", "train:classifier"):
        assert kick[name].argv == base[name].argv and kick[name].outputs == base[name].outputs, name


def test_concept_flag_default_run_name_and_unknown_concept():
    from src.config.command import parse_config
    from src.quickstart import PROG, QuickstartConfig

    def cfg(*argv):
        return parse_config(QuickstartConfig, list(argv), prog=PROG)

    assert cfg().concept == "violence" and cfg().results_name == "quickstart"
    assert cfg("--concept", "kick").results_name == "quickstart_kick"
    assert cfg("--concept", "kick", "--fast").results_name == "quickstart_fast_kick"
    assert cfg("--concept", "kick", "--run_name", "r").results_name == "r"
    with pytest.raises(HmuError, match="unknown concept 'kicking'.*known:.*kick"):
        cfg("--concept", "kicking")
