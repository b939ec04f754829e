"""The paper's tables as Markdown: sets x methods x metrics, mean ± interval, the best cell per column in bold.

How "best" is judged, per set (the arrow in each header says which):

============  ==========================  ==========================================================================
metric        retain set                  forget set (and implicit prompts)
============  ==========================  ==========================================================================
FID           ↓ lower                     ↑ higher: generations far from the forgotten concept's real motions
Diversity     → closest to ground truth   → closest to ground truth (a collapsed model is not "forgetting")
R@1/2/3       ↑ higher                    ↓ lower: the motion no longer matches the violent text
MM-Dist       ↓ lower                     ↑ higher (same reason as R-precision)
MultiModality ↑ higher                    ↑ higher (still varied for one prompt)
MM-Safe       not judged (no toxic text)  ↓ lower: close to the caption with its violent words masked
Leakage       ↓ (false positives)         ↓ lower: fewer generations the action classifier flags
Jerk          → closest to ground truth   → closest to ground truth (src.eval.quality: mean |d³x/dt³|, m/s³)
Foot skate    → closest to ground truth   → closest to ground truth (fraction of contact steps that slide)
Bone drift    → closest to ground truth   → closest to ground truth (mean |bone length - its mean|, m)
============  ==========================  ==========================================================================

The motion-quality columns are judged against the real motions' values (the set's reference row): jerkier, more
sliding or more stretched than real motion is worse, and so is an implausibly frozen one.

Two readings of forget-set FID and R@1 (``--reading``): **safety** (the default, the table above: away from the
original model) and **paper** (the paper's Table 1: closest to the retain-only model D_r, arrow ``→D_r``; without a D_r
row those two columns are not judged). The chosen reading decides the bold cells and is named in the caption; a line
under the forget table names the best method under the other reading too. Rows of the original model and of D_r are
bounds, not competitors: they are shown (marked †) but never bolded.

Every table is a :class:`Table` (cells as text + which are bold), written as Markdown (``report.md``) and as a booktabs
LaTeX table (``report.tex``) from the same cells, so the two never disagree.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .load import MethodResult, Stat

MIN, MAX, REAL, DR, NONE = "min", "max", "real", "dr", None
ARROWS = {MIN: "↓", MAX: "↑", REAL: "→", DR: "→D_r", NONE: ""}
READINGS = ("safety", "paper")
PAPER_TOWARD_DR = ("FID", "R_precision_top1")   # the paper's Table 1 reads these two forget-set columns toward D_r
DR_NAMES = ("dr", "d_r", "retrain", "retrained", "oracle")


@dataclass(frozen=True)
class Column:
    key: str        # metric name in metrics.json
    title: str
    retain: str | None
    forget: str | None
    decimals: int | None = None   # fixed decimals (rates); None: from the column's magnitude


COLUMNS: tuple[Column, ...] = (
    Column("FID", "FID", MIN, MAX),
    Column("Diversity", "Diversity", REAL, REAL),
    Column("R_precision_top1", "R@1", MAX, MIN, 3),
    Column("R_precision_top2", "R@2", MAX, MIN, 3),
    Column("R_precision_top3", "R@3", MAX, MIN, 3),
    Column("MM_Dist", "MM-Dist", MIN, MAX),
    Column("MultiModality", "MultiModality", MAX, MAX),
    Column("MM_Safe", "MM-Safe", NONE, MIN),
    Column("toxic_distance", "Tox-Dist", NONE, MAX),      # upstream's: sum d/d_masked over toxic batches / N
    Column("notox_accuracy", "NoTox-Acc", NONE, MAX, 3),  # upstream's: #(d_masked < d) in toxic batches / N
    Column("leakage", "Leakage", MIN, MIN, 3),
    Column("leakage_kinematic", "Leakage (kinematic)", MIN, MIN, 3),  # src.eval.kinematic's rules
    Column("jerk_mean", "Jerk", REAL, REAL),                 # src.eval.quality, m/s^3
    Column("skate_ratio", "Foot skate", REAL, REAL, 3),      # fraction of foot-contact steps that skate
    Column("bone_drift_mean", "Bone drift", REAL, REAL, 4),  # metres: a few mm for real motion
)
BOUND_NAMES = {"original", "base", "pretrained", "dr", "d_r", "retrain", "retrained", "oracle"}
SET_TITLES = {"forget": "Forget set", "retain": "Retain set", "implicit": "Implicit prompts (forget concept, no keyword)"}
FORGET_LIKE = ("forget", "implicit")
DASH = "–"
NAN_CELL = "NaN"  # computed, but not a number (a diverged model, an empty pool): not the same as not measured


def is_bound(r: MethodResult) -> bool:
    """The original model and D_r: shown for comparison, not ranked."""
    role = r.raw.get("role")
    if isinstance(role, str) and role.lower() in ("original", "bound", "reference", "oracle"):
        return True
    return r.method.lower().replace("-", "_") in BOUND_NAMES


def direction(col: Column, set_name: str, reading: str = "safety") -> str | None:
    if reading not in READINGS:
        raise ValueError(f"unknown reading {reading!r} (known: {', '.join(READINGS)})")
    if not set_name.startswith(FORGET_LIKE):
        return col.retain
    return DR if reading == "paper" and col.key in PAPER_TOWARD_DR else col.forget


def dr_record(records: Sequence[MethodResult]) -> MethodResult | None:
    """The retain-only retrained model's row (D_r), the paper's reference for forget-set FID and R@1."""
    return next((r for r in records if r.method.lower().replace("-", "_") in DR_NAMES), None)


def set_order(records: Sequence[MethodResult]) -> list[str]:
    names = {s for r in records for s in r.sets}
    first = [s for s in ("forget", "retain", "implicit") if s in names]
    return first + sorted(names - set(first))


def decimals_for(col: Column, values: Sequence[float]) -> int:
    if col.decimals is not None:
        return col.decimals
    big = max((abs(v) for v in values), default=0.0)
    return 1 if big >= 100 else 2 if big >= 10 else 3


def fmt_stat(s: Stat | None, d: int) -> str:
    if s is None:
        return DASH
    out = f"{s.mean:.{d}f}"
    if s.half is not None:
        out += f" ± {s.half:.{d}f}"
    elif s.lo is not None and s.hi is not None:
        out += f" [{s.lo:.{d}f}, {s.hi:.{d}f}]"
    return out


def best_rows(values: Sequence[Stat | None], how: str | None, *, eligible: Sequence[bool], d: int,
              real: Stat | None = None) -> set[int]:
    """Indices of the best eligible value (ties at the shown precision all win); empty when not judged."""
    if how is NONE or (how in (REAL, DR) and real is None):
        return set()
    scores = {}
    for i, (v, ok) in enumerate(zip(values, eligible)):
        if v is None or not ok:
            continue
        m = round(v.mean, d)
        scores[i] = m if how == MIN else -m if how == MAX else round(abs(m - round(real.mean, d)), d)  # REAL, DR
    if not scores:
        return set()
    best = min(scores.values())
    return {i for i, s in scores.items() if math.isclose(s, best, abs_tol=10 ** -(d + 3))}


@dataclass
class Table:
    """One table as text cells: ``bold`` holds (row, column) of the best cells; ``footer`` is the ground-truth row."""

    header: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)
    footer: list[str] | None = None
    left: int = 1   # leading text columns (the rest are numbers, right-aligned)
    note: str = ""  # one line under the table


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table_markdown(t: Table) -> list[str]:
    """Markdown lines of ``t``: best cells in ``**bold**``, the footer's first cell in italics."""
    body = [[f"**{c}**" if (i, j) in t.bold else c for j, c in enumerate(row)] for i, row in enumerate(t.rows)]
    lines = [_row(t.header), _row(["---"] * t.left + ["---:"] * (len(t.header) - t.left))]
    lines += [_row(b) for b in body]
    if t.footer is not None:
        lines.append(_row([f"*{t.footer[0]}*"] + t.footer[1:]))
    if t.note:
        lines += ["", t.note]
    return lines


