"""Progress: a total and an ETA, plain lines (no \\r) off a terminal, nothing with --no_progress."""
import io

import numpy as np
import pytest
import torch

from src.common.progress import LineProgress, Sized, fmt_seconds, mode, progress


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_line_progress_total_and_eta_plain_lines():
    clock, out = FakeClock(), io.StringIO()
    bar = LineProgress(range(10), total=10, desc="epoch 1/2", unit="batch", every_s=5, stream=out, clock=clock)
    for i, _ in enumerate(bar):
        clock.t += 2.0  # 2 s per batch
        bar.set_postfix(loss=f"{i:.1f}")
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # a line every >= 5 s (at 6, 12, 18 s) and one at the end
    assert len(lines) == 4
    # after 3 batches (6 s): 7 left at 2 s each
    assert lines[0].startswith("epoch 1/2: 3/10 batch (30%) 6s elapsed, ETA 14s")
    assert lines[-1].startswith("epoch 1/2: 10/10 batch (100%) 20s elapsed, ETA 0s")
    assert lines[-1].endswith("loss=9.0")


def test_total_from_len_and_sized():
    out = io.StringIO()
    gen = (x for x in range(7))
    bar = progress(Sized(gen, 7), desc="x", stream=out)  # StringIO is no tty -> lines
    assert isinstance(bar, LineProgress) and bar.total == 7
    assert list(bar) == list(range(7))
    assert bar.line().startswith("x: 7/7 it (100%)")
    assert progress((x for x in range(3)), stream=io.StringIO()).total is None


def test_mode(monkeypatch):
    monkeypatch.delenv("HMU_PROGRESS", raising=False)
    assert mode(False) == "off"
    assert mode(True, io.StringIO()) == "lines"

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert mode(True, Tty()) == "bar"
    monkeypatch.setenv("HMU_PROGRESS", "lines")
    assert mode(True, Tty()) == "lines"


def test_disabled_prints_nothing():
    out = io.StringIO()
    bar = progress(range(5), desc="x", enabled=False, stream=out)
    bar.set_postfix(loss=1)
    assert list(bar) == list(range(5)) and out.getvalue() == ""


@pytest.mark.parametrize("s,txt", [(12, "12s"), (75, "1m15s"), (3725, "1h02m")])
def test_fmt_seconds(s, txt):
    assert fmt_seconds(s) == txt


def test_engine_bar_has_total(tmp_path, capsys, monkeypatch):
    """The training loop's bar counts against len(batches(epoch)) and writes whole lines to a non-terminal."""
    from src.train.engine import TrainSpec, train

    monkeypatch.setenv("HMU_PROGRESS", "lines")
    monkeypatch.setattr("src.common.progress.QUIET_S", 0.0)   # print the final line of even a short loop
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    x = torch.randn(32, 4)

    def batches(epoch):
        order = np.arange(32)
        return Sized((order[i:i + 8] for i in range(0, 32, 8)), 4)

    def step(idx, it):
        return {"loss": model(x[idx]).pow(2).mean()}

    train(model=model, optimizer=opt, scheduler=None, spec=TrainSpec(model_key="net", opt_key=None),
          run_dir=tmp_path, batches=batches, step=step, validate=None, score_key=None, max_epoch=1, seed=0)
    err = capsys.readouterr().err
    assert "epoch 1/1: 4/4 batch (100%)" in err and "ETA" in err and "\r" not in err


def test_short_loop_is_silent_in_logs():
    clock, out = FakeClock(), io.StringIO()
    for _ in LineProgress(range(3), total=3, desc="x", stream=out, clock=clock):
        clock.t += 1.0
    assert out.getvalue() == ""


def test_no_progress_flag_silences_everything_below(monkeypatch):
    from src.common.progress import ENV, apply_progress

    monkeypatch.delenv(ENV, raising=False)
    assert apply_progress(True) is True and ENV not in __import__("os").environ
    assert apply_progress(False) is False
    assert mode(True, io.StringIO()) == "off"


LONG_COMMANDS = ("src.gen", "src.quickstart", "src.report", "src.data.synth", "src.data.import_bvh", "src.viz.animate",
                 "src.eval.t2m_unlearn",
                 "src.eval.attack", "src.methods.lcr", "src.methods.uce", "src.methods.rece", "src.methods.finetune",
                 "src.methods.retrain", "src.train.vq", "src.train.mask", "src.train.residual", "src.train.length",
                 "src.train.evaluator", "src.train.classifier", "src.train.tmr", "src.train.bamm")


def test_every_long_command_takes_no_progress(cli):
    missing = [m for m in LONG_COMMANDS if "--no_progress" not in cli(m, "--help").stdout]
    assert not missing
