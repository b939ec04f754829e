"""The paper's README (upstream Mamiglia/hmu), run as written.

The README is read from ``HMU_SEEDS`` (default ``../shared/seeds``: the text file that starts with the paper's title).
Every command of its ```bash blocks, and every inline ``bash ...``/``python ...`` command of its lists, is mapped to
synth with one small table (dataset and run names only, :data:`DATASETS`, :data:`RUNS`, :data:`CKPTS`) and run on
tiny models, in README order, in a project folder of its own (dataset/, checkpoints/, results/, generation/ and a copy
of assets/, pointed to by HMU_DATASET, HMU_CHECKPOINTS, HMU_RESULTS and HMU_GENERATION). Each command

- exits 0 and leaves its documented output in place (:data:`EXPECT`), or
- fails with a one-line error naming the file the real run needs, for files synth cannot stand in for: the released
  HumanML3D checkpoints and upstream's download archives (:data:`MISSING`), or
- is one hmu cannot honour, listed with the reason in :data:`NOT_HONOURED` (and in README.md).

Python commands run from the project folder (so the README's relative paths, ``dataset/...`` and ``assets/...``,
land there), bash and pip commands from the repository (the wrappers move there themselves); ``cd`` holds until the
next heading (the training steps are three blocks of one section), as in a reader's shell. Environment only, never a
flag: downloads read archives from an empty folder
(HMU_DOWNLOAD_FROM) instead of the network, pip runs offline as a dry run (PIP_NO_INDEX, PIP_DRY_RUN), wandb is
disabled. The one change to flags is :data:`SHORTER`: the training block's epochs, appended (argparse keeps the last
value), so that training from scratch takes seconds here instead of hours.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TITLE = "# Human Motion Unlearning (HMU)"

# --------------------------------------------------------------------------------------------------- the table
DATASETS = {"HumanML3D": "synth"}  # substring of every token (paths such as dataset/HumanML3D/..., file names)
# upstream's prepare script links the released runs as rvq / mtrans / rtrans; here they are hmu's default run names
# for synth (the commands that name no run use those defaults)
try:
    from src.common.run_names import default_run_name

    VQ, TRANS, RES = (default_run_name("synth", k) for k in ("vq", "mask", "res"))
except ImportError:  # before the run-name table: every dataset defaults to the released names
    VQ, TRANS, RES = ("rvq_nq6_dc512_nc512_noshare_qdp0.2", "t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns",
                      "tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2")
RUNS = {"rvq": VQ, "mtrans": TRANS, "rtrans": RES}  # whole tokens
CKPTS = {"model.tar": "base.tar"}  # the README's placeholder for "the checkpoint being evaluated"

# Flags appended for time only (argparse keeps the last value): training from scratch, seconds instead of hours.
SHORTER = {"train_vq.py": ["--max_epoch", "1", "--epoch_size", "256"],
           "train_t2m_transformer.py": ["--max_epoch", "1"],
           "train_res_transformer.py": ["--max_epoch", "1"]}

NOT_HONOURED = {
    "git clone": "cloning is the user's own step and needs the network; hmu has no submodules (MoMask and TMR are "
                 "reimplemented in src/models/)",
    "cd hmu": "part of the clone step",
    "conda create": "hmu installs into a virtual environment (scripts/_venv.sh, Python >= 3.10), not conda",
    "conda activate": "hmu installs into a virtual environment (scripts/_venv.sh); the scripts activate nothing",
}

N_MOTIONS = 200
GEN_RUN, QUAL_RUN = "my_generation", "qualitative"


def seeds_root() -> Path:
    return Path(os.environ.get("HMU_SEEDS", REPO.parent / "shared" / "seeds")).resolve()


def upstream_readme() -> str:
    root = seeds_root()
    for p in sorted(root.glob("*.txt")) if root.is_dir() else []:
        text = p.read_text(encoding="utf-8", errors="replace")
        if text.lstrip().startswith(TITLE):
            return text
    pytest.skip(f"upstream README not found in {root} (set HMU_SEEDS)")


# --------------------------------------------------------------------------------------------------- parsing

@dataclass
class Command:
    section: int                # markdown section: a `cd` holds until the next heading, as a reader's shell would
    tokens: list[str]
    readme: str = ""            # the command as the README writes it
    mapped: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return shlex.join(self.mapped)


def readme_commands(text: str) -> list[Command]:
    """Commands of the ```bash blocks (continuations joined, comments dropped) and inline `bash|python ...` spans."""
    blocks: list[tuple[int, list[str]]] = []  # (markdown section, lines)
    buf: list[str] | None = None
    section = 0
    for line in text.splitlines():
        s = line.strip()
        if buf is None:
            if s.startswith("#"):
                section += 1
            elif s.startswith("```bash"):
                buf = []
            else:
                blocks.extend([(section, [m]) for m in re.findall(r"`((?:bash|python) [^`]+)`", line)])
            continue
        if s == "```":
            blocks.append((section, buf))
            buf = None
        else:
            buf.append(line)
    out = []
    for section, lines in blocks:
        for line in "\n".join(lines).replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                out.append(Command(section, tokens, readme=" ".join(line.split())))
    for c in out:
        c.mapped = map_tokens(c.tokens)
    return out