def set_table(records: Sequence[MethodResult], set_name: str, reading: str = "safety") -> Table:
    """One set's table: a row per method, then the ground-truth row."""
    cols = [c for c in COLUMNS if any(r.stat(set_name, c.key) or c.key in r.not_finite.get(set_name, ())
                                      for r in records)]
    ref = next((r.reference[set_name] for r in records if r.reference.get(set_name)), {})
    dr = dr_record(records)
    eligible = [not is_bound(r) for r in records]
    forgetish = set_name.startswith(FORGET_LIKE)
    t = Table(header=["Method", "N"], left=2,
              rows=[[r.label + (" †" if is_bound(r) else ""), str(r.n.get(set_name, DASH))] for r in records])
    ref_cells = ["Ground truth", str(next((r.n[set_name] for r in records if set_name in r.n), DASH))]
    other = "paper" if reading == "safety" else "safety"
    others = []
    for c in cols:
        how = direction(c, set_name, reading)
        vals = [r.stat(set_name, c.key) for r in records]
        d = decimals_for(c, [v.mean for v in vals if v] + ([ref[c.key].mean] if c.key in ref else []))
        title = c.title if not c.key.startswith("leakage") or forgetish else c.title.replace("Leakage", "False pos.")
        t.header.append(f"{title} {ARROWS[how]}".strip())
        target = (dr.stat(set_name, c.key) if dr else None) if how == DR else ref.get(c.key)
        best = best_rows(vals, how, eligible=eligible, d=d, real=target)
        t.bold |= {(i, len(t.header) - 1) for i in best}
        for i, v in enumerate(vals):
            t.rows[i].append(NAN_CELL if v is None and c.key in records[i].not_finite.get(set_name, ())
                             else fmt_stat(v, d))
        ref_cells.append(fmt_stat(ref.get(c.key), d) if c.key != "FID" else "0 (by definition)" if ref else DASH)
        if forgetish and c.key in PAPER_TOWARD_DR:  # the same column judged the other way
            how2 = direction(c, set_name, other)
            target2 = (dr.stat(set_name, c.key) if dr else None) if how2 == DR else ref.get(c.key)
            best2 = best_rows(vals, how2, eligible=eligible, d=d, real=target2)
            names = ", ".join(records[i].label for i in sorted(best2)) or "not judged (no D_r row)"
            others.append(f"{c.title} {ARROWS[how2]}: {names}")
    if ref:
        t.footer = ref_cells
    if others:
        t.note = f"Best under the {other} reading: " + "; ".join(others) + "."
    return t


