"""One table over several concepts: concept x method, the columns that say whether forgetting worked and what it
cost (ground-truth leakage on the forget set and the implicit prompts, false positives on the retain set, retain
FID and R@3).

``concept_table({concept: records})`` builds the :class:`~src.report.tables.Table` (rows grouped by concept in the
order given, methods in the paper's order within each); the best cell of each column is bolded within each concept
(bounds, the original model and D_r, are shown with † and never bolded). :func:`render_concepts` writes it as
Markdown and :func:`src.report.latex.table_latex` as booktabs LaTeX, from the same cells.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .load import MethodResult
from .tables import COLUMNS, DASH, MAX, MIN, Table, best_rows, decimals_for, fmt_stat, is_bound, order_records

# (set, metric key in metrics.json, header, direction, fixed decimals or None)
CONCEPT_COLUMNS = (("forget", "leakage", "Leakage forget ↓", MIN, 3),
                   ("implicit", "leakage", "Leakage implicit ↓", MIN, 3),
                   ("retain", "leakage", "False pos. retain ↓", MIN, 3),
                   ("retain", "FID", "FID retain ↓", MIN, None),
                   ("retain", "R_precision_top3", "R@3 retain ↑", MAX, 3))

NOTE = ("Leakage: fraction of generations the ground-truth action classifier flags as the concept (forget set, "
        "implicit prompts without the concept's words); false positives: the same on the retain set. Bold: best per "
        "concept; † bounds (original model, retain-only D_r), never bolded. — = not measured.")


def concept_table(results: Mapping[str, Sequence[MethodResult]]) -> Table:
    """Rows (concept, method) for each concept in ``results``' order; columns :data:`CONCEPT_COLUMNS`."""
    t = Table(header=["Concept", "Method"] + [c[2] for c in CONCEPT_COLUMNS], rows=[], left=2, note=NOTE)
    for concept, records in results.items():
        recs = order_records(records)
        first = len(t.rows)
        t.rows += [[concept, r.label + (" †" if is_bound(r) else "")] for r in recs]
        eligible = [not is_bound(r) for r in recs]
        for j, (set_name, key, _, how, dec) in enumerate(CONCEPT_COLUMNS, start=2):
            vals = [r.stat(set_name, key) for r in recs]
            d = dec if dec is not None else decimals_for(COLUMNS[0], [v.mean for v in vals if v])
            t.bold |= {(first + i, j) for i in best_rows(vals, how, eligible=eligible, d=d)}
            for i, v in enumerate(vals):
                t.rows[first + i].append(fmt_stat(v, d) if v is not None else DASH)
    return t


def render_concepts(results: Mapping[str, Sequence[MethodResult]], *, title: str, intro: str = "") -> str:
    """The Markdown page: a heading, an optional line, the table and its note."""
    from .tables import table_markdown

    lines = [f"# {title}", ""] + ([intro, ""] if intro else []) + table_markdown(concept_table(results))
    return "\n".join(lines) + "\n"
