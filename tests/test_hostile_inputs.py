"""Hostile inputs (issue 16): files that try to run code, values that make NaN models, split files that lie, flags at
the edge of their range. Every case goes through a CLI in a subprocess, as a user would run it.

A case is ``(id, argv, kind, expected substring)``:

- ``error``: exit status 2, one ``error:`` line on stderr that names the problem (the file, flag or key), no traceback;
- ``warn``: exit status 0, a warning line on stderr that says what was changed, no traceback.

Placeholders in ``argv`` name places of a workspace built once per session (:func:`ws`). After every case: no marker
file exists (nothing ran code from a file) and no file written under the workspace holds a non-finite number.
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import fixtures_root, run_cli
from helpers_methods import MASK, RES, VQ, make_runs
from test_bad_inputs import _evaluator_run, error_line

MAX_SECONDS = 120


class Evil:
    """Unpickling this creates the file ``marker`` (a stand-in for any code a file could run)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant_checkpoint(good: Path, bad: Path, marker: Path) -> None:
    """``bad`` = the real checkpoint ``good`` plus one pickled object that runs code when unpickled."""
    import torch

    obj = torch.load(good, map_location="cpu", weights_only=True)
    obj["extra"] = Evil(marker)
    bad.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, bad)


def _copy_run(ck: Path, src: str, dst: str) -> Path:
    d = ck / "synth" / dst
    shutil.copytree(ck / "synth" / src, d)
    opt = d / "opt.txt"
    opt.write_text(opt.read_text().replace(f"name: {src}", f"name: {dst}"))
    return d


GEN = ["src.gen", "--name", MASK, "--res_name", RES, "--dataset_name", "synth", "--text_prompt", "a person kicks",
       "--motion_length", "40", "--checkpoints_dir", "{ck}", "--dataset_dir", "{ds}", "--out", "{out}",
       "--time_steps", "2"]
UCE = ["src.methods.uce", "--dataset_name", "synth", "--trans_name", MASK, "--res_name", RES, "--name", "{case}",
       "--checkpoints_dir", "{ck}", "--dataset_dir", "{ds}"]
RECE = ["src.methods.rece", *UCE[1:]]
T2M = ["src.eval.t2m_unlearn", "--dataset_dir", "{ds}", "--checkpoints_dir", "{ck}", "--results_dir", "{out}",
       "--name", MASK, "--res_name", RES, "--repeat_times", "1", "--no_mm", "--no_leakage", "--time_steps", "2"]
VQTRAIN = ["src.train.vq", "--dataset_dir", "{ds}", "--checkpoints_dir", "{ck}", "--no_progress"]
EVALTRAIN = ["src.train.evaluator", "--checkpoints_dir", "{out}", "--max_epoch", "1", "--no_progress"]


def sub(base: list[str], **replace: str) -> list[str]:
    """``base`` with flag values swapped: ``sub(GEN, name="x")`` sets ``--name x`` (appended when absent)."""
    out = list(base)
    for k, v in replace.items():
        flag = f"--{k}"
        if flag in out:
            out[out.index(flag) + 1] = v
        else:
            out += [flag, v]
    return out