def map_tokens(tokens: list[str]) -> list[str]:
    out = []
    for t in tokens:
        for a, b in DATASETS.items():
            t = t.replace(a, b)
        out.append(RUNS.get(t, CKPTS.get(t, t)))
    for script, extra in SHORTER.items():
        if script in out:
            out += extra
    return out


def not_honoured(cmd: Command) -> str | None:
    return next((why for k, why in NOT_HONOURED.items() if cmd.readme.startswith(k)), None)


# --------------------------------------------------------------------------------------------------- expectations

def _metrics(proj: Path, run: str) -> dict:
    p = proj / "results" / run / "metrics.json"
    assert p.is_file(), f"{p} not written"
    return json.loads(p.read_text())


def _run_folder(proj: Path, name: str) -> Path:
    return proj / "checkpoints" / "synth" / name


def _check_split(proj, r, suffix=""):
    ks = proj / "dataset" / "synth" / "kw_splits"
    for part in ("w", "wo"):
        assert (ks / f"train_val-{part}-violence{suffix}.txt").is_file()
    assert (ks / f"train_val-w-violence{suffix}.txt").read_text().strip(), "empty forget set"


def _check_lcr_sh(proj, r):
    assert (_run_folder(proj, "lcr16_synth_violence") / "model" / "net_best_fid.tar").is_file()
    rec = _metrics(proj, "synth_lcr_violence_s0")
    assert rec["model"]["vq_name"] == "lcr16_synth_violence" and {"forget", "retain"} <= set(rec["sets"])


def _check_eval_sh(proj, r):
    rec = _metrics(proj, "LCR16_synth_violence")
    assert rec["model"]["vq_name"] == "lcr16_synth_violence", rec["model"]
    assert rec["model"]["method"] == "LCR" and {"forget", "retain"} <= set(rec["sets"])
    assert "edited VQ" in r.stdout
    idx = json.loads((proj / "generation" / "LCR16_synth_violence" / "prompts.json").read_text())
    assert idx["vq_name"] == "lcr16_synth_violence" and all("video" in it for it in idx["items"])


def _check_training(proj, r, run):
    d = proj / "train_checkpoints" / "synth" / run / "model"
    assert (d / "latest.tar").is_file() and (d / "net_best_fid.tar").is_file(), sorted(d.glob("*"))


def _check_lcr_manual(proj, r):
    assert (_run_folder(proj, "lcr16_violence") / "model" / "net_best_fid.tar").is_file()
    csv = proj / "assets" / "synth_codes.csv"
    assert csv.is_file() and csv.read_text().splitlines()[0].startswith("name,")


def _check_rece_uce_sh(proj, r):
    for m in ("uce", "rece"):
        assert (_run_folder(proj, f"{m}_violence") / "model" / "net_best_fid.tar").is_file()
        assert _metrics(proj, f"synth_{m}_violence_s0")["model"]["name"] == f"{m}_violence"


def _check_rece_manual(proj, r):
    import torch

    for name, key in (("RECE1_1.0", "t2m_transformer"), ("RECE1_1.0_res", "res_transformer")):
        ck = torch.load(_run_folder(proj, name) / "model" / "net_best_fid.tar", map_location="cpu", weights_only=True)
        assert ck["hmu_meta"]["method"] == "rece" and key in ck
    # the sources are read only
    assert _hash(_run_folder(proj, TRANS) / "model" / "latest.tar") == proj.joinpath("trans.sha").read_text()


def _check_eval_manual(proj, r, split, toxic):
    rec = _metrics(proj, f"synth_original_kw_splits-{split}_s0")
    (set_name, res), = rec["sets"].items()
    assert set_name == split and rec["config"]["repeat_times"] == 10, (set_name, rec["config"])
    assert ("MM_Safe" in res["metrics"]) == toxic, sorted(res["metrics"])


