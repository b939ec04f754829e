import numpy as np
import pytest
import torch

from src.train.engine import TrainSpec, train

SPEC = TrainSpec(model_key="net", opt_key="opt_net")


class Boom(Exception):
    pass


def _run(run_dir, max_epoch, crash_at=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10], gamma=0.5)
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    y = x.sum(1, keepdim=True)

    def batches(epoch):
        order = np.random.default_rng(100 + epoch).permutation(64)
        for i in range(0, 64, 16):
            yield order[i:i + 16]

    def step(idx, it):
        if crash_at is not None and it == crash_at:
            raise Boom()
        return {"loss": torch.nn.functional.mse_loss(model(x[idx]), y[idx])}

    def validate():
        return {"mse": torch.nn.functional.mse_loss(model(x), y)}

    summary = train(model=model, optimizer=opt, scheduler=sched, spec=SPEC, run_dir=run_dir, batches=batches,
                    step=step, validate=validate, score_key="mse", max_epoch=max_epoch, seed=100, progress=False)
    return model, summary


def test_resume_after_crash_matches_uninterrupted(tmp_path):
    ref, _ = _run(tmp_path / "a", 5)
    with pytest.raises(Boom):
        _run(tmp_path / "b", 5, crash_at=9)  # mid epoch 3 (4 iterations per epoch)
    ckpt = torch.load(tmp_path / "b" / "model" / "latest.tar", weights_only=True)
    assert ckpt["ep"] == 2
    resumed, summary = _run(tmp_path / "b", 5)
    assert summary["epochs_run"] == 3
    for (k, a), (_, b) in zip(ref.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6, msg=k)


def test_best_and_latest_written_in_upstream_keys(tmp_path):
    _run(tmp_path / "c", 2)
    best = torch.load(tmp_path / "c" / "model" / "net_best_fid.tar", weights_only=True)
    latest = torch.load(tmp_path / "c" / "model" / "latest.tar", weights_only=True)
    assert {"net", "ep"} <= set(best)
    assert {"net", "opt_net", "scheduler", "ep", "total_it"} <= set(latest)
    assert (tmp_path / "c" / "train_log.jsonl").read_text().count("\n") >= 2


def _run_fid(run_dir, max_epoch, fids, *, eval_every_e, save_every_e=0):
    """The engine with a fake FID hook returning ``fids[epoch]``; -> (summary, epochs it was called at)."""
    from src.train.engine import Checkpointing

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    calls = []

    def fid_eval(epoch):
        calls.append(epoch)
        return {"fid": fids[epoch], "fid_n": 32}

    spec = TrainSpec(model_key="net", opt_key="opt_net", best_file="net_best_loss.tar")
    summary = train(model=model, optimizer=opt, scheduler=None, spec=spec, run_dir=run_dir,
                    batches=lambda e: [slice(0, 16), slice(16, 32)],
                    step=lambda idx, it: {"loss": model(x[idx]).pow(2).mean()},
                    validate=lambda: {"loss": model(x).pow(2).mean()}, score_key="loss", max_epoch=max_epoch,
                    seed=0, progress=False,
                    checkpointing=Checkpointing(fid_eval=fid_eval, eval_every_e=eval_every_e,
                                                save_every_e=save_every_e))
    return summary, calls


def test_fid_hook_every_eval_every_e_epochs_keeps_the_lowest(tmp_path):
    import json

    fids = {1: 9.0, 2: 4.0, 3: 1.0, 4: 3.0, 5: 2.0}
    summary, calls = _run_fid(tmp_path / "r", 5, fids, eval_every_e=2, save_every_e=2)
    assert calls == [2, 4, 5]                       # every 2 epochs, and after the last
    best = torch.load(tmp_path / "r/model/net_best_fid.tar", weights_only=True)
    assert best["ep"] == 5 and best["hmu_meta"]["selected_by"] == "fid" and best["hmu_meta"]["fid"] == 2.0
    assert summary["best_fid"] == 2.0               # epoch 3's 1.0 was never evaluated
    assert (tmp_path / "r/model/net_best_loss.tar").is_file()    # the validation choice stays beside it
    assert sorted(p.name for p in (tmp_path / "r/model").glob("E*.tar")) == ["E0002.tar", "E0004.tar"]
    logged = [json.loads(x) for x in (tmp_path / "r/train_log.jsonl").read_text().splitlines()]
    assert [r["eval_fid"] for r in logged if "eval_fid" in r] == [4.0, 3.0, 2.0]
    # resumed: the best FID so far is remembered, a worse one does not replace the file
    summary, calls = _run_fid(tmp_path / "r", 6, {6: 2.5}, eval_every_e=2)
    assert calls == [6] and summary["best_fid"] == 2.0
    assert torch.load(tmp_path / "r/model/net_best_fid.tar", weights_only=True)["ep"] == 5


def test_without_fid_hook_no_fid_file_and_no_periodic_copies(tmp_path):
    _run(tmp_path / "d", 2)
    assert not list((tmp_path / "d/model").glob("E*.tar"))
    assert "eval_fid" not in (tmp_path / "d/train_log.jsonl").read_text()


def test_prefetch_keeps_order_and_raises_the_producers_error():
    """--num_workers: batches prepared ahead in a background thread come in the same order; an error while
    preparing one is raised in the training loop, not lost."""
    from src.train.engine import prefetch

    assert list(prefetch(iter(range(50)), 3)) == list(range(50))
    assert list(prefetch(iter(range(5)), 0)) == list(range(5))

    def broken():
        yield 1
        raise ValueError("bad batch")

    it = prefetch(broken(), 2)
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad batch"):
        next(it)


def test_amp_is_off_on_cpu_and_checked():
    import contextlib

    from src.common.errors import HmuError
    from src.train.engine import autocast

    assert isinstance(autocast("cpu", "bf16"), contextlib.nullcontext)
    with pytest.raises(HmuError, match="--amp"):
        autocast("cpu", "fp8")