CASES = [
    # --- no file may run code: every loader, through its CLI
    ("evil-gen-transformer", sub(GEN, name="mtrans_evil"), "error", "mtrans_evil/model/net_best_fid.tar"),
    ("evil-gen-vocabulary", sub(GEN, dataset_dir="{evil_vocab_idx}"), "error", "our_vab_idx.pkl"),
    ("evil-uce-transformer", sub(UCE, trans_name="mtrans_evil"), "error", "mtrans_evil/model/net_best_fid.tar"),
    ("evil-rece-residual", sub(RECE, res_name="rtrans_evil"), "error", "rtrans_evil/model/net_best_fid.tar"),
    ("evil-lcr-vq", ["src.methods.lcr", "--dataset_name", "synth", "--vq_name", "rvq_evil", "--name", "{case}",
                     "--checkpoints_dir", "{ck}", "--dataset_dir", "{ds}", "--no_progress"], "error",
     "rvq_evil/model/net_best_fid.tar"),
    ("evil-eval-evaluator", sub(T2M, checkpoints_dir="{ck_evil_eval}"), "error", "finest.tar"),
    ("evil-eval-vocabulary", sub(T2M, dataset_dir="{evil_vocab_words}"), "error", "our_vab_words.pkl"),
    ("evil-train-vocabulary", sub(EVALTRAIN, dataset_dir="{evil_vocab_words}"), "error", "our_vab_words.pkl"),
    ("evil-train-resume", sub(VQTRAIN, name="vq_evil_resume", is_continue=None), "error", "latest.tar"),
    ("evil-tmr-split", ["src.data.split", "synth", "violence", "--dataset_dir", "{ds_tmr}", "--tmr", "--tmr_name",
                        "tmr_evil", "--force", "@env:HMU_CHECKPOINTS={ck}"], "error", "motion_encoder.pt"),
    # --- numbers that make NaN models or nonsense: refused naming the flag, or a warning that says what changed
    ("uce-nan-erase-scale", sub(UCE, erase_scale="nan"), "error", "--erase_scale"),
    ("uce-inf-preserve-scale", sub(UCE, preserve_scale="inf"), "error", "--preserve_scale"),
    ("uce-negative-lamb", sub(UCE, lamb="-1e9"), "error", "--lamb"),
    ("rece-nan-reg", sub(RECE, reg="nan"), "error", "--reg"),
    ("gen-nan-cond-scale", sub(GEN, cond_scale="nan"), "error", "--cond_scale"),
    ("gen-zero-temperature", sub(GEN, temperature="0"), "error", "--temperature"),
    ("gen-zero-batch-size", sub(GEN, batch_size="0"), "error", "--batch_size"),
    ("gen-zero-time-steps", sub(GEN, time_steps="0"), "error", "--time_steps"),
    ("gen-topkr-above-one", sub(GEN, topkr="2"), "error", "--topkr"),
    ("gen-negative-length", sub(GEN, motion_length="-5"), "error", "--motion_length"),
    ("gen-huge-length", sub(GEN, motion_length="100000"), "warn", "above the model's maximum"),
    ("gen-one-frame", sub(GEN, motion_length="1"), "warn", "shorter than one token"),
    ("eval-zero-batch-size", sub(T2M, batch_size="0"), "error", "--batch_size"),
    ("eval-nan-cond-scale", sub(T2M, cond_scale="nan"), "error", "--cond_scale"),
    ("eval-zero-time-steps", sub(T2M, time_steps="0"), "error", "--time_steps"),
    ("train-nan-lr", sub(VQTRAIN, name="{case}", lr="nan", max_epoch="1"), "error", "--lr"),
    # --- no NaN model: statistics checked on load, training stops on a non-finite loss, nothing non-finite is saved
    ("train-tiny-std", sub(VQTRAIN, name="{case}", dataset_dir="{ds_tinystd}", max_epoch="1"), "error", "Std.npy"),
    ("train-nan-loss", sub(VQTRAIN, name="{case}", lr="1e30", max_epoch="2", batch_size="8"), "error",
     "training stopped: loss is"),
    ("gen-tiny-std-in-vq-run", sub(GEN, vq_name="rvq_tinystd"), "error", "rvq_tinystd/meta/std.npy"),
    ("eval-tiny-std-in-evaluator", sub(T2M, checkpoints_dir="{ck_tinystd}"), "error", "std.npy"),
    ("uce-nan-source-weights", sub(UCE, trans_name="mtrans_nanw"), "error", "holds NaN or inf"),
    # --- split files and captions: used once, warned about with counts, or refused naming the file
    ("split-repeated-ids", ["src.data.split", "synth", "violence", "--dataset_dir", "{ds_dup}", "--force"], "warn",
     "repeats 2 ids (5 lines for 3 ids)"),
    ("split-test-ids-in-train", ["src.data.split", "synth", "violence", "--dataset_dir", "{ds_dup}", "--force"],
     "warn", "2 ids of"),
    ("eval-segments-reversed-and-past-end", sub(T2M, dataset_dir="{ds_seg}"), "warn",
     "2 of 3 segment captions left out&&1 with #from#to reversed&&1 starting past the end"),
    ("eval-segment-cut-at-end", sub(T2M, dataset_dir="{ds_seg}"), "warn", "1 of 3 segment captions end past"),
    ("train-latin1-captions", sub(EVALTRAIN, dataset_dir="{ds_latin}"), "error", "is not UTF-8"),
    ("split-latin1-captions", ["src.data.split", "synth", "violence", "--dataset_dir", "{ds_latin}", "--force"],
     "error", "is not UTF-8"),
    ("eval-two-motion-set", sub(T2M, dataset_dir="{ds}"), "error", "needs at least 3"),
    # --- half-written state: the two runs of one edit carry one edit id
    ("gen-mismatched-edit-pair", sub(GEN, name="pair", res_name="pair_res"), "error", "different edit ids"),
    ("gen-matching-edit-pair", sub(GEN, name="pair_ok", res_name="pair_ok_res"), "ok", ""),
    ("gen-edited-mask-with-original-res", sub(GEN, name="pair_ok", res_name=RES), "ok", ""),
    # --- the evaluation: its cache beside the results (source runs stay read-only), --wandb checked first
    ("eval-wandb-missing", sub(T2M, wandb=None), "error", "--wandb needs the wandb package"),
    ("eval-custom-cache-dir", sub(T2M, dataset_dir="{ds_seg}", cache_dir="{out}/my_cache"), "ok", ""),
    # --- opt.txt keys
    ("opt-heads-do-not-divide", sub(GEN, name="mtrans_heads3"), "error", "n_heads"),
    ("opt-duplicate-key", sub(GEN, name="mtrans_dup"), "error", "appears twice"),
    ("opt-negative-max-length", sub(GEN, name="mtrans_neglen"), "error", "max_motion_length"),
    ("opt-nan-dropout", sub(UCE, trans_name="mtrans_nandrop"), "error", "dropout"),
    # --- issue 26: sizes and counts have upper bounds; a huge length is cut with a warning, never an overflow
    ("opt-latent-dim-1e8", sub(GEN, name="mtrans_huge"), "error", "latent_dim"),
    ("gen-repeat-times-1e9", sub(GEN, repeat_times="1000000000"), "error", "--repeat_times"),
    ("gen-length-1e23", sub(GEN, motion_length="100000000000000000000000"), "warn", "above the model's maximum"),
    # --- issue 26: prompt text is never markup (the video title rendered a malformed mathtext and crashed)
    ("gen-dollar-prompt-title", sub(GEN, text_prompt="a person kicks $\\frac{{$ and $x^2$"), "ok", ""),  # {{: format
    # --- issue 26: more pickles that run code, through the CLI (builtins eval / getattr, subprocess)
    ("evil-gen-vocabulary-eval", sub(GEN, dataset_dir="{evil_vocab_eval}"), "error", "our_vab_idx.pkl"),
    ("evil-gen-vocabulary-getattr", sub(GEN, dataset_dir="{evil_vocab_getattr}"), "error", "our_vab_idx.pkl"),
    ("evil-gen-vocabulary-popen", sub(GEN, dataset_dir="{evil_vocab_popen}"), "error", "our_vab_idx.pkl"),
    # --- issue 26: torchrun's environment checked first (these waited 30 minutes), wandb usage is the user's
    ("eval-world-size-2-single-process", [*T2M, "@env:WORLD_SIZE=2"], "error", "not started by torchrun"),
    ("eval-rank-above-world", [*T2M, "@env:WORLD_SIZE=2", "@env:RANK=2", "@env:TORCHELASTIC_RUN_ID=x",
                               "@env:MASTER_ADDR=127.0.0.1", "@env:MASTER_PORT=29999"], "error", "RANK=2"),
    ("eval-no-master-addr", [*T2M, "@env:WORLD_SIZE=2", "@env:RANK=0", "@env:TORCHELASTIC_RUN_ID=x",
                             "@env:MASTER_PORT=29999"], "error", "MASTER_ADDR is not set"),
    ("eval-lone-rank-times-out", [*T2M, "@env:WORLD_SIZE=2", "@env:RANK=1", "@env:HMU_DIST_MANUAL=1",
                                  "@env:MASTER_ADDR=127.0.0.1", "@env:MASTER_PORT=29998", "@env:HMU_DIST_TIMEOUT=3"],
     "error", "could not meet the other processes"),
    ("eval-wandb-online-without-key", [*sub(T2M, wandb=None), "@env:WANDB_MODE=online", "@env:WANDB_API_KEY=",
                                       "@env:NETRC={ds}/no-netrc"], "error", "no wandb credentials"),
    # --- issue 26: silent results made loud
    ("eval-negative-segment-start", sub(T2M, dataset_dir="{ds_neg}"), "error", "negative time"),
    ("eval-hmu-protocol-small-set", sub(T2M, dataset_dir="{ds_seg}", protocol="hmu"), "warn",
     "fewer than a batch of 32"),
    ("rece-mismatched-uce-pair", sub(RECE, trans_name="pair", res_name="pair_res"), "error", "different edit ids"),
    ("classifier-negative-noise", ["src.train.classifier", "--noise", "-1", "--dataset_dir", "{ds}",
                                   "--checkpoints_dir", "{out}"], "error", "--noise"),
]