def _check_gen_batch(proj, r):
    rec = json.loads((proj / "generation" / GEN_RUN / "records.json").read_text())
    assert rec["split"] == "test" and rec["ckpt"] == "base.tar"
    test_ids = (proj / "dataset" / "synth" / "test.txt").read_text().split()
    reps = {x["repeat"] for x in rec["records"]}
    assert reps == set(range(10)) and {x["name"] for x in rec["records"]} <= set(test_ids)
    for x in rec["records"][:5]:
        assert (proj / "generation" / GEN_RUN / x["feats_path"]).is_file() and x["video_path"] is None


def _check_gen_t2m(proj, r):
    out = proj / "generation" / QUAL_RUN
    idx = json.loads((out / "prompts.json").read_text())
    n_prompts = len([x for x in (proj / "assets" / "qualitatives_synth.txt").read_text().splitlines() if x.strip()])
    assert len(idx["items"]) == 3 * n_prompts
    for it in idx["items"]:
        assert (out / it["joints"]).is_file() and (out / it["video"]).is_file()


@dataclass
class Expect:
    prefix: str        # start of the mapped command
    check: object      # callable(project, CompletedProcess) for exit 0; None for a MISSING error
    missing: str = ""  # for an expected one-line error: a regex the line must match (the file the real run needs)


EXPECT = [
    Expect("pip install -r src/momask_codes/requirements.txt", lambda p, r: None),
    Expect("pip install -r src/TMR/requirements.txt", lambda p, r: None),
    Expect("bash scripts/utils/split_dataset.sh --main_split train_val --split_name violence --dataset synth --tmr",
           lambda p, r: _check_split(p, r, "-tmr")),
    Expect("bash scripts/utils/split_dataset.sh --main_split train_val --split_name violence --dataset synth",
           _check_split),
    Expect("bash scripts/eval/lcr.sh violence synth", _check_lcr_sh),
    Expect("bash scripts/eval/t2m_unlearn.sh --dataset synth --split_name violence --ckpt lcr16_synth_violence.tar",
           _check_eval_sh),
    Expect("python train_vq.py", lambda p, r: _check_training(p, r, VQ)),
    Expect("python train_t2m_transformer.py", lambda p, r: _check_training(p, r, TRANS)),
    Expect("python train_res_transformer.py", lambda p, r: _check_training(p, r, RES)),
    Expect("cd src/momask_codes", lambda p, r: None),
    Expect("bash scripts/train/fintetune_t2m.sh", None, missing=r"(HumanML3D|/t2m/)"),
    Expect("python -m src.methods.lcr", _check_lcr_manual),
    Expect("bash scripts/eval/rece_uce.sh violence synth", _check_rece_uce_sh),
    Expect("python -m src.methods.rece", _check_rece_manual),
    Expect("python -m src.eval.t2m_unlearn --dataset_name synth --name {} --res_name {} --vq_name {} --ckpt base.tar "
           "--split kw_splits/test-wo-violence".format(TRANS, RES, VQ),
           lambda p, r: _check_eval_manual(p, r, "test-wo-violence", toxic=False)),
    Expect("python -m src.eval.t2m_unlearn --dataset_name synth --name {} --res_name {} --vq_name {} --ckpt base.tar "
           "--split kw_splits/test-w-violence".format(TRANS, RES, VQ),
           lambda p, r: _check_eval_manual(p, r, "test-w-violence", toxic=True)),
    Expect("python -m src.methods.gen_t2m_batch", _check_gen_batch),
    Expect("python -m src.momask_codes.gen_t2m", _check_gen_t2m),
    Expect("export ", lambda p, r: None),
    Expect("bash src/momask_codes/prepare/download_models.sh", None, missing=r"humanml3d_models\.zip"),
    Expect("bash src/momask_codes/prepare/download_glove.sh", None, missing=r"glove\.zip"),
    Expect("bash src/momask_codes/prepare/download_evaluator.sh", None, missing=r"humanml3d_evaluator\.zip"),
]
MISSING = [e.prefix for e in EXPECT if e.check is None]


def expectation(cmd: Command) -> Expect | None:
    return next((e for e in EXPECT if cmd.text.startswith(e.prefix)), None)


