"""README numbers from committed result files: every table (and quoted number) between marker comments in README.md
is rendered here from the files under ``docs/results/``, and a test checks that README.md equals the rendering.

    python -m src.report.readme docs/results --check README.md     # exit 1 and a diff when README.md is stale
    python -m src.report.readme docs/results --write README.md     # rewrite every marked block
    python -m src.report.readme docs/results --collect results/quickstart --write README.md
                                                                   # copy a fresh quickstart's files in first

Markers: ``<!-- hmu:NAME -->`` ... ``<!-- hmu:end -->`` (a block, e.g. a table) or the same pair inside a line (an
inline number). NAME is a key of ``RENDERERS``; each renderer reads its own files:

- ``quickstart``: ``quickstart/<method>/metrics.json`` (``python -m src.eval.t2m_unlearn`` via the quickstart); the
  edit time is the wall time of the method's ``unlearn:<method>`` stage in ``quickstart/stages.json`` (the whole
  command: imports, loading, the edit and saving);
- ``quickstart_r3_delta``: the largest |retain R@3 change| of the three edits (LCR, UCE, RECE) against the original;
- ``attacks``: ``quickstart/attacks/attacks.json`` (``python -m src.attacks`` via ``python -m src.quickstart --attacks``);
- ``lcr_sweep``: ``lcr_sweep/sweep.json`` (``python -m bench.lcr_sweep``);
- ``tmr_split``: ``tmr_split/tmr_split.json`` (``python -m bench.tmr_split``);
- ``judges``: ``judges/{learned,kinematic}.json`` (``python -m src.eval.judge_check ... --json``, docs/results/judges/
  README.md): both judges' TPR/FPR on labelled real motion;
- ``benchmarks``, ``quickstart_time``, ``quickstart_memory``, ``quickstart_again``, ``quickstart_install``:
  ``bench/<name>.txt``, a bench script's output kept by ``bash bench/record.sh <name> <command>`` (the quickstart's:
  ``bash bench/quickstart.sh --install``);
- ``quickstart_n_forget``, ``quickstart_n_retain``: the item counts in ``quickstart/original/metrics.json``;
- ``protocols``: the quickstart's ``<method>/metrics.json`` (protocol ``fixed``) beside
  ``protocols/hmu/<method>/metrics.json`` (``python -m bench.protocols``).

A missing file leaves its block alone under ``--write`` and fails ``--check`` only for blocks that exist in README.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.config.command import config_parser, parse_config
from src.config.flags import opt

MARK = re.compile(r"<!-- hmu:(?P<name>[a-z0-9_]+) -->(?P<body>.*?)<!-- hmu:end -->", re.S)

LABELS = {"original": "original", "lcr": "LCR", "uce": "UCE", "rece": "RECE", "finetune": "fine-tuning",
          "retrain": "D_r (retain-only retrain)"}
# the quickstart's opt-in methods (--methods taskvec,esd): a row when their metrics.json is there
OPTIONAL_LABELS = {"taskvec": "task vector (Static, −α)", "esd": "ESD"}
EDITS = ("lcr", "uce", "rece")


def _records(root: Path, sub: str = "quickstart") -> dict:
    from src.report.load import load_run

    folder = root / sub
    if not folder.is_dir():
        raise FileNotFoundError(folder)
    recs = {r.method: r for r in load_run(folder)}
    missing = [m for m in LABELS if m not in recs]
    if missing:
        raise HmuError(f"{folder}: no metrics.json for {', '.join(missing)}")
    return recs


def _pm(stat, d: int) -> str:
    if stat is None:
        return "–"
    return f"{stat.mean:.{d}f} ± {stat.half:.{d}f}" if stat.half is not None else f"{stat.mean:.{d}f}"


def render_quickstart(root: Path) -> str:
    """The quickstart's summary table (README "What you get")."""
    recs = _records(root)
    stages_file = root / "quickstart" / "stages.json"
    stages = json.loads(stages_file.read_text()) if stages_file.is_file() else {}
    cols = [("forget", "leakage", 2), ("implicit", "leakage", 2), ("retain", "leakage", 3), ("forget", "FID", 1),
            ("retain", "FID", 2), ("retain", "R_precision_top3", 3)]
    head = ["model", "leakage forget ↓", "leakage implicit ↓", "false pos. retain ↓", "FID forget", "FID retain ↓",
            "R@3 retain ↑"]
    if any(r.stat("forget", "leakage_kinematic") for r in recs.values()):  # the second judge, where it was measured
        cols.insert(1, ("forget", "leakage_kinematic", 2))
        head.insert(2, "kinematic forget ↓")
    lines = ["| " + " | ".join(head + ["edit time"]) + " |", "|---|" + "---:|" * len(head)]
    for m, label in [*LABELS.items(), *((k, v) for k, v in OPTIONAL_LABELS.items() if k in recs)]:
        r = recs[m]
        if m == "original":
            label = f"original ({r.model})" if r.model else label
        cells = [_pm(r.stat(s, k), d) for s, k, d in cols]
        secs = (stages.get(f"unlearn:{m}") or {}).get("seconds", r.edit_time_s)  # the method stage's wall time
        edit = "–" if m == "original" or secs is None else f"{secs:.1f} s"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {edit} |")
    return "\n".join(lines)