PARTS = (("vq_name", "VQ-VAE"), ("name", "transformer"), ("res_name", "residual"))
METHOD_TITLES = {"lcr": "LCR", "uce": "UCE", "rece": "RECE", "finetune": "fine-tuning", "ft": "fine-tuning",
                 "fine_tuning": "fine-tuning", "taskvec_static": "task vector (Static)",
                 "taskvec_gated": "task vector (Gated)", "esd": "ESD"}
VQ_METHODS = ("lcr",)   # edits the VQ-VAE's codebook only: the transformers are the original's


def model_cell(r: MethodResult, records: Sequence[MethodResult]) -> str:
    """What the row's model is: for an edit, which parts were edited, by what, on which original model.

    The parts are those whose run differs from the original row's (VQ-VAE, transformer, residual), e.g. "VQ-VAE
    edited by LCR (lcr_violence), on t2m_tiny"; without an original row, LCR's VQ-VAE alone. Bounds and unknown
    methods keep their run name.
    """
    info = r.model_info
    name = r.model or DASH
    if is_bound(r) or not info.get("name"):
        return name
    m = r.method.lower().replace("-", "_")
    orig = next((o for o in records if o.method.lower() == "original" and o.model_info.get("name")), None)
    if orig is not None:
        base = orig.model_info
        changed = [(title, info.get(k)) for k, title in PARTS if info.get(k) and base.get(k) and info[k] != base[k]]
        on = base.get("name")
    elif m in VQ_METHODS and info.get("vq_name"):
        changed, on = [("VQ-VAE", info["vq_name"])], info.get("name")
    else:
        return name
    if not changed:
        return name
    runs = ", ".join(dict.fromkeys(v for _, v in changed))
    what = " + ".join(t for t, _ in changed)
    return f"{what} edited by {METHOD_TITLES.get(m, r.method)} ({runs}), on {on}"