# ---------------------------------------------------------------------------------------------------------- workspace

@pytest.fixture(scope="session")
def ws(tmp_path_factory) -> dict[str, str]:
    import torch

    from helpers_methods import tiny_split_dataset

    base = tmp_path_factory.mktemp("hostile")
    markers = base / "markers"
    markers.mkdir()
    ds = base / "ds"
    src = tiny_split_dataset(ds)
    test_ids = (src / "test.txt").read_text().split()
    w: dict[str, Path] = {"ds": ds, "markers": markers}

    ck = _evaluator_run(base / "ck")
    make_runs(ck, ds)
    w["ck"] = ck
    for src_name, dst in ((MASK, "mtrans_evil"), (RES, "rtrans_evil"), (VQ, "rvq_evil")):
        d = _copy_run(ck, src_name, dst)
        f = d / "model" / "net_best_fid.tar"
        _plant_checkpoint(f, f, markers / dst)
    # opt.txt files with a bad key
    for dst, edit in (("mtrans_heads3", lambda t: t.replace("n_heads: 2", "n_heads: 3")),
                      ("mtrans_dup", lambda t: t.replace("n_layers: 1\n", "n_layers: 1\nn_layers: 4\n")),
                      ("mtrans_neglen", lambda t: t.replace("max_motion_length: 196", "max_motion_length: -4")),
                      ("mtrans_nandrop", lambda t: t.replace("dropout: 0.2", "dropout: nan"))):
        d = _copy_run(ck, MASK, dst)
        before = (d / "opt.txt").read_text()
        (d / "opt.txt").write_text(edit(before))
        assert (d / "opt.txt").read_text() != before, dst
    d = _copy_run(ck, MASK, "mtrans_huge")  # issue 26: a size no machine holds
    t = (d / "opt.txt").read_text()
    (d / "opt.txt").write_text(t.replace("latent_dim: ", "latent_dim: 100000000\nold_latent_dim: ", 1))
    # split lists with repeated ids and test ids in train; segment captions reversed / past the end; latin-1 captions
    train_ids = (src / "train.txt").read_text().split()
    w["ds_dup"] = base / "ds_dup"
    shutil.copytree(ds, w["ds_dup"])
    three = test_ids[:3]
    assert len(three) == 3
    (w["ds_dup"] / "synth" / "test.txt").write_text("\n".join([*three, three[0], three[1]]) + "\n")
    (w["ds_dup"] / "synth" / "train.txt").write_text("\n".join([*train_ids, *three[:2]]) + "\n")
    w["ds_seg"] = base / "ds_seg"
    shutil.copytree(ds, w["ds_seg"])
    kw = w["ds_seg"] / "synth" / "kw_splits"
    (kw / "test-w-violence.txt").write_text("\n".join(train_ids[:8]) + "\n")  # enough motions for R-precision
    (kw / "test-wo-violence.txt").write_text("\n".join(train_ids[8:16]) + "\n")
    for mid, extra in ((train_ids[0], ["a person kicks#a/DET person/NOUN kick/VERB#3.0#1.0",
                                      "a person kicks#a/DET person/NOUN kick/VERB#500.0#510.0"]),
                       (train_ids[1], ["a person kicks#a/DET person/NOUN kick/VERB#0.5#900.0"])):
        f = w["ds_seg"] / "synth" / "texts" / f"{mid}.txt"
        f.write_text(f.read_text() + "\n".join(extra) + "\n")
    w["ds_neg"] = base / "ds_neg"  # issue 26: a segment caption with a negative start
    shutil.copytree(w["ds_seg"], w["ds_neg"])
    f = w["ds_neg"] / "synth" / "texts" / f"{train_ids[2]}.txt"
    f.write_text(f.read_text() + "a person kicks#a/DET person/NOUN kick/VERB#-1.0#2.0\n")
    w["ds_latin"] = base / "ds_latin"
    shutil.copytree(ds, w["ds_latin"])
    f = w["ds_latin"] / "synth" / "texts" / f"{train_ids[0]}.txt"
    f.write_bytes(f.read_bytes() + "a person does a pirouette with élan#a/DET person/NOUN#0.0#0.0\n".encode("latin-1"))
    # an edit pair whose _res run is left from the previous edit (what a kill between the two writes leaves)
    from src.methods.uce.__main__ import main as main_uce

    edit = ["--trans_name", MASK, "--res_name", RES, "--checkpoints_dir", str(ck), "--dataset_dir", str(ds)]
    assert main_uce(["--name", "pair", *edit]) == 0
    shutil.copytree(ck / "synth" / "pair_res", base / "pair_res_first")
    assert main_uce(["--name", "pair", "--force", "--erase_scale", "0.2", *edit]) == 0
    shutil.rmtree(ck / "synth" / "pair_res")
    shutil.move(base / "pair_res_first", ck / "synth" / "pair_res")
    assert main_uce(["--name", "pair_ok", *edit]) == 0
    # NaN/tiny statistics and weights
    w["ds_tinystd"] = base / "ds_tinystd"
    shutil.copytree(ds, w["ds_tinystd"])
    std = np.load(ds / "synth" / "Std.npy")
    std[7] = 1e-38
    np.save(w["ds_tinystd"] / "synth" / "Std.npy", std)
    d = _copy_run(ck, VQ, "rvq_tinystd")
    np.save(d / "meta" / "std.npy", std)
    w["ck_tinystd"] = base / "ck_tinystd"
    shutil.copytree(ck, w["ck_tinystd"])
    np.save(w["ck_tinystd"] / "synth" / "text_mot_match" / "meta" / "std.npy", np.full(263, 1e-38, np.float32))
    d = _copy_run(ck, MASK, "mtrans_nanw")
    f = d / "model" / "net_best_fid.tar"
    obj = torch.load(f, map_location="cpu", weights_only=True)
    key = next(k for k in obj["t2m_transformer"] if k.startswith("cond_emb.") and k.endswith("weight"))
    obj["t2m_transformer"][key][0, 0] = float("nan")
    torch.save(obj, f)
    # resume from a planted latest.tar
    d = _copy_run(ck, VQ, "vq_evil_resume")
    _plant_checkpoint(d / "model" / "net_best_fid.tar", d / "model" / "latest.tar", markers / "resume")
    # an evaluator checkpoint with a planted object
    w["ck_evil_eval"] = ck_e = base / "ck_evil_eval"
    shutil.copytree(ck, ck_e)
    f = ck_e / "synth" / "text_mot_match" / "model" / "finest.tar"
    _plant_checkpoint(f, f, markers / "evaluator")
    # a TMR run (upstream's tiny fixture) whose motion encoder carries a planted object
    tmr_fixture = fixtures_root() / "tmr" / "tiny" / "run_dir"
    if tmr_fixture.is_dir():
        d = ck / "synth" / "tmr_evil"
        shutil.copytree(tmr_fixture, d)
        f = d / "last_weights" / "motion_encoder.pt"
        _plant_checkpoint(f, f, markers / "tmr")
    w["ds_tmr"] = base / "ds_tmr"
    shutil.copytree(ds, w["ds_tmr"])
    # vocabularies whose pickles run code
    for key, fname in (("evil_vocab_idx", "our_vab_idx.pkl"), ("evil_vocab_words", "our_vab_words.pkl")):
        w[key] = base / key
        shutil.copytree(ds, w[key])
        with open(w[key] / "synth" / "glove" / fname, "wb") as fh:
            pickle.dump([Evil(markers / key)], fh)
    from test_io_guards import _getattr_payload, _payloads

    for key in ("evil_vocab_eval", "evil_vocab_getattr", "evil_vocab_popen"):  # issue 26: more than os.system
        w[key] = base / key
        shutil.copytree(ds, w[key])
        f = w[key] / "synth" / "glove" / "our_vab_idx.pkl"
        if key == "evil_vocab_getattr":
            f.write_bytes(_getattr_payload(markers / key))
        else:
            f.write_bytes(pickle.dumps({"a": [_payloads(markers / key)["eval" if key.endswith("eval")
                                                                       else "subprocess.Popen"]]}, protocol=2))
    w["outs"] = base / "outs"
    return {k: str(v) for k, v in w.items()}