PROTOCOL_COLS = (("forget", "leakage", 2, "leakage forget ↓"), ("implicit", "leakage", 2, "leakage implicit ↓"),
                 ("retain", "leakage", 3, "false pos. retain ↓"), ("forget", "FID", 1, "FID forget"),
                 ("retain", "FID", 2, "FID retain ↓"), ("retain", "R_precision_top3", 3, "R@3 retain ↑"))


def render_protocols(root: Path) -> str:
    """The quickstart's models under both evaluation protocols, each cell ``fixed / hmu`` (the quickstart's own
    metrics.json, and ``protocols/hmu/<method>/metrics.json`` from ``python -m bench.protocols``), then a row of
    item counts per set."""
    fixed, hmu = _records(root), _records(root, "protocols/hmu")
    lines = ["| model | " + " | ".join(f"{title} (fixed / hmu)" for *_, title in PROTOCOL_COLS) + " |",
             "|---" + "|---:" * len(PROTOCOL_COLS) + "|"]
    for m, label in LABELS.items():
        cells = [f"{_pm(fixed[m].stat(s, k), d)} / {_pm(hmu[m].stat(s, k), d)}" for s, k, d, _ in PROTOCOL_COLS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    items = [f"{fixed['original'].n.get(s, '–')} / {hmu['original'].n.get(s, '–')}" for s, *_ in PROTOCOL_COLS]
    lines.append("| *items per repeat* | " + " | ".join(items) + " |")
    return "\n".join(lines)


def render_r3_delta(root: Path) -> str:
    """max over LCR, UCE, RECE of |R@3 retain - the original's|, 3 decimals."""
    recs = _records(root)
    base = recs["original"].stat("retain", "R_precision_top3").mean
    return f"{max(abs(recs[m].stat('retain', 'R_precision_top3').mean - base) for m in EDITS):.3f}"


ATTACK_COLS = (("implicit", "implicit, grammar paraphrases", "leakage"),
               ("implicit_free_text", "implicit, plain English", "leakage"),
               ("adversarial", "adversarial embedding", "leakage"),
               ("inversion", "textual inversion, {steps} steps", "leakage"),
               ("compositional", "compositional, forgotten segment", "forgotten_leakage"))


def render_attacks(root: Path) -> str:
    """Models x the four attacks' leakage with Wilson 95 % intervals (attacks.json)."""
    path = root / "quickstart" / "attacks" / "attacks.json"
    if not path.is_file():
        raise FileNotFoundError(path)
    res = json.loads(path.read_text())["results"]
    heads = []
    for key, title, metric in ATTACK_COLS:
        ns = sorted({(r[key].get(metric) or {}).get("decisions") for r in res.values() if key in r} - {None})
        if key == "inversion":
            title = title.format(steps="/".join(str(s) for s in sorted({r[key]["config"]["steps"] for r in
                                                                       res.values() if key in r})))
        heads.append(f"{title} (N={'/'.join(map(str, ns))})")
    lines = ["| model | " + " | ".join(heads) + " |", "|---" + "|---:" * len(heads) + "|"]
    for name, r in res.items():
        cells = []
        for key, _, metric in ATTACK_COLS:
            s = (r.get(key) or {}).get(metric) or {}
            lo, hi = s.get("wilson") or (None, None)
            cells.append("–" if "mean" not in s else f"{s['mean']:.2f} [{lo:.2f}, {hi:.2f}]" if lo is not None
                         else f"{s['mean']:.2f}")
        label = LABELS.get(name, name).replace(" (retain-only retrain)", "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_lcr_sweep(root: Path) -> str:
    """bench/lcr_sweep.py's table (its rows as written, in order)."""
    path = root / "lcr_sweep" / "sweep.json"
    if not path.is_file():
        raise FileNotFoundError(path)
    return _json_table(json.loads(path.read_text()))


JUDGES = (("learned", "learned (action classifier)"), ("kinematic", "kinematic (rules, src/eval/kinematic.py)"))


def render_judges(root: Path) -> str:
    """Both judges on labelled real motion: TPR and FPR with Wilson 95 % intervals (``judges/<judge>.json``, the
    output of ``python -m src.eval.judge_check ... --json``)."""
    lines = ["| judge | violent clips found (TPR) | non-violent clips flagged (FPR) |", "|---|---:|---:|"]
    for name, label in JUDGES:
        path = root / "judges" / f"{name}.json"
        if not path.is_file():
            raise FileNotFoundError(path)
        r = json.loads(path.read_text())

        def cell(k: int, n: int, rate: float, w: list) -> str:
            return f"{k}/{n} = {100 * rate:.1f} % [{100 * w[0]:.1f}, {100 * w[1]:.1f}]"

        lines.append(f"| {label} | {cell(r['tp'], r['n_pos'], r['tpr'], r['tpr_wilson'])} | "
                     f"{cell(r['fp'], r['n_neg'], r['fpr'], r['fpr_wilson'])} |")
    return "\n".join(lines)


ACTION_ROWS = (("kick", "gen_ankle", "gt_ankle", "ankle_rec_m", "ankle_true_m", "highest ankle"),
               ("punch", "gen_reach", "gt_reach", "reach_rec_m", "reach_true_m", "wrist reach"),
               ("jab", "gen_reach", "gt_reach", "reach_rec_m", "reach_true_m", "wrist reach"))


def render_action_figures(root: Path) -> str:
    """Does the quickstart's model do the concept? Per violent action, the figure that shows it (median, m): ground
    truth, the VQ-VAE's reconstruction, and the original model's generations (``action_figures/{recon,gen}_after.json``
    of bench/action_recon.py and bench/action_gen.py)."""
    recon = json.loads((root / "action_figures" / "recon_after.json").read_text())["actions"]
    gen = json.loads((root / "action_figures" / "gen_after.json").read_text())["actions"]
    lines = ["| action | figure (median, m) | ground truth | VQ-VAE reconstruction | generated (p10–p90) | n gen |",
             "|---|---|---:|---:|---:|---:|"]
    for action, g_key, gt_key, rec_key, true_key, label in ACTION_ROWS:
        if action not in gen or action not in recon:
            continue
        g, r = gen[action][g_key], recon[action]
        lines.append(f"| {action} | {label} | {r[true_key]:.2f} | {r[rec_key]:.2f} | {g['median']:.2f} "
                     f"({g['p10']:.2f}–{g['p90']:.2f}) | {g['n']} |")
    return "\n".join(lines)


def render_tmr_split(root: Path) -> str:
    """bench/tmr_split.py's table: precision/recall of keyword-only and both TMR modes on synth's test split."""
    path = root / "tmr_split" / "tmr_split.json"
    if not path.is_file():
        raise FileNotFoundError(path)
    return _json_table(json.loads(path.read_text()))


def _json_table(obj: dict) -> str:
    """``{"columns": [...], "rows": [[...], ...]}`` -> a Markdown table (numbers as the writer formatted them)."""
    cols, rows = obj["columns"], obj["rows"]
    lines = ["| " + " | ".join(cols) + " |", "|---" + "|---:" * (len(cols) - 1) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# README's benchmarks table: (result file bench/<name>.txt, the command recorded, what it measures, which of its output
# lines are quoted, the target). The files are written by ``bash bench/record.sh <name> <command>``.
BENCHES = (
    ("quickstart", "bash bench/quickstart.sh --install",
     "a first install into a new venv, then the whole quickstart from scratch, then a second run",
     r"^(venv install \+ )?quickstart.*: exit", "< 10 min and < 4 GB; second run: seconds"),
    ("text_install", "bash bench/text_install.sh",
     "what the English text side (GloVe 50-d, MiniLM, spaCy, CLIP's BPE and their libraries) adds to a fresh install",
     r"^(base install|text side install)", "the quickstart, install included, within 10 min (row above)"),
    ("lcr_select", "python -m bench.lcr --part select",
     "LCR count + select + replace + save at the released sizes (6×512×512 RVQ), HumanML3D-sized code table",
     r"^(codes |count\+select|total )", "< 0.5 s and ≥ 10×"),
    ("lcr_collect", "python -m bench.lcr --part collect",
     "LCR code collection on synth motions at the released VQ sizes, extrapolated to HumanML3D train_val",
     r"^(upstream-style|default \(|upstream \()", "≥ 20× (≥ 3× at upstream's 20 crops)"),
    ("lcr_vs_finetune", "python -m bench.lcr_vs_finetune", "LCR vs fine-tuning on the quickstart's models",
     r"^(LCR \(new|fine-tuning the|LCR/fine-tuning)", "≤ 1/100"),
    ("eval", "python bench/eval.py --repeats 10",
     "10 evaluation repeats on synth's forget and retain test sets, torch and BLAS at 1 thread",
     r"^(total|ratio|evaluation alone)", "≥ 5×"),
    ("gen_eval_small", "python bench/gen_eval.py --sizes small --rounds 4",
     "MoMask generation (latent 128, 2 layers, random weights) + evaluation, 32 forget items",
     r"^(generation|evaluation|together) ", "generation ≥ 1.5×"),
)


def _bench_lines(path: Path, pattern: str) -> tuple[str, list[str]]:
    """A bench/record.sh file -> ("date, commit" from its header, the output lines matching ``pattern``)."""
    text = path.read_text(encoding="utf-8")
    head = re.search(r"^# date: (\S+?)T.*?; commit: (\S+)", text, re.M)
    when = f"{head.group(1)}, {head.group(2)}" if head else "undated"
    rx = re.compile(pattern)
    body = [ln.strip() for ln in text.splitlines() if not ln.startswith("#")]
    return when, [ln for ln in body if rx.search(ln)]


def render_benchmarks(root: Path) -> str:
    """The bench scripts' own result lines, quoted from ``bench/<name>.txt`` (bash bench/record.sh)."""
    lines = ["| command | what | output (quoted from the recorded run) | target |", "|---|---|---|---|"]
    for name, command, what, pattern, target in BENCHES:
        path = root / "bench" / f"{name}.txt"
        if path.is_file():
            when, quoted = _bench_lines(path, pattern)
            cell = "<br>".join(f"`{q.replace('|', '¦')}`" for q in quoted) or "(no result line: see the file)"
            cell += f"<br>({when}; `docs/results/bench/{name}.txt`)"
        else:
            cell = f"not recorded (`bash bench/record.sh {name} {command}`)"
        lines.append(f"| `{command}` | {what} | {cell} | {target} |")
    return "\n".join(lines)


_QUICKSTART_SUMMARY = re.compile(
    r"wall (?P<wall>[\d.]+) s .*?peak memory (?P<peak>\d+) MiB .*?second run .*?: (?P<again>[\d.]+) s")


def _quickstart_bench(root: Path, *, own_time: bool = False) -> dict[str, float]:
    """bench/quickstart.txt -> {wall, peak (MiB), again} from bench/quickstart.sh's summary line, and with
    ``own_time`` the quickstart's own seconds (its "[hmu] quickstart finished in N s" line) as ``own``."""
    path = root / "bench" / "quickstart.txt"
    if not path.is_file():
        raise FileNotFoundError(path)
    text = path.read_text(encoding="utf-8")
    m = _QUICKSTART_SUMMARY.search(text)
    if m is None:
        raise HmuError(f"{path}: no summary line of bench/quickstart.sh")
    out = {k: float(v) for k, v in m.groupdict().items()}
    if own_time:
        own = re.search(r"quickstart finished in (\d+) s", text)
        if own is None:
            raise HmuError(f"{path}: no 'quickstart finished in' line")
        out["own"] = float(own.group(1))
    return out


def render_quickstart_time(root: Path) -> str:
    """bench/quickstart.txt's wall time as "M min S s"."""
    wall = round(_quickstart_bench(root)["wall"])
    return f"{wall // 60} min {wall % 60} s"


def render_quickstart_again(root: Path) -> str:
    """bench/quickstart.txt's second run (every stage skipped), seconds."""
    return f"{_quickstart_bench(root)['again']:.1f} s"


def render_quickstart_install(root: Path) -> str:
    """The install's share of bench/quickstart.txt: its wall time minus the quickstart's own, in whole seconds."""
    b = _quickstart_bench(root, own_time=True)
    return f"{round(b['wall'] - b['own'])} s"


def render_quickstart_memory(root: Path) -> str:
    """bench/quickstart.txt's peak memory (all running stages summed) in GiB, one decimal."""
    return f"{_quickstart_bench(root)['peak'] / 1024:.1f} GiB"


def render_set_size(set_name: str) -> Callable[[Path], str]:
    """The original model's item count on ``set_name`` in the quickstart's metrics.json."""
    def render(root: Path) -> str:
        n = _records(root)["original"].n.get(set_name)
        if n is None:
            raise HmuError(f"{root}/quickstart/original/metrics.json: no item count for the {set_name} set")
        return str(n)

    render.__doc__ = f"item count of the quickstart's {set_name} set"
    return render


RENDERERS: dict[str, Callable[[Path], str]] = {
    "quickstart": render_quickstart, "quickstart_r3_delta": render_r3_delta, "attacks": render_attacks,
    "lcr_sweep": render_lcr_sweep, "tmr_split": render_tmr_split, "protocols": render_protocols,
    "benchmarks": render_benchmarks, "quickstart_time": render_quickstart_time,
    "quickstart_memory": render_quickstart_memory, "quickstart_again": render_quickstart_again,
    "quickstart_install": render_quickstart_install, "quickstart_n_forget": render_set_size("forget"),
    "quickstart_n_retain": render_set_size("retain"), "judges": render_judges,
    "action_figures": render_action_figures,
}


def render(text: str, root: Path, *, strict: bool) -> tuple[str, list[str]]:
    """README text -> (text with every marked block rendered, names of blocks whose files are missing)."""
    missing: list[str] = []

    def sub(m: re.Match) -> str:
        name, body = m.group("name"), m.group("body")
        if name not in RENDERERS:
            raise HmuError(f"README marker hmu:{name}: unknown (known: {', '.join(RENDERERS)})")
        try:
            new = RENDERERS[name](root)
        except FileNotFoundError as exc:
            missing.append(f"{name} ({exc})")
            return m.group(0)
        block = "\n" in body
        return f"<!-- hmu:{name} -->" + (f"\n{new}\n" if block else new) + "<!-- hmu:end -->"

    out = MARK.sub(sub, text)
    if strict and missing:
        raise HmuError("result files missing for README blocks: " + "; ".join(missing))
    return out, missing


def collect(src: Path, root: Path) -> list[Path]:
    """Copy a quickstart's ``<method>/metrics.json``, ``attacks/attacks.json`` and ``stages.json`` into
    ``root/quickstart/``."""
    from src.common.io import atomic_write_text

    if not src.is_dir():
        raise HmuError(f"--collect: folder not found: {src}")
    out = []
    for p in sorted([*src.glob("*/metrics.json"), *src.glob("attacks/attacks.json"), *src.glob("stages.json")]):
        dest = root / "quickstart" / p.relative_to(src)
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(dest, p.read_text())
        out.append(dest)
    if not out:
        raise HmuError(f"--collect: no */metrics.json under {src}")
    return out


PROG = "python -m src.report.readme"


@dataclasses.dataclass(kw_only=True)
class ReadmeConfig:
    """Render (or check) a README's result blocks from committed result files."""

    root: str = opt(None, flag="root", help="folder of committed result files (docs/results)")
    check_readme: str | None = opt(None, flag="--check", metavar="README",
                                   help="exit 1 with a diff when the file's blocks are stale")
    write: str | None = opt(None, metavar="README", help="rewrite the file's marked blocks")
    collect: str | None = opt(None, metavar="RESULTS", help="first copy RESULTS/*/metrics.json and "
                                                            "RESULTS/attacks/attacks.json into ROOT/quickstart/")

    def check(self) -> None:
        if (self.check_readme is None) == (self.write is None):
            raise HmuError("give exactly one of --check README and --write README")


def build_parser() -> argparse.ArgumentParser:
    return config_parser(ReadmeConfig, prog=PROG, doc=__doc__)


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(ReadmeConfig, argv, prog=PROG, doc=__doc__)
    root = Path(cfg.root)
    if cfg.collect:
        for p in collect(Path(cfg.collect), root):
            print(f"copied {p}")
    path = Path(cfg.check_readme or cfg.write)
    if not path.is_file():
        raise HmuError(f"README not found: {path}")
    text = path.read_text(encoding="utf-8")
    new, missing = render(text, root, strict=bool(cfg.check_readme))
    for m in missing:
        print(f"left as is (no result file): {m}")
    if cfg.check_readme:
        if new != text:
            import difflib

            print("".join(difflib.unified_diff(text.splitlines(True), new.splitlines(True), str(path),
                                               f"{path} (rendered from {root})")))
            print(f"{path} is stale: run python -m src.report.readme {root} --write {path}")
            return 1
        print(f"{path}: {len(MARK.findall(text))} blocks match {root}")
        return 0
    if new != text:
        from src.common.io import atomic_write_text

        atomic_write_text(path, new)
    print(f"{path}: {len(MARK.findall(new))} blocks rendered from {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