def test_every_readme_command_is_run_or_listed():
    """Fast: the README parses into the commands this test knows; none is left without a verdict."""
    cmds = readme_commands(upstream_readme())
    assert len(cmds) >= 25
    orphans = [c.readme for c in cmds if not_honoured(c) is None and expectation(c) is None]
    assert not orphans, f"README commands without an expectation: {orphans}"
    ran = {c.text for c in cmds if expectation(c)}
    for key in ("src.methods.lcr", "src.methods.rece", "src.eval.t2m_unlearn", "gen_t2m_batch", "lcr.sh",
                "rece_uce.sh", "split_dataset.sh", "train_vq.py", "download_models.sh"):
        assert any(key in t for t in ran), key
    # the mapping touches dataset and run names only
    for c in cmds:
        if not any(s in c.readme for s in SHORTER):
            assert len(c.mapped) == len(c.tokens)
            assert all(a == b or b in (*DATASETS.values(), *RUNS.values(), *CKPTS.values()) or
                       a.replace("HumanML3D", "synth") == b for a, b in zip(c.tokens, c.mapped))


# --------------------------------------------------------------------------------------------------- the run

def _hash(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt", "requirements-text.txt")  # as scripts/_venv.sh


def _venv_ready() -> bool:
    """The bash wrappers source scripts/_venv.sh: the running interpreter's venv must carry its stamp (the hash of
    the requirement files, computed as _venv.sh does)."""
    stamp = Path(sys.prefix) / ".hmu-req"
    want = hashlib.sha256(b"".join((REPO / f).read_bytes() for f in REQUIREMENT_FILES))
    return stamp.is_file() and stamp.read_text().strip() == want.hexdigest()[:16]


def test_venv_stamp_is_computed_like_venv_sh():
    """_venv.sh hashes exactly these files; if it changes, _venv_ready() must follow (else the test below skips)."""
    text = (REPO / "scripts" / "_venv.sh").read_text()
    hashed = text[text.index('_req_hash="$(cat'):text.index("| sha256sum")]
    assert re.findall(r"requirements[\w-]*\.txt", hashed) == list(REQUIREMENT_FILES)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return build_project(tmp_path_factory.mktemp("upstream_readme"))


def build_project(proj: Path) -> Path:
    """dataset/synth (keyword splits of train, val and test), a tiny MoMask under the released run names (VQ trained
    one short epoch, random transformers), a briefly trained evaluator, action classifier, length estimator and TMR;
    a copy of assets/."""
    from src.data.split import main as split_main
    from src.data.synth import generate_synth
    from src.train import classifier, evaluator, length, tmr, vq
    from tests.helpers_methods import make_runs

    data, ck = proj / "dataset", proj / "checkpoints"
    generate_synth(data / "synth", n=N_MOTIONS, seed=0, workers=1, violent_rate=0.4)
    assert split_main(["synth", "violence", "--dataset_dir", str(data), "--main_split", "train", "--main_split",
                       "val", "--main_split", "test"]) == 0
    loc = ["--dataset_name", "synth", "--checkpoints_dir", str(ck), "--dataset_dir", str(data), "--no_progress"]
    # one short epoch: LCR needs codes that forget and retain motions use differently (a random VQ has none)
    assert vq.main(["--name", VQ, *loc, "--max_epoch", "1", "--epoch_size", "512"]) == 0
    # the quickstart's text side (MiniLM, 384-d), which the length estimator below is trained on too
    make_runs(ck, data, vq_name=VQ, mask_name=TRANS, res_name=RES, existing_vq=True, text_encoder="minilm",
              clip_dim=384)
    for name in (TRANS, RES):  # the trainers write both files; upstream's base.tar links the masked one to latest.tar
        shutil.copy(ck / "synth" / name / "model" / "net_best_fid.tar", ck / "synth" / name / "model" / "latest.tar")
    assert evaluator.main([*loc, "--max_epoch", "1", "--dim_text_hidden", "16", "--dim_coemb_hidden", "16",
                           "--dim_motion_hidden", "16", "--dim_movement_enc_hidden", "16",
                           "--dim_movement_latent", "16"]) == 0
    assert classifier.main([*loc, "--max_epoch", "1", "--hidden", "16"]) == 0
    assert length.main(["--name", "length_estimator", *loc, "--max_epoch", "1"]) == 0
    assert tmr.main([*loc, "--name", "tmr", "--latent_dim", "16", "--num_layers", "1", "--batch_size", "4",
                     "--max_epoch", "1", "--max_steps", "2", "--max_train_frames", "48"]) == 0
    shutil.copytree(REPO / "assets", proj / "assets")
    (proj / "trans.sha").write_text(_hash(ck / "synth" / TRANS / "model" / "latest.tar"))
    for d in ("results", "generation", "downloads", "train_checkpoints"):
        (proj / d).mkdir()
    return proj


def _env(proj: Path, checkpoints: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), HMU_CHECKPOINTS=str(checkpoints), HMU_DATASET=str(proj / "dataset"),
               HMU_RESULTS=str(proj / "results"), HMU_GENERATION=str(proj / "generation"),
               HMU_DOWNLOAD_FROM=str(proj / "downloads"), HMU_VENV=sys.prefix, WANDB_MODE="disabled",
               PIP_NO_INDEX="1", PIP_DRY_RUN="1", PIP_DISABLE_PIP_VERSION_CHECK="1", MPLBACKEND="Agg",
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("HMU_DEBUG", None)
    return env


def _argv(tokens: list[str]) -> list[str]:
    prog, *rest = tokens
    if prog == "python":
        return [sys.executable, *rest]
    if prog == "pip":
        return [sys.executable, "-m", "pip", *rest]
    if prog == "export":
        return ["bash", "-c", shlex.join(tokens)]
    return tokens


@pytest.mark.slow
def test_readme_commands_run_as_written(project):
    if not _venv_ready():
        why = "the bash wrappers need the venv made by scripts/_venv.sh (run through bash scripts/test.sh)"
        if os.environ.get("HMU_TEST_SH"):
            pytest.fail(f"run by scripts/test.sh, yet the venv stamp does not match: {why}")
        pytest.skip(why)
    cmds = readme_commands(upstream_readme())
    seen: dict[str, int] = {}
    rows, failures = [], []
    cwd, section = REPO, -1
    for i, cmd in enumerate(cmds):
        if cmd.section != section:
            cwd, section = REPO, cmd.section
        why = not_honoured(cmd)
        if why:
            rows.append((cmd.readme, f"not honoured: {why}"))
            continue
        if cmd.text in seen:
            rows.append((cmd.readme, f"same command as #{seen[cmd.text]} (run once)"))
            continue
        seen[cmd.text] = i
        exp = expectation(cmd)
        if cmd.mapped[0] == "cd":
            cwd = (cwd / cmd.mapped[1]).resolve()
            ok = cwd.is_dir()
            rows.append((cmd.readme, "exit 0" if ok else "no such folder"))
            if not ok:
                failures.append(f"{cmd.readme}: no folder {cwd}")
            continue
        training = cwd != REPO
        env = _env(project, project / ("train_checkpoints" if training else "checkpoints"))
        run_cwd = project if cmd.mapped[0] == "python" and not training else cwd
        t0 = time.perf_counter()
        r = subprocess.run(_argv(cmd.mapped), cwd=run_cwd, env=env, capture_output=True, text=True, timeout=900,
                           check=False)
        secs = time.perf_counter() - t0
        err = r.stderr.strip().splitlines()
        if exp.check is None:
            line = err[-1] if err else ""
            good = (r.returncode != 0 and line.startswith("error:") and re.search(exp.missing, line) is not None
                    and sum(ln.startswith("error:") for ln in err) == 1)
            rows.append((cmd.readme, f"one-line error ({secs:.0f} s): {line}"))
            if not good:
                failures.append(f"{cmd.text}: expected one line naming {exp.missing!r}, got exit {r.returncode}:\n"
                                f"{r.stdout[-1500:]}\n{r.stderr[-2500:]}")
            continue
        if r.returncode != 0:
            rows.append((cmd.readme, f"exit {r.returncode} ({secs:.0f} s)"))
            failures.append(f"{cmd.text}: exit {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-2500:]}")
            continue
        try:
            exp.check(project, r)
            rows.append((cmd.readme, f"exit 0, output checked ({secs:.0f} s)"))
        except AssertionError as exc:
            rows.append((cmd.readme, f"exit 0, output wrong: {exc}"))
            failures.append(f"{cmd.text}: exit 0 but {exc}\n{r.stdout[-1500:]}")
    print("\n".join(f"{res:<60} | {cmd}" for cmd, res in rows))
    assert not failures, "\n\n".join(failures)


# --------------------------------------------------------------------------------------------------- pieces, fast

def test_base_tar_is_upstreams_link_and_nothing_else(tmp_path):
    """``--ckpt base.tar``: the run's own base.tar, else the file upstream's prepare.sh links it to (VQ and residual:
    net_best_fid.tar, masked transformer: latest.tar); with neither, one error naming both, never another file."""
    from src.common.errors import HmuError
    from src.models.checkpoint import checkpoint_file

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    with pytest.raises(HmuError, match=r"base\.tar not found, nor .*latest\.tar"):
        checkpoint_file(run, "base.tar", "mask")
    (run / "model" / "net_best_fid.tar").write_bytes(b"x")
    assert checkpoint_file(run, "base.tar", "vq") == run / "model" / "net_best_fid.tar"
    assert checkpoint_file(run, "base.tar", "res") == run / "model" / "net_best_fid.tar"
    with pytest.raises(HmuError, match="latest.tar"):  # the masked transformer's base is latest.tar, not net_best_fid
        checkpoint_file(run, "base.tar", "mask")
    (run / "model" / "latest.tar").write_bytes(b"y")
    assert checkpoint_file(run, "base.tar", "mask") == run / "model" / "latest.tar"
    (run / "model" / "base.tar").write_bytes(b"z")
    assert checkpoint_file(run, "base.tar", "mask") == run / "model" / "base.tar"
    assert checkpoint_file(run, "other.tar", "vq") == run / "model" / "other.tar"  # missing: the loader's error


def test_base_tar_loads_the_linked_weights(tmp_path, synth_root):
    import torch

    from src.common.paths import Paths
    from src.models.checkpoint import load_mask_transformer
    from tests.helpers_methods import MASK, make_dataset, make_runs

    data = make_dataset(synth_root, tmp_path / "ds")
    make_runs(tmp_path / "ck", data)
    model_dir = tmp_path / "ck" / "synth" / MASK / "model"
    paths = Paths.default(checkpoints_dir=tmp_path / "ck", dataset_dir=data)
    from src.common.errors import HmuError

    with pytest.raises(HmuError, match="latest.tar"):
        load_mask_transformer(paths, "synth", MASK, ckpt="base.tar")
    best = torch.load(model_dir / "net_best_fid.tar", map_location="cpu", weights_only=True)
    latest = {**best, "t2m_transformer": {k: v + 1 for k, v in best["t2m_transformer"].items()}}
    torch.save(latest, model_dir / "latest.tar")
    model, _, _ = load_mask_transformer(paths, "synth", MASK, ckpt="base.tar")
    sd = model.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in latest["t2m_transformer"].items() if k in sd)


