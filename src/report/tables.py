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
============  ==========================  ==========================================================================

The paper judges forget-set FID and R@1 as "closer to the retrained D_r model"; without a D_r run in every results
folder we use the directions above, and D_r (when present) is a row to compare against. Rows of the original model and
of D_r are bounds, not competitors: they are shown (marked †) but never bolded.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .load import MethodResult, Stat

MIN, MAX, REAL, NONE = "min", "max", "real", None
ARROWS = {MIN: "↓", MAX: "↑", REAL: "→", NONE: ""}


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


def direction(col: Column, set_name: str) -> str | None:
    return col.forget if set_name.startswith(FORGET_LIKE) else col.retain


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
    if how is NONE or (how == REAL and real is None):
        return set()
    scores = {}
    for i, (v, ok) in enumerate(zip(values, eligible)):
        if v is None or not ok:
            continue
        m = round(v.mean, d)
        scores[i] = m if how == MIN else -m if how == MAX else round(abs(m - round(real.mean, d)), d)
    if not scores:
        return set()
    best = min(scores.values())
    return {i for i, s in scores.items() if math.isclose(s, best, abs_tol=10 ** -(d + 3))}


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def set_table(records: Sequence[MethodResult], set_name: str) -> list[str]:
    """Markdown lines of one set's table: a row per method, then the ground-truth row."""
    cols = [c for c in COLUMNS if any(r.stat(set_name, c.key) or c.key in r.not_finite.get(set_name, ())
                                      for r in records)]
    ref = next((r.reference[set_name] for r in records if r.reference.get(set_name)), {})
    eligible = [not is_bound(r) for r in records]
    forgetish = set_name.startswith(FORGET_LIKE)
    header = ["Method", "N"]
    body = [[r.label + (" †" if is_bound(r) else ""), str(r.n.get(set_name, DASH))] for r in records]
    ref_cells = ["Ground truth", str(next((r.n[set_name] for r in records if set_name in r.n), DASH))]
    for c in cols:
        how = direction(c, set_name)
        vals = [r.stat(set_name, c.key) for r in records]
        d = decimals_for(c, [v.mean for v in vals if v] + ([ref[c.key].mean] if c.key in ref else []))
        title = c.title if c.key != "leakage" or forgetish else "False pos."
        header.append(f"{title} {ARROWS[how]}".strip())
        best = best_rows(vals, how, eligible=eligible, d=d, real=ref.get(c.key))
        for i, v in enumerate(vals):
            cell = NAN_CELL if v is None and c.key in records[i].not_finite.get(set_name, ()) else fmt_stat(v, d)
            body[i].append(f"**{cell}**" if i in best else cell)
        ref_cells.append(fmt_stat(ref.get(c.key), d) if c.key != "FID" else "0 (by definition)" if ref else DASH)
    lines = [_row(header), _row(["---"] + ["---:"] * (len(header) - 1))]
    lines += [_row(b) for b in body]
    if ref:
        lines.append(_row([f"*{ref_cells[0]}*"] + ref_cells[1:]))
    return lines


PARTS = (("vq_name", "VQ-VAE"), ("name", "transformer"), ("res_name", "residual"))
METHOD_TITLES = {"lcr": "LCR", "uce": "UCE", "rece": "RECE", "finetune": "fine-tuning", "ft": "fine-tuning",
                 "fine_tuning": "fine-tuning"}
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


