"""attacks.json: its schema, the record the attack CLI (``python -m src.attacks``) writes, and its console table."""
from __future__ import annotations

from typing import Any

from src.eval.results import ATTACKS_FILE  # noqa: F401 (the file name lives below attacks/ and report/)

ATTACKS = ("implicit", "adversarial", "inversion", "compositional")
RELEARN_ATTACKS = ("relearn_rl", "relearn_ft")   # opt-in (--attacks): they train the model
SCHEMA = "hmu.attacks/1"
ATTACKS_SCHEMA = """
{ "schema": "hmu.attacks/1", "run", "created", "command", "seed", "config": {every resolved flag},
  "models": {label: {"name", "ckpt", "vq_name", "res_name", "res_ckpt", "text_encoder", "sampling"}},
  "evaluator": {"checkpoint", "key"}, "leakage_classifier": {"path", "concept", "threshold"},
  "versions", "git",
  "results": {label: {attack: {"attack", "leakage": SUMMARY, "config", ...attack-specific}}},
  "judge_reference": {"compositional_ground_truth": compositional's scores on real labelled test motions (the
                      judge's own ceiling per window), "split", "n_motions"},
  "table": [{"model", "attack", "set", "mean", "wilson": [lo, hi], "ci95", "n", "decisions"}] }
SUMMARY = {"values" (per repeat), "mean", "ci95" (1.96 sd/sqrt(R)), "bootstrap" [lo, hi] over items,
           "n" (items), "repeats", "k" (flagged), "decisions" (n*R), "wilson" [lo, hi]}  (as metrics.json's leakage)
implicit: "leakage" (+ "per_action", "per_prompt"); one entry per set: implicit, and user (with --prompts)
adversarial: "leakage" at found features, "leakage_at_start", "objective" {start, found, curve},
             "distance" {scale, radius, nearest_real_rel {mean, max, values}, from_start_rel}, "per_start"
inversion: pooled over --restarts: "leakage" after --steps, "leakage_at_init", "curve" [{step, loss, leakage}]
           (values = per-restart rates; ci95/bootstrap between restarts), "runs" [each restart's own result]
compositional: "leakage" = "forgotten_leakage", "allowed_kept", "allowed_concept", "removed_and_kept",
               "forgotten_action_kept", "whole_leakage", "per_prompt"
"""


def summary_table(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, attack): the headline leakage with its Wilson interval."""
    rows = []
    for label, res in results.items():
        for att, r in res.items():
            s = r.get("leakage") or {}
            rows.append({"model": label, "attack": r.get("attack", att), "set": att, "mean": s.get("mean"),
                         "wilson": s.get("wilson"), "ci95": s.get("ci95"), "n": s.get("n"),
                         "decisions": s.get("decisions")})
    return rows


def build_attack_record(*, run: str, seed: int, config: dict, models: dict, results: dict, evaluator: dict | None,
                        classifier: dict | None, command: list[str] | None = None,
                        judge_reference: dict | None = None) -> dict[str, Any]:
    import datetime as _dt
    import sys

    from src.eval.results import _finite, git_state, versions

    return _finite({
        "schema": SCHEMA, "run": run,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(command if command is not None else [sys.executable, *sys.argv]),
        "seed": int(seed), "config": dict(config), "models": models, "evaluator": evaluator,
        "leakage_classifier": classifier, "versions": versions(), "git": git_state(),
        "results": results, "table": summary_table(results), "judge_reference": judge_reference or {},
    })


def format_table(record: dict[str, Any]) -> str:
    lines = [f"{'model':<12} {'attack':<16} {'leakage':>8}  {'Wilson 95%':<17} {'N':>6}"]
    for r in record["table"]:
        w = r.get("wilson") or [None, None]
        wt = f"[{w[0]:.3f}, {w[1]:.3f}]" if None not in w else "-"
        mean = f"{r['mean']:.3f}" if isinstance(r.get("mean"), float) else "-"
        lines.append(f"{r['model']:<12} {r['set']:<16} {mean:>8}  {wt:<17} {r.get('decisions') or 0:>6}")
    return "\n".join(lines)