@pytest.mark.parametrize("argv", [["-m", "src.methods.gen_t2m_batch"], ["-m", "src.momask_codes.gen_t2m"],
                                  ["-m", "src.eval.t2m_unlearn_sh"], ["src/momask_codes/train_vq.py"],
                                  ["src/momask_codes/train_t2m_transformer.py"],
                                  ["src/momask_codes/train_res_transformer.py"]])
def test_new_entry_points_answer_help(argv):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, *argv, "--help"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr


def test_eval_wrapper_ckpt_resolution(tmp_path):
    """Upstream's ``--ckpt X.tar`` names an edit; hmu wrote it as run X: a VQ run replaces the VQ only, a transformer
    run replaces the masked transformer (and the residual when X_res exists); anything else stays a file name."""
    from src.common.paths import Paths
    from src.cli.t2m_unlearn_sh import is_upstream_call, resolve_ckpt

    assert is_upstream_call(["--dataset", "HumanML3D"]) and is_upstream_call(["--dataset=synth"])
    assert not is_upstream_call(["--dataset", "synth", "--dataset_name", "synth"]) and not is_upstream_call([])
    ck = tmp_path / "ck" / "synth"
    vq, trans = "name: v\nnb_code: 32\nvq_name: v\n", "vq_name: v\nlatent_dim: 32\n"  # a VQ opt.txt has vq_name too
    for run, opt in (("lcr16_synth_violence", vq), ("RECE1_1.0", trans), ("RECE1_1.0_res", trans),
                     ("UCE_1.0", trans)):
        (ck / run).mkdir(parents=True)
        head, end = "------------ Options -------------\n", "-------------- End ----------------\n"
        (ck / run / "opt.txt").write_text(f"{head}{opt}{end}")
    paths = Paths.default(checkpoints_dir=tmp_path / "ck")
    kw = {"trans": "T", "res": "R"}
    assert resolve_ckpt(paths, "synth", "base.tar", **kw)[0] == {"--name": "T", "--res_name": "R", "--ckpt": "base.tar"}
    flags, said = resolve_ckpt(paths, "synth", "lcr16_synth_violence.tar", **kw)
    assert flags == {"--name": "T", "--res_name": "R", "--vq_name": "lcr16_synth_violence", "--ckpt": "base.tar"}
    assert "edited VQ" in said
    assert resolve_ckpt(paths, "synth", "RECE1_1.0.tar", **kw)[0] == {
        "--name": "RECE1_1.0", "--res_name": "RECE1_1.0_res", "--ckpt": "net_best_fid.tar"}
    assert resolve_ckpt(paths, "synth", "UCE_1.0.tar", **kw)[0]["--res_name"] == "R"
    assert resolve_ckpt(paths, "synth", "other.tar", **kw)[0] == {"--name": "T", "--res_name": "R",
                                                                  "--ckpt": "other.tar"}


