"""``python -m src.cli.all_concepts synth kick,punch_jab_box_hit_beat,violence``: the quickstart's whole method set
(original, D_r, fine-tuning, UCE, RECE, LCR) forgetting each concept in turn, then one table concept x method.

    bash scripts/eval/all_concepts.sh synth kick,punch_jab_box_hit_beat,jump_leap_hop,throw,violence [--fast]

Each concept is ``python -m src.quickstart --concept <c>`` (its results in ``results/quickstart[_fast]_<c>/``,
violence's in the quickstart's own ``results/quickstart[_fast]/``): the data and the original models are shared, so
the first concept trains them (or finds them done) and every further one adds only its split, its unlearning runs
and their evaluations. Finished stages are skipped, so a rerun after an interruption continues. The table
(``results/all_concepts_<dataset>[_fast]/concepts.md``, rebuilt on every run, ``--collect_only`` to rebuild it
from the results alone) has one row per concept and method: leakage on the forget set and the implicit prompts,
false positives on the retain set, retain FID and R@3 (:mod:`src.report.concepts`).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from src.common.errors import HmuError, cli
from src.common.validate import POSITIVE
from src.config.command import DeviceOptions, Locations, config_parser, group, parse_config
from src.config.flags import opt

PROG = "python -m src.cli.all_concepts"


@dataclasses.dataclass(kw_only=True)
class AllConceptsConfig:
    """The quickstart's method set over several concepts, then one table concept x method."""

    pos_dataset: str | None = opt(None, flag="pos_dataset", nargs="?", metavar="DATASET",
                                  help="dataset (synth: the quickstart's; same as --dataset_name)")
    pos_concepts: str | None = opt(None, flag="pos_concepts", nargs="?", metavar="CONCEPTS",
                                   help="comma-separated concepts of assets/splits.json (same as --concepts)")
    dataset_name: str | None = opt(None, help="dataset (default synth)")
    concepts: str | None = opt(None, help="comma-separated concepts, e.g. kick,punch_jab_box_hit_beat,violence")
    fast: bool = opt(False, action="store_true", help="the quickstart's smoke-test settings for every concept")
    jobs: int | None = opt(None, range=POSITIVE, help="stages run side by side (the quickstart's --jobs)")
    seed: int = opt(0, help="seed of every stage")
    collect_only: bool = opt(False, action="store_true",
                             help="run nothing: rebuild the table from the concepts' existing results")
    out: str | None = opt(None, help="table file (default results/all_concepts_<dataset>[_fast]/concepts.md)")
    no_progress: bool = opt(False, action="store_true", help="no progress lines (HMU_PROGRESS=off for every stage)")
    device: DeviceOptions = group(DeviceOptions, only=("gpu_id",))
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "results_dir"))

    @property
    def dataset(self) -> str:
        return _pick(self.dataset_name, self.pos_dataset, "dataset") or "synth"

    @property
    def concept_list(self) -> list[str]:
        raw = _pick(self.concepts, self.pos_concepts, "concepts") or ""
        out = list(dict.fromkeys(c.strip() for c in raw.split(",") if c.strip()))
        if not out:
            raise HmuError("give the concepts, comma-separated (e.g. synth kick,punch_jab_box_hit_beat,violence)")
        return out

    def check(self) -> None:
        from src.common.datasets import get_spec
        from src.data.keywords import forget_keywords

        if get_spec(self.dataset).name != "synth":
            raise HmuError(f"all_concepts runs the quickstart's method set, which is synth's (got {self.dataset}); "
                           f"on another dataset run scripts/eval/{{lcr,rece_uce,t2m_unlearn}}.sh per concept")
        for c in self.concept_list:
            forget_keywords("synth", c)  # one line naming the known concepts

    def quickstart_argv(self, concept: str) -> list[str]:
        """The ``python -m src.quickstart`` flags that forget ``concept``."""
        w = self.where
        return ["--concept", concept, "--seed", str(self.seed), "--gpu_id", str(self.device.gpu_id),
                *(["--fast"] if self.fast else []), *(["--jobs", str(self.jobs)] if self.jobs else []),
                *(["--no_progress"] if self.no_progress else []),
                *(x for flag, v in (("--checkpoints_dir", w.checkpoints_dir), ("--dataset_dir", w.dataset_dir),
                                    ("--results_dir", w.results_dir)) if v for x in (flag, str(v)))]

    def run_name(self, concept: str) -> str:
        """The quickstart's results folder name for ``concept`` (its own default)."""
        from src.quickstart import QuickstartConfig

        return QuickstartConfig(fast=self.fast, concept=concept).results_name


def _pick(flag_value, positional, what: str):
    if flag_value is not None and positional is not None and flag_value != positional:
        raise HmuError(f"{what} given twice ('{positional}' and '{flag_value}')")
    return flag_value if flag_value is not None else positional


def build_parser() -> argparse.ArgumentParser:
    return config_parser(AllConceptsConfig, prog=PROG, doc=__doc__)


def collect(results_dir: Path, runs: dict[str, str]) -> dict[str, list]:
    """{concept: its method records} from ``results_dir/<run>/`` (records of another concept there are left out)."""
    from src.report.load import load_run

    out = {}
    for concept, run in runs.items():
        recs = [r for r in load_run(results_dir / run) if r.concept in (None, concept)]
        if not recs:
            raise HmuError(f"{results_dir / run} holds no evaluation of concept '{concept}'")
        out[concept] = recs
    return out


def run_all(cfg: AllConceptsConfig, *, run_concept: Callable[[list[str]], int] | None = None) -> Path:
    """Run (unless --collect_only) and tabulate every concept; returns the table's path. ``run_concept`` takes the
    quickstart's argv (default: :func:`src.quickstart.main`)."""
    from src.common.io import atomic_write_text
    from src.common.paths import Paths
    from src.report.concepts import render_concepts

    if run_concept is None:
        from src.quickstart import main as run_concept
    results = Paths.default(results_dir=cfg.where.results_dir).results_dir
    concepts = cfg.concept_list
    runs = {c: cfg.run_name(c) for c in concepts}
    if not cfg.collect_only:
        for i, c in enumerate(concepts, 1):
            print(f"[hmu] all_concepts: {i}/{len(concepts)} forgetting '{c}' -> {results / runs[c]}", flush=True)
            rc = run_concept(cfg.quickstart_argv(c))
            if rc:
                raise HmuError(f"the quickstart for concept '{c}' failed (exit {rc}); fix it and rerun: finished "
                               f"stages are skipped")
    table = collect(results, runs)
    out = Path(cfg.out) if cfg.out else results / f"all_concepts_{cfg.dataset}{'_fast' if cfg.fast else ''}" / \
        "concepts.md"
    intro = ("Each concept forgotten by every method of the quickstart on synth "
             f"({'--fast' if cfg.fast else 'full'} settings, seed {cfg.seed}); results in "
             + ", ".join(f"`{runs[c]}/`" for c in concepts) + ".")
    atomic_write_text(out, render_concepts(table, title=f"Forgetting each concept ({cfg.dataset})", intro=intro))
    return out


@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(AllConceptsConfig, argv, prog=PROG, doc=__doc__)
    out = run_all(cfg)
    print(f"[hmu] all_concepts: table of {len(cfg.concept_list)} concepts -> {out}", file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