def summary_table(records: Sequence[MethodResult]) -> list[str]:
    """Columns upstream lacks: ground-truth leakage (forget, implicit, retain false positives), retain FID, wall time."""
    spec = [("forget", "leakage", "Leakage forget ↓", 3), ("implicit", "leakage", "Leakage implicit ↓", 3),
            ("retain", "leakage", "False pos. retain ↓", 3), ("retain", "FID", "FID retain ↓", None)]
    spec = [s for s in spec if any(r.stat(s[0], s[1]) for r in records)]
    eligible = [not is_bound(r) for r in records]
    timing = [(NONE, "Eval time (s)", [r.wall_time_s for r in records]),
              (MIN, "Edit time (s) ↓", [r.edit_time_s for r in records])]
    timing = [t for t in timing if any(v is not None for v in t[2])]
    header = ["Method", "Model"] + [s[2] for s in spec] + [t[1] for t in timing]
    body = [[r.label + (" †" if is_bound(r) else ""), model_cell(r, records)] for r in records]
    for set_name, key, _, dec in spec:
        vals = [r.stat(set_name, key) for r in records]
        d = dec if dec is not None else decimals_for(COLUMNS[0], [v.mean for v in vals if v])
        best = best_rows(vals, MIN, eligible=eligible, d=d)
        for i, v in enumerate(vals):
            cell = NAN_CELL if v is None and key in records[i].not_finite.get(set_name, ()) else fmt_stat(v, d)
            body[i].append(f"**{cell}**" if i in best else cell)
    for how, _, secs in timing:
        times = [Stat(v) if v is not None else None for v in secs]
        best = best_rows(times, how, eligible=eligible, d=1)
        for i, t in enumerate(times):
            cell = fmt_stat(t, 1)
            body[i].append(f"**{cell}**" if i in best else cell)
    return [_row(header), _row(["---", "---"] + ["---:"] * (len(header) - 2))] + [_row(b) for b in body]


CAPTION = (
    "Arrows give the direction each column is judged in, per set: ↓ lower is better, ↑ higher is better, → closer to "
    "the ground-truth row is better; a column without an arrow is not judged. On the **retain** set a method should "
    "match the original model's quality (FID ↓, R-precision ↑, MM-Dist ↓). On the **forget** set (and the implicit "
    "prompts) success means *not* reproducing the concept: FID ↑ (far from the real violent motions), R-precision ↓ "
    "and MM-Dist ↑ (the motion no longer matches the violent text), MM-Safe ↓ (close to the caption with its violent "
    "words masked), leakage ↓ (fraction of generations the ground-truth action classifier flags; on the retain set "
    "this is the false-positive rate). The paper instead reads forget-set FID and R@1 as \"closer to D_r\"; compare "
    "with the D_r row when present. Cells are mean ± 95% interval over repeats (1.96·σ/√R), or [lo, hi] when only a "
    "bootstrap/Wilson range is recorded. The best competing value per column is **bold** (ties at the shown precision "
    "all bold); rows marked † (original model, D_r) are bounds and are not ranked. *Ground truth* evaluates the real "
    "motions with the same evaluator (its FID is 0 by definition). N is the number of evaluated items per repeat. "
    "Eval time is the evaluation's wall time over all sets (not judged: it measures the generator, not the edit); edit "
    "time, when recorded, is the unlearning edit itself.")


METHOD_ORDER = ("original", "base", "pretrained", "dr", "d_r", "retrain", "retrained", "oracle", "finetune", "ft",
                "fine_tuning", "uce", "rece", "lcr")


def order_records(records: Sequence[MethodResult]) -> list[MethodResult]:
    """The paper's row order: original, D_r, fine-tuning, UCE, RECE, LCR; anything else after, by label."""
    def key(r: MethodResult):
        m = r.method.lower().replace("-", "_")
        return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), r.label)
    return sorted(records, key=key)


def render_markdown(records: Sequence[MethodResult], *, run_dir: Path, images: Sequence[tuple[str, str]] = (),
                    videos: Sequence[tuple[str, str, str | None]] = (), notes: Sequence[str] = ()) -> str:
    """The whole report.md: per (dataset, model) group a summary table and one table per set, then plots, videos."""
    out = [f"# Results: {run_dir.name}", ""]
    groups: dict[tuple[str, str, str], list[MethodResult]] = {}
    for r in order_records(records):
        groups.setdefault(r.group, []).append(r)
    for (dataset, concept, family), recs in groups.items():
        reps = sorted({r.repeats for r in recs if r.repeats})
        head = f"## {dataset}" + (f" · {family}" if family else "") + (f" · forgetting “{concept}”"
                                                                        if concept != "?" else "")
        out += [head, ""]
        if reps:
            out += [f"{len(recs)} methods, {', '.join(map(str, reps))} repeats.", ""]
        out += ["### Summary", ""] + summary_table(recs) + [""]
        for s in set_order(recs):
            out += [f"### {SET_TITLES.get(s, s)}", ""] + set_table(recs, s) + [""]
    out += [CAPTION, ""]
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