def test_tmr_run_found_in_upstreams_folder(tmp_path, monkeypatch):
    import src.common.paths as P
    from src.common.paths import Paths
    from src.common.paths import tmr_run_dir

    monkeypatch.setattr(P, "REPO_ROOT", tmp_path / "repo")
    paths = Paths.default(checkpoints_dir=tmp_path / "ck")
    ours = tmp_path / "ck" / "HumanML3D" / "tmr_humanml3d_guoh3dfeats"
    assert tmr_run_dir(paths, "HumanML3D", "tmr_humanml3d_guoh3dfeats", existing=True) == ours  # none: ours, named
    up = tmp_path / "repo" / "src" / "TMR" / "models" / "tmr_humanml3d_guoh3dfeats"
    up.mkdir(parents=True)
    (up / "config.json").write_text("{}")
    assert tmr_run_dir(paths, "HumanML3D", "tmr_humanml3d_guoh3dfeats", existing=True) == up
    ours.mkdir(parents=True)
    (ours / "config.json").write_text("{}")
    assert tmr_run_dir(paths, "HumanML3D", "tmr_humanml3d_guoh3dfeats", existing=True) == ours  # ours first


def test_split_file_reads_upstreams_path_forms(tmp_path, monkeypatch):
    from src.data.humanml3d import split_file

    root = tmp_path / "data" / "synth"
    (root / "kw_splits").mkdir(parents=True)
    f = root / "kw_splits" / "train_val-w-violence.txt"
    f.write_text("000001\n")
    monkeypatch.chdir(tmp_path)
    assert split_file(root, "kw_splits/train_val-w-violence") == f
    assert split_file(root, "kw_splits/train_val-w-violence.txt") == f
    assert split_file(root, str(f)) == f
    # upstream's `--split dataset/HumanML3D/kw_splits/...` (relative to the repository), whatever HMU_DATASET is
    assert split_file(root, "dataset/synth/kw_splits/train_val-w-violence") == f
    (tmp_path / "mine.txt").write_text("000002\n")  # relative to the current folder
    assert split_file(root, "mine") == Path("mine.txt")
    assert split_file(root, "nope") == root / "nope.txt"  # missing: the first candidate, named by the loader