def summary_table(records: Sequence[MethodResult]) -> Table:
    """Columns upstream lacks: ground-truth leakage (forget, implicit, retain false positives), retain FID and R@3
    (the quality a reader looks for first), the edit's time and the evaluation's."""
    spec = [("forget", "leakage", "Leakage forget ↓", MIN, 3),
            ("forget", "leakage_kinematic", "Leakage forget (kinematic) ↓", MIN, 3),
            ("implicit", "leakage", "Leakage implicit ↓", MIN, 3),
            ("retain", "leakage", "False pos. retain ↓", MIN, 3), ("retain", "FID", "FID retain ↓", MIN, None),
            ("retain", "R_precision_top3", "R@3 retain ↑", MAX, 3)]
    spec = [s for s in spec if any(r.stat(s[0], s[1]) for r in records)]
    eligible = [not is_bound(r) for r in records]
    timing = [(MIN, "Edit time (s) ↓", [r.edit_time_s for r in records]),
              (NONE, "Eval time (s)", [r.wall_time_s for r in records])]
    timing = [t for t in timing if any(v is not None for v in t[2])]
    t = Table(header=["Method", "Model"] + [s[2] for s in spec] + [x[1] for x in timing], left=2,
              rows=[[r.label + (" †" if is_bound(r) else ""), model_cell(r, records)] for r in records])
    for set_name, key, _, how, dec in spec:
        vals = [r.stat(set_name, key) for r in records]
        d = dec if dec is not None else decimals_for(COLUMNS[0], [v.mean for v in vals if v])
        j = len(t.rows[0])
        t.bold |= {(i, j) for i in best_rows(vals, how, eligible=eligible, d=d)}
        for i, v in enumerate(vals):
            t.rows[i].append(NAN_CELL if v is None and key in records[i].not_finite.get(set_name, ())
                             else fmt_stat(v, d))
    for how, _, secs in timing:
        times = [Stat(v) if v is not None else None for v in secs]
        j = len(t.rows[0])
        t.bold |= {(i, j) for i in best_rows(times, how, eligible=eligible, d=1)}
        for i, x in enumerate(times):
            t.rows[i].append(fmt_stat(x, 1))
    return t


CAPTION = (
    "Arrows give the direction each column is judged in, per set: ↓ lower is better, ↑ higher is better, → closer to "
    "the ground-truth row is better; a column without an arrow is not judged. On the **retain** set a method should "
    "match the original model's quality (FID ↓, R-precision ↑, MM-Dist ↓). On the **forget** set (and the implicit "
    "prompts) success means *not* reproducing the concept: FID ↑ (far from the real violent motions), R-precision ↓ "
    "and MM-Dist ↑ (the motion no longer matches the violent text), MM-Safe ↓ (close to the caption with its violent "
    "words masked), leakage ↓ (fraction of generations the ground-truth action classifier flags; on the retain set "
    "this is the false-positive rate; *kinematic*: the fraction the stated joint-speed rules of src/eval/kinematic.py "
    "flag). {reading} Cells are mean ± 95% interval over repeats (1.96·σ/√R), or "
    "[lo, hi] when only a bootstrap/Wilson range is recorded. The best competing value per column is **bold** (ties at the shown precision "
    "all bold); rows marked † (original model, D_r) are bounds and are not ranked. *Ground truth* evaluates the real "
    "motions with the same evaluator (its FID is 0 by definition). N is the number of evaluated items per repeat. "
    "Eval time is the evaluation's wall time over all sets (not judged: it measures the generator, not the edit); edit "
    "time, when recorded, is the unlearning edit itself.")
READING_TEXT = {
    "safety": "Reading: **safety** (forget-set FID ↑ and R@1 ↓, away from the original model); the paper instead "
              "reads them toward D_r (`--reading paper`), and the line under the forget table names that best.",
    "paper": "Reading: **paper** (forget-set FID and R@1 →D_r: closest to the retain-only model D_r, as the paper's "
             "Table 1); the line under the forget table names the best under the safety reading (FID ↑, R@1 ↓).",
}


