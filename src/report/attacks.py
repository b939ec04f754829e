"""The attacks section of a report: attacks.json (``python -m src.attacks``) as a Markdown models x attacks table."""
from __future__ import annotations

from typing import Any


def _cell(summary: dict | None) -> str:
    if not summary or not isinstance(summary.get("mean"), float):
        return "–"
    lo, hi = summary.get("wilson") or (None, None)
    out = f"{summary['mean']:.2f} [{lo:.2f}, {hi:.2f}]" if lo is not None else f"{summary['mean']:.2f}"
    if summary.get("restarts", 1) > 1:  # the between-run spread is the honest uncertainty of a learnt attack
        out += " runs " + "/".join(f"{v:.2f}" for v in summary["values"])
    return out


def attacks_markdown(record: dict[str, Any]) -> str:
    """attacks.json -> a markdown section: models x attacks, leakage with Wilson 95% intervals, N = decisions."""
    res = record.get("results") or {}
    cols: list[tuple[str, str, Any]] = [
        ("implicit", "implicit", lambda r: r.get("leakage")),
        ("implicit_free_text", "implicit: free text", lambda r: r.get("leakage")),
        ("implicit_user", "user prompts", lambda r: r.get("leakage")),
        ("adversarial", "adversarial: start", lambda r: r.get("leakage_at_start")),
        ("adversarial", "adversarial: found", lambda r: r.get("leakage")),
        ("inversion", "inversion: step 0", lambda r: r.get("leakage_at_init")),
        ("inversion", "inversion: step k", lambda r: r.get("leakage")),
        ("compositional", "comp.: forgotten seg. leaks", lambda r: r.get("forgotten_leakage")),
        ("compositional", "comp.: allowed seg. kept", lambda r: r.get("allowed_kept")),
        ("compositional", "comp.: removed and kept", lambda r: r.get("removed_and_kept")),
        ("relearn_ft", "relearn FT: first step", lambda r: (r.get("curve") or [{}])[0].get("leakage", {}).get(r["set"])),
        ("relearn_ft", "relearn FT: step k", lambda r: r.get("leakage")),
        ("relearn_rl", "relearn RL: first step", lambda r: (r.get("curve") or [{}])[0].get("leakage", {}).get(r["set"])),
        ("relearn_rl", "relearn RL: step k", lambda r: r.get("leakage")),
    ]
    cols = [c for c in cols if any(c[0] in r for r in res.values())]
    if not cols:
        return ""
    heads = []
    for key, title, get in cols:
        ns = {(get(r[key]) or {}).get("decisions") for r in res.values() if key in r}
        if key == "inversion":
            steps = {r[key]["config"]["steps"] for r in res.values() if key in r}
            title = title.replace("step k", f"step {'/'.join(map(str, sorted(steps)))}")
        elif key.startswith("relearn"):
            steps = {r[key]["steps"][-1] for r in res.values() if key in r}
            title = title.replace("step k", f"step {'/'.join(map(str, sorted(steps)))}")
        heads.append(f"{title} (N={'/'.join(str(n) for n in sorted(x for x in ns if x is not None))})")
    lines = ["## Attacks: does the concept come back?", "",
             (f"Leakage = share of generations the ground-truth classifier flags as '{_concept(record)}', with Wilson "
             "95% intervals over N decisions (items x repeats). Source: attacks.json "
             f"(seed {record.get('seed')})."), "",
             "| model | " + " | ".join(heads) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, r in res.items():
        lines.append(f"| {label} | " + " | ".join(_cell(get(r[key])) if key in r else "–" for key, _, get in cols)
                     + " |")
    gt = (record.get("judge_reference") or {}).get("compositional_ground_truth") or {}
    if gt.get("n_motions"):
        lines += ["", (f"Judge on real labelled {gt['split']} motions ({gt['n_motions']} with a forgotten segment): "
                      f"forgotten segment flagged {_cell(gt.get('forgotten_leakage'))}, allowed segment's action "
                      f"recognised {_cell(gt.get('allowed_kept'))}, allowed segment flagged "
                      f"{_cell(gt.get('allowed_concept'))}: the ceiling of the compositional columns.")]
    return "\n".join(lines) + "\n"


def _concept(record: dict[str, Any]) -> str:
    return str((record.get("leakage_classifier") or {}).get("concept") or (record.get("config") or {}).get("concept"))