def test_codes_csv_has_upstreams_columns(tmp_path):
    import numpy as np

    from src.methods.collect import CodeTable, write_codes_csv

    codes = np.array([[[1, 7], [2, 8], [-1, -1]], [[3, 9], [-1, -1], [-1, -1]], [[4, 5], [6, 0], [1, 1]]],
                     dtype=np.int16)  # (R=3, T=3, Q=2); rows 0 and 2 belong to motion "a", row 1 to "b"
    table = CodeTable(["a", "b"], np.array([0, 1, 0]), codes, np.array([2, 1, 3]), {})
    lines = write_codes_csv(table, tmp_path / "c.csv").read_text().splitlines()
    assert lines[0] == "name,repeat,codes_0:0,codes_0:1,codes_0:2,codes_1:0,codes_1:1,codes_1:2"
    assert lines[1:] == ["a,0,1,2,-1,7,8,-1", "b,0,3,-1,-1,9,-1,-1", "a,1,4,6,1,5,0,1"]
    assert write_codes_csv(table, tmp_path / "d.csv", layers=1).read_text().splitlines()[2] == "b,0,3,-1,-1"


def test_lcr_takes_upstreams_flags(tmp_path, synth_root, monkeypatch):
    """``--run_name`` (the new run), ``--split`` (forget list in upstream's path form; retain = the rest of
    train_val), ``--layer_prune 2`` (= layers 0 and 1), ``--codes_csv`` (the export), ``--ckpt base.tar``."""
    import torch

    from src.data.humanml3d import read_split
    from src.methods.lcr.__main__ import main
    from tests.helpers_methods import VQ, make_dataset, make_runs

    data = make_dataset(synth_root, tmp_path / "ds")
    make_runs(tmp_path / "ck", data, with_transformers=False)
    monkeypatch.chdir(tmp_path)
    loc = ["--checkpoints_dir", str(tmp_path / "ck"), "--dataset_dir", str(data), "--no_progress", "--no_cache"]
    argv = ["--dataset_name", "synth", "--run_name", "lcr4_violence", "--split",
            "dataset/synth/kw_splits/train_val-w-violence", "--code_prune", "4", "--ckpt", "base.tar",
            "--codes_csv", "assets/synth_codes.csv", "--layer_prune", "2", "--select", "upstream", "--vq_name", VQ]
    assert main([*argv, *loc]) == 0
    ck = torch.load(tmp_path / "ck" / "synth" / "lcr4_violence" / "model" / "net_best_fid.tar", map_location="cpu",
                    weights_only=True)
    removed = ck["removed_codes"]
    assert len(removed) == 2 and all(4 <= len(c) <= 8 for c in removed)  # upstream's rule: k..2k codes per layer
    meta = ck["hmu_meta"]
    root = data / "synth"
    forget = read_split(root / "kw_splits" / "train_val-w-violence.txt")
    rest = [i for i in read_split(root / "train_val.txt") if i not in set(forget)]
    assert meta["n_retain_rows"] == len(rest) and meta["n_forget_rows"] == len(forget)
    assert meta["source"].endswith("net_best_fid.tar")  # base.tar of a VQ run
    lines = (tmp_path / "assets" / "synth_codes.csv").read_text().splitlines()
    assert lines[0].startswith("name,repeat,codes_0:0") and len(lines) == 1 + len(forget) + len(rest)
    assert main([*argv, *loc]) == 2  # the run and the csv exist: --force needed
    assert main([*argv, "--layers", "0", *loc, "--force"]) == 2  # --layers and --layer_prune: one of them