def _argv(case_id: str, argv: list[str], ws: dict[str, str]) -> list[str]:
    """The case's command line with placeholders filled (``@env:`` items are left out: see :func:`_env`)."""
    table = dict(ws, out=str(Path(ws["outs"]) / case_id), case=case_id.replace("-", "_"))
    return [a.format_map(table) for a in argv if a is not None and not a.startswith("@env:")]


def _env(argv: list[str], ws: dict[str, str]) -> dict[str, str]:
    """Environment variables of a case, given in its argv as ``@env:NAME=value``."""
    pairs = [a[len("@env:"):].format_map(ws).split("=", 1) for a in argv if a and a.startswith("@env:")]
    return dict(pairs)


@pytest.fixture(scope="session")
def outcomes(request, ws) -> dict[str, tuple]:
    selected = {item.callspec.id for item in request.session.items
                if item.originalname == "test_hostile_input" and hasattr(item, "callspec")}
    todo = [c for c in CASES if c[0] in selected]

    def one(c):
        t0 = time.time()
        try:
            proc = run_cli(*_argv(c[0], c[1], ws), env=_env(c[1], ws), timeout=MAX_SECONDS * 3)
        except subprocess.TimeoutExpired:
            proc = None
        return proc, time.time() - t0

    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        return {c[0]: r for c, r in zip(todo, pool.map(one, todo))}