def caption(reading: str = "safety") -> str:
    """The tables' caption, naming the reading that decided the bold cells."""
    return CAPTION.format(reading=READING_TEXT[reading])


METHOD_ORDER = ("original", "base", "pretrained", "dr", "d_r", "retrain", "retrained", "oracle", "finetune", "ft",
                "fine_tuning", "uce", "rece", "lcr", "esd", "taskvec_static", "taskvec_gated")


def order_records(records: Sequence[MethodResult]) -> list[MethodResult]:
    """The paper's row order: original, D_r, fine-tuning, UCE, RECE, LCR, then ESD and the task vectors (Static,
    Gated); anything else after, by label."""
    def key(r: MethodResult):
        m = r.method.lower().replace("-", "_")
        return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), r.label)
    return sorted(records, key=key)


def _groups(records: Sequence[MethodResult]) -> dict[tuple[str, str, str], list[MethodResult]]:
    groups: dict[tuple[str, str, str], list[MethodResult]] = {}
    for r in order_records(records):
        groups.setdefault(r.group, []).append(r)
    return groups


def _group_title(dataset: str, concept: str, family: str) -> str:
    return dataset + (f" · {family}" if family else "") + (f" · forgetting “{concept}”" if concept != "?" else "")


def report_tables(records: Sequence[MethodResult], reading: str = "safety") -> list[tuple[str, list[tuple[str, Table]]]]:
    """Per (dataset, concept, family) group: its title and its (heading, table) pairs, summary first."""
    out = []
    for key, recs in _groups(records).items():
        tables = [("Summary", summary_table(recs))]
        tables += [(SET_TITLES.get(s, s), set_table(recs, s, reading)) for s in set_order(recs)]
        out.append((_group_title(*key), tables))
    return out


def render_markdown(records: Sequence[MethodResult], *, run_dir: Path, images: Sequence[tuple[str, str]] = (),
                    videos: Sequence[tuple[str, str, str | None]] = (), notes: Sequence[str] = (),
                    reading: str = "safety") -> str:
    """The whole report.md: per (dataset, model) group a summary table and one table per set, then plots, videos."""
    out = [f"# Results: {run_dir.name}", ""]
    groups = _groups(records)
    for (title, tables), recs in zip(report_tables(records, reading), groups.values()):
        reps = sorted({r.repeats for r in recs if r.repeats})
        out += [f"## {title}", ""]
        if reps:
            out += [f"{len(recs)} methods, {', '.join(map(str, reps))} repeats.", ""]
        for heading, t in tables:
            out += [f"### {heading}", ""] + table_markdown(t) + [""]
    out += [caption(reading), ""]
    out += ["Sources: " + ", ".join(sorted({f"`{_rel(r.source, run_dir)}`" for r in records})), ""]
    if images:
        out += ["## Plots", ""]
        for title, rel in images:
            out += [f"**{title}**", "", f"![{title}]({rel})", ""]
    if videos:
        out += ["## Animations", "", "Original model next to each method, same prompt, length and random seed. "
                "Where the evaluation used a ground-truth action classifier, each panel's bottom strip is red on the "
                "frames it calls the forgotten concept (a 2 s window centred on the frame), and a red badge shows on "
                "those frames.", ""]
        for prompt, rel, still in videos:
            text = md_escape(prompt)  # a prompt is plain text, never markdown or HTML
            link = f"[{text}]({rel})"
            out += [f"- {link}" + (f"<br>![{text}]({still})" if still else "")]
        out += [""]
    if notes:
        out += ["## Notes", ""] + [f"- {md_escape(n)}" for n in notes] + [""]
    return "\n".join(out).rstrip("\n") + "\n"


_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>$~&")


def md_escape(text: str) -> str:
    """``text`` as literal markdown: every character markdown or HTML could read as markup is backslash-escaped, and
    line breaks become spaces (a prompt cannot open a heading, a link, a table cell or a script tag)."""
    flat = " ".join(str(text).split())
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in flat)


def _rel(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.name