def test_rece_in_upstreams_meaning_of_name(tmp_path, synth_root, capsys):
    """Upstream's ``--name`` is the source transformer: without ``--trans_name``, an existing ``--name`` run is read
    (never written) and the edits are saved as upstream names its files, UCE_<ps> and RECE<epochs>_<ps> (+ _res).
    ``--vq_name`` must be the transformers' VQ."""
    import torch

    from src.methods.rece.__main__ import main
    from tests.helpers_methods import MASK, RES, VQ, make_dataset, make_runs, tree_hashes

    data = make_dataset(synth_root, tmp_path / "ds")
    ck = make_runs(tmp_path / "ck", data)
    before = tree_hashes(ck / "synth")
    loc = ["--checkpoints_dir", str(ck), "--dataset_dir", str(data)]
    argv = ["--dataset_name", "synth", "--name", MASK, "--res_name", RES, "--forget_text", "kick", "punch",
            "--retain_text", "walk", "run", "--target_text", "", "--epochs", "1", "--preserve_scale", "1.0",
            "--ckpt", "net_best_fid.tar", *loc]
    assert main([*argv, "--vq_name", "other"]) == 2
    assert "trained on VQ" in capsys.readouterr().err
    assert main([*argv, "--vq_name", VQ]) == 0
    assert "upstream's meaning" in capsys.readouterr().out
    after = tree_hashes(ck / "synth")
    assert {k: v for k, v in after.items() if k in before} == before  # sources untouched
    for run, key, method in (("UCE_1.0", "t2m_transformer", "uce"), ("UCE_1.0_res", "res_transformer", "uce"),
                             ("RECE1_1.0", "t2m_transformer", "rece"), ("RECE1_1.0_res", "res_transformer", "rece")):
        f = torch.load(ck / "synth" / run / "model" / "net_best_fid.tar", map_location="cpu", weights_only=True)
        assert key in f and f["hmu_meta"]["method"] == method, run
        assert f["hmu_meta"]["source"].startswith(str(ck / "synth" / (MASK if key == "t2m_transformer" else RES)))
    # hmu's meaning is unchanged: --trans_name given, --name is the output
    assert main([*argv[:2], "--trans_name", MASK, "--name", "mine", *argv[4:]]) == 0
    assert (ck / "synth" / "mine" / "model" / "net_best_fid.tar").is_file() and not (ck / "synth" / "UCE_1.0x").exists()


def test_eval_flags_of_upstream():
    """``--dataset`` is --dataset_name (not an ambiguous abbreviation), ``--split`` is its own flag (not
    --split_name), and the run name made from a split path is one folder name."""
    from src.eval.t2m_unlearn import build_parser, parse, split_label

    a = parse(["--dataset", "HumanML3D", "--split", "kw_splits/test-w-violence", "--toxic_terms", "kick", "punch",
               "hit"])
    assert a.dataset_name == "HumanML3D" and a.split == "kw_splits/test-w-violence" and a.concept == "violence"
    assert a.results_name() == "HumanML3D_original_kw_splits-test-w-violence_s0"
    assert split_label("../kw_splits\\\\x.txt") == "kw_splits-x" and "/" not in split_label("/abs/path/y")
    assert parse(["--dataset_name", "t2m"]).results_name() == "HumanML3D_original_violence_s0"