def warning_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "warning" in ln.lower()]


def test_case_table():
    assert len({c[0] for c in CASES}) == len(CASES), "case ids must be unique"
    assert {c[2] for c in CASES} <= {"error", "warn", "ok"}


@pytest.mark.slow  # each case is a subprocess that imports torch
@pytest.mark.parametrize("case_id, argv, kind, expect", [pytest.param(*c, id=c[0]) for c in CASES])
def test_hostile_input(case_id, argv, kind, expect, outcomes, ws):
    if case_id == "evil-tmr-split" and not (fixtures_root() / "tmr" / "tiny" / "run_dir").is_dir():
        pytest.skip("upstream TMR fixture not found (HMU_FIXTURES)")
    if case_id == "eval-wandb-missing":
        import importlib.util

        if importlib.util.find_spec("wandb") is not None:
            pytest.skip("wandb is installed (tests/test_wandb.py covers --wandb with it)")
    proc, seconds = outcomes[case_id]
    cmd = " ".join(["python", "-m", *_argv(case_id, argv, ws)])
    assert proc is not None, f"{cmd}: still running after {seconds:.0f} s"
    assert "Traceback" not in proc.stderr, f"{cmd}: traceback\n{proc.stderr[-3000:]}"
    assert not list(Path(ws["markers"]).iterdir()), f"{cmd}: a file ran code: {list(Path(ws['markers']).iterdir())}"
    if kind == "error":
        assert proc.returncode == 2, f"{cmd}: exit {proc.returncode}\n{proc.stdout[-800:]}\n{proc.stderr[-1500:]}"
        line = error_line(proc.stderr)
        assert line is not None, f"{cmd}: no 'error:' line on stderr\n{proc.stderr[-1500:]}"
        assert expect.lower() in line.lower(), f"{cmd}: error line does not name {expect!r}: {line}"
        assert "bug in hmu" not in line, f"{cmd}: bad input reported as a bug: {line}"
    elif kind == "ok":
        assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stderr[-1500:]}"
    else:
        assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stderr[-1500:]}"
        lines = warning_lines(proc.stderr)
        for needle in expect.split("&&"):
            assert any(needle.lower() in ln.lower() for ln in lines), f"{cmd}: no warning naming {needle!r}\n" + \
                "\n".join(lines or proc.stderr.splitlines()[-10:])


def test_no_non_finite_file_written(ws, outcomes):
    """Nothing any case wrote (checkpoints, arrays) holds NaN or inf."""
    import torch

    bad, seen = [], 0
    files = [*Path(ws["outs"]).rglob("*"), *(f for f in Path(ws["ck"]).rglob("*") if "_nanw" not in str(f))]
    for f in files:
        if f.suffix == ".npy":
            a = np.load(f, allow_pickle=False)
            seen += 1
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad.append(f)
        elif f.suffix in (".tar", ".pt"):
            try:
                obj = torch.load(f, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError:  # the planted files
                continue
            seen += 1
            if any(not torch.isfinite(t).all() for t in _tensors(obj)):
                bad.append(f)
    assert seen > 0
    assert not bad, bad


def _tensors(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point():
            yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def test_engine_keeps_the_last_good_checkpoint(tmp_path):
    """A loss that turns NaN in epoch 2 stops training with one HmuError; latest.tar still holds epoch 1's weights."""
    import torch

    from src.common.errors import HmuError
    from src.train.engine import TrainSpec, train

    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.ones(4, 3)

    def step(batch, it):
        loss = model(x).pow(2).mean()
        return {"loss": loss * float("nan") if it >= 2 else loss}

    with pytest.raises(HmuError, match="training stopped: loss is nan at epoch 2"):
        train(model=model, optimizer=opt, scheduler=None, spec=TrainSpec(model_key="m", opt_key=None),
              run_dir=tmp_path, batches=lambda ep: [0, 1], step=step, validate=None, score_key=None, max_epoch=3,
              seed=0, progress=False)
    ckpt = torch.load(tmp_path / "model" / "latest.tar", weights_only=True)
    assert ckpt["ep"] == 1
    assert all(torch.isfinite(t).all() for t in ckpt["m"].values())
    assert not (tmp_path / "model" / "net_best_fid.tar").exists()


# ------------------------------------------------------------------------------------------------ quickstart signals

def _live_descendants(pid: int) -> set[int]:
    """Pids of the living (not zombie) descendants of ``pid``, from /proc."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parent[int(d.name)] = int(fields[1])
    out, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parent.items() if p in frontier} - out
        out |= frontier
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _default_sigint() -> None:
    """A suite started in the background by a non-interactive shell (``cmd &``, as CI scripts do) inherits SIGINT
    ignored, and Python then installs no KeyboardInterrupt handler in the child: Ctrl-C is meant not to reach such
    jobs. The quickstart honours that, so the test gives its child the disposition of a foreground command."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_quickstart_signal_stops_every_stage(tmp_path, sig):
    """SIGTERM (timeout, SLURM, systemd) or SIGINT to the quickstart reaches each running stage's process group: the
    quickstart exits 128 + signal with one line, and no stage process (nor anything a stage started) survives."""
    import signal
    import sys

    from conftest import REPO

    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("HMU_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "src.quickstart", "--fast", "--dataset_dir", str(tmp_path / "d"),
                             "--checkpoints_dir", str(tmp_path / "c"), "--results_dir", str(tmp_path / "r")],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_sigint)
    try:
        stages: set[int] = set()
        deadline = time.time() + 120
        while time.time() < deadline and not stages:
            stages = _live_descendants(proc.pid)
            time.sleep(0.2)
        assert stages, "no stage started"
        time.sleep(1.5)  # let the stage import torch and start whatever it starts
        tree = _live_descendants(proc.pid)
        assert all(os.getpgid(p) != proc.pid for p in tree), "a stage shares the quickstart's process group"
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + getattr(signal, sig), (proc.returncode, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    assert f"stopped by {sig}" in err
    time.sleep(0.5)
    survivors = [p for p in tree if _alive(p)]
    assert not survivors, f"stage processes survived {sig}: {survivors}"


# ------------------------------------------------------------------------------------------ a run replaced, killed

_KILL_SWAP = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import torch
from src.methods.run_output import write_run
real = os.replace
def replace(src, dst, *a, **k):
    if ".partial." in Path(src).name and Path(dst).name == "victim":
        os.kill(os.getpid(), signal.SIGKILL)  # killed between 'dest -> old' and 'stage -> dest'
    return real(src, dst, *a, **k)
os.replace = replace
src = Path({src!r})
ckpt = torch.load(src / "model" / "net_best_fid.tar", weights_only=True)
write_run(Path({dest!r}), source_run=src, out_name="victim", checkpoints={{"net_best_fid.tar": ckpt}},
          extra_files={{"which.txt": lambda p: p.write_text("new")}}, force=True)
"""


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory, synth_root):
    from helpers_methods import make_dataset

    base = tmp_path_factory.mktemp("swap")
    data = make_dataset(synth_root, base / "dataset")
    return data, make_runs(base / "ck", data)


@pytest.mark.slow
@pytest.mark.parametrize("stage_complete", [True, False], ids=["new-run-complete", "new-run-incomplete"])
def test_run_replacement_killed_between_renames_leaves_a_run(small_runs, stage_complete, tmp_path):
    """SIGKILL between the two renames of ``write_run --force`` leaves no run folder; the next command that looks
    for the run finds the new one (staged completely) or the old one (otherwise), and no leftover stays."""
    import signal
    import sys

    import torch

    from conftest import REPO
    from src.common.io import COMPLETE_MARK
    from src.methods.run_output import write_run

    data, ck = small_runs
    src = ck / "synth" / MASK
    dest = ck / "synth" / "victim"
    if dest.exists():
        shutil.rmtree(dest)
    ckpt = torch.load(src / "model" / "net_best_fid.tar", weights_only=True)
    write_run(dest, source_run=src, out_name="victim", checkpoints={"net_best_fid.tar": ckpt},
              extra_files={"which.txt": lambda p: p.write_text("old")})
    script = tmp_path / "kill_swap.py"
    script.write_text(_KILL_SWAP.format(repo=str(REPO), src=str(src), dest=str(dest)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not dest.exists(), "the crash did not happen between the renames"
    leftovers = list(dest.parent.glob(".victim.*"))
    assert {p.name.split(".")[2] for p in leftovers} == {"old", "partial"}
    if not stage_complete:  # as if killed before the staged run was finished
        for p in leftovers:
            (p / COMPLETE_MARK).unlink(missing_ok=True)
    out = run_cli("src.gen", "--name", "victim", "--res_name", RES, "--dataset_name", "synth", "--text_prompt",
                  "a person walks", "--motion_length", "40", "--checkpoints_dir", str(ck), "--dataset_dir", str(data),
                  "--out", str(tmp_path / "gen"), "--time_steps", "2", timeout=MAX_SECONDS * 3)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert (dest / "which.txt").read_text() == ("new" if stage_complete else "old")
    assert not list(dest.parent.glob(".victim.*")), "leftovers were not cleaned"
    assert not (dest / COMPLETE_MARK).exists()
    assert any("interrupted" in ln for ln in warning_lines(out.stderr)), out.stderr[-1500:]


@pytest.mark.slow
def test_report_swap_killed_between_renames_is_recovered(tmp_path):
    """The report's folder swap, killed between its renames: the next ``python -m src.report`` puts the old report
    back (and then refuses to overwrite it without --force, naming it)."""
    from test_report import write_run as write_results

    run = write_results(tmp_path)
    first = run_cli("src.report", str(run), "--no_video", timeout=MAX_SECONDS * 3)
    assert first.returncode == 0, first.stderr[-2000:]
    report = run / "report"
    old_md = (report / "report.md").read_bytes()
    dead = subprocess.Popen(["true"])
    dead.wait()
    os.replace(report, run / f".report.old.{dead.pid}")  # the state a kill after the first rename leaves
    (run / f".report.partial.{dead.pid}.x").mkdir()
    again = run_cli("src.report", str(run), "--no_video", timeout=MAX_SECONDS * 3)
    assert (report / "report.md").read_bytes() == old_md
    assert not [p for p in run.iterdir() if p.name.startswith(".report.")]
    assert again.returncode == 2 and "already exists" in (error_line(again.stderr) or ""), again.stderr[-1500:]


def test_evaluation_cache_is_beside_the_results_not_in_the_evaluator_run(ws, outcomes):
    """The evaluation's cache goes to ``<results_dir>/.cache/eval`` (or ``--cache_dir``), never into the evaluator's
    checkpoint run, so checkpoints can be read-only."""
    if not {"eval-segment-cut-at-end", "eval-custom-cache-dir"} <= set(outcomes):
        pytest.skip("the evaluation cases were not selected in this run")
    assert outcomes["eval-segment-cut-at-end"][0].returncode == 0
    out = Path(ws["outs"])
    assert list((out / "eval-segment-cut-at-end" / ".cache" / "eval").glob("*.npz"))
    assert list((out / "eval-custom-cache-dir" / "my_cache").glob("*.npz"))
    assert not list((out / "eval-custom-cache-dir").glob(".cache"))
    assert not list(Path(ws["ck"]).rglob("eval_cache")), "the evaluation wrote into a checkpoint run"


def test_wandb_is_checked_before_any_work(outcomes):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed")
    if "eval-wandb-missing" not in outcomes:
        pytest.skip("the case was not selected in this run")
    proc, seconds = outcomes["eval-wandb-missing"]
    assert "loaded evaluator" not in proc.stderr and "evaluating" not in proc.stderr, proc.stderr[-1500:]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "crc", "zeros"])
def test_damaged_evaluation_cache_is_rebuilt_through_the_cli(ws, outcomes, how):
    """Issue 26: a truncated, CRC-damaged or zeroed evaluation cache file is rebuilt with one warning naming it, not
    reported as a bug in hmu, and the metrics equal those of the run that wrote it."""
    import json

    from test_caches import corrupt

    case = "eval-custom-cache-dir"
    if case not in outcomes:
        pytest.skip("the case was not selected in this run")
    argv = next(c[1] for c in CASES if c[0] == case)
    cache = Path(ws["outs"]) / case / "my_cache"
    files = sorted(cache.glob("*.npz"))
    assert files
    first = json.loads(next((Path(ws["outs"]) / case).rglob("metrics.json")).read_text())
    for f in files:
        corrupt(f, how, "text_emb")
    out = Path(ws["outs"]) / f"{case}-{how}"
    args = [a.replace("{out}", str(out)) if a and a.startswith("{out}") else a for a in argv]
    args = sub(args, cache_dir=str(cache))
    proc = run_cli(*_argv(case, args, ws), timeout=MAX_SECONDS * 3)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "bug in hmu" not in proc.stderr and "Traceback" not in proc.stderr
    for f in files:
        assert any(str(f) in ln for ln in warning_lines(proc.stderr)), proc.stderr[-2000:]
    again = json.loads(next(out.rglob("metrics.json")).read_text())
    for s, block in first["sets"].items():
        for m, v in block["metrics"].items():
            a, b = v.get("mean"), again["sets"][s]["metrics"][m].get("mean")
            assert (a is None and b is None) or a == pytest.approx(b, rel=1e-6, nan_ok=True), (s, m)
