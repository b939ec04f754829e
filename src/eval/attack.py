"""Does the forgotten concept come back? Run the attacks of src/attacks on each model; write results/<run>/attacks.json.

    python -m src.eval.attack --dataset_name synth --concept violence \\
        --models original=t2m_synth,uce=t2m_synth_uce+res=t2m_synth_uce_res,lcr=t2m_synth+vq=rvq_synth_lcr

A model spec is ``label=NAME[:CKPT][+vq=NAME][+res=NAME[:CKPT]|+res=none]``: NAME is the masked-transformer run
folder under checkpoints/<dataset>/, CKPT a file in its model/ folder (or a path); the VQ defaults to the transformer's
own vq_name (opt.txt) and the residual transformer to --res_name. Attacks: implicit (synth's implicit_prompts.json and
--prompts FILE), adversarial (PGD in the conditioning space), inversion (textual inversion from --shots forget
motions), compositional (prompts.json's compositional prompts, per segment). Ground truth: synth's action classifier.
Schema of attacks.json: see ATTACKS_SCHEMA below.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.common.errors import HmuError, cli

log = logging.getLogger(__name__)

ATTACKS = ("implicit", "adversarial", "inversion", "compositional")
SCHEMA = "hmu.attacks/1"
ATTACKS_FILE = "attacks.json"
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m src.eval.attack", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("models")
    g.add_argument("--dataset_name", default="synth", help="dataset name (ground truth needs synth)")
    g.add_argument("--concept", "--split_name", dest="concept", default="violence", help="the forgotten concept")
    g.add_argument("--models", required=True,
                   help="comma-separated label=NAME[:CKPT][+vq=NAME][+res=NAME[:CKPT]|+res=none]")
    g.add_argument("--ckpt", default="net_best_fid.tar", help="default masked-transformer checkpoint file in <NAME>/model/")
    g.add_argument("--res_name", default="tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2",
                   help="default residual-transformer run folder ('none': base layer only)")
    g.add_argument("--res_ckpt", default="net_best_fid.tar", help="default residual-transformer checkpoint file")
    g.add_argument("--cond_scale", type=float, default=None, help="classifier-free guidance scale (default: src.gen's)")
    g.add_argument("--time_steps", type=int, default=None, help="mask-predict iterations (default: src.gen's)")
    g.add_argument("--clip_path", default=None, help="CLIP weights file (models with text_encoder=clip)")
    g = p.add_argument_group("attacks")
    g.add_argument("--attacks", default=",".join(ATTACKS), help=f"comma-separated subset of {', '.join(ATTACKS)}")
    g.add_argument("--prompts", default=None,
                   help="extra implicit prompt file (.txt: one a line, optional '#frames'; .json: list)")
    g.add_argument("--steps", type=int, default=50, help="gradient steps of the adversarial and inversion attacks")
    g.add_argument("--repeats", type=int, default=3, help="generations per prompt (implicit, compositional)")
    g.add_argument("--seed", type=int, default=0, help="seed of every draw (same seed -> same JSON numbers)")
    g.add_argument("--rho", type=float, default=1.0,
                   help="adversarial radius in units of the median nearest-neighbour distance between real prompts")
    g.add_argument("--samples", type=int, default=8, help="adversarial: generations judged per found embedding")
    g.add_argument("--shots", type=int, default=8, help="inversion: forget training motions to learn from")
    g.add_argument("--restarts", type=int, default=3,
                   help="inversion: independent runs (each its own shots and seed stream); leakage pools them and its "
                        "ci95/bootstrap are between runs (one learnt embedding is one piece of evidence)")
    g.add_argument("--inv_samples", type=int, default=32, help="inversion: generations judged per curve point")
    g.add_argument("--curve_points", type=int, default=4, help="inversion: judged steps (evenly spaced, plus 0)")
    g.add_argument("--lr", type=float, default=0.02, help="inversion: Adam learning rate")
    g.add_argument("--inversion_space", choices=("auto", "word", "cond"), default="auto",
                   help="inversion vector space: pseudo-word (embedded encoder) or conditioning features; auto = word "
                        "when the encoder allows")
    g.add_argument("--template", default="a person {}", help="inversion caption template ({} = the new token)")
    g.add_argument("--init_word", default="walk",
                   help="inversion: the new token starts as this word (a neutral allowed action, so step 0 is a "
                        "concept-free baseline); 'mean' = the vocabulary's mean vector")
    g.add_argument("--max_reference", type=int, default=256,
                   help="adversarial: forget training motions whose embeddings define the objective")
    g.add_argument("--classifier", default=None, help="action classifier file (default: checkpoints/<ds>/"
                                                       "action_classifier/model/classifier.tar)")
    g = p.add_argument_group("output")
    g.add_argument("--run_name", default=None, help="results/<run_name>/attacks.json (default: "
                                                   "<dataset>_attacks_<concept>_s<seed>)")
    g.add_argument("--force", action="store_true", help="overwrite an existing attacks.json")
    g = p.add_argument_group("locations and device")
    for flag in ("checkpoints_dir", "dataset_dir", "glove_dir", "results_dir"):
        g.add_argument(f"--{flag}", default=None, help=f"override the {flag.split('_')[0]} folder")
    g.add_argument("--gpu_id", type=int, default=-1, help="GPU index, -1 for CPU")
    g.add_argument("--device", default=None, help="torch device string; overrides --gpu_id")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


# ---------------------------------------------------------------------------------------------------- model specs
@dataclass(frozen=True)
class ModelSpec:
    label: str
    name: str
    ckpt: str
    vq_name: str | None
    res_name: str | None
    res_ckpt: str


def _name_ckpt(text: str, default_ckpt: str, where: str) -> tuple[str, str]:
    name, _, ckpt = text.partition(":")
    if not name.strip():
        raise HmuError(f"--models: empty run name in '{where}'")
    return name.strip(), (ckpt.strip() or default_ckpt)


def parse_models(text: str, *, ckpt: str = "net_best_fid.tar", res_name: str | None = None,
                 res_ckpt: str = "net_best_fid.tar") -> list[ModelSpec]:
    """``label=NAME[:CKPT][+vq=NAME][+res=NAME[:CKPT]|+res=none],...`` -> specs (labels unique)."""
    out: list[ModelSpec] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        label, eq, rest = item.partition("=")
        if not eq or not label.strip() or not rest.strip():
            raise HmuError(f"--models: '{item}' is not label=NAME")
        label = label.strip()
        if any(m.label == label for m in out):
            raise HmuError(f"--models: label '{label}' given twice")
        parts = rest.split("+")
        name, ck = _name_ckpt(parts[0], ckpt, item)
        vq, res, rck = None, res_name, res_ckpt
        for mod in parts[1:]:
            key, eq, val = mod.partition("=")
            if key.strip() == "vq" and eq and ":" not in val:
                vq = _name_ckpt(val, "", item)[0]
            elif key.strip() == "res" and eq:
                res, rck = _name_ckpt(val, res_ckpt, item)
            else:
                raise HmuError(f"--models: bad modifier '+{mod}' in '{item}' (use +vq=NAME or +res=NAME[:CKPT])")
        if res is not None and res.lower() == "none":
            res = None
        out.append(ModelSpec(label, name, ck, vq, res, rck))
    if not out:
        raise HmuError("--models is empty")
    return out


def parse_attacks(text: str) -> list[str]:
    names = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in names if a not in ATTACKS]
    if bad or not names:
        raise HmuError(f"--attacks: unknown attack '{bad[0] if bad else text}' (choose from {', '.join(ATTACKS)})")
    return list(dict.fromkeys(names))


def load_target(paths, dataset_name: str, spec: ModelSpec, *, device, sampling: dict, clip_path: str | None = None):
    """A :class:`src.attacks.target.MoMaskTarget` around ``src.gen.load_generator`` (strict loads, no fall-back)."""
    from src.attacks.target import MoMaskTarget

    try:
        from src.gen import load_generator
    except ImportError as exc:
        raise HmuError(f"generation is not available: src/gen.py with load_generator() is missing ({exc})") from None
    gen = load_generator(dataset_name=dataset_name, name=spec.name, res_name=spec.res_name, vq_name=spec.vq_name,
                         checkpoints_dir=paths.checkpoints_dir, dataset_dir=paths.dataset_dir,
                         glove_dir=paths.glove(dataset_name), ckpt=spec.ckpt, res_ckpt=spec.res_ckpt, device=device,
                         clip_path=clip_path, **sampling)
    info = {"name": spec.name, "ckpt": spec.ckpt, "vq_name": spec.vq_name, "res_name": spec.res_name,
            "res_ckpt": spec.res_ckpt if spec.res_name else None,
            "text_encoder": type(gen.text_encoder).__name__, "sampling": gen.sampling()}
    return MoMaskTarget(gen), info


# ---------------------------------------------------------------------------------------------------- data
def _read_json(path: Path, what: str):
    if not path.is_file():
        raise HmuError(f"{what} not found: {path} (generate the dataset: python -m src.data.synth)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise HmuError(f"cannot read {what} {path}: {exc}") from None


def _prompts_from(objs: list, where: str, spec, concept: str | None = None) -> list:
    from src.attacks.common import Prompt, crop_lengths

    out = []
    for i, o in enumerate(objs):
        if not isinstance(o, dict) or "text" not in o or "length" not in o:
            raise HmuError(f"{where} [{i}] lacks text/length")
        if concept is not None and concept not in (o.get("concepts") or ()):
            continue
        n = crop_lengths([o["length"]], unit_length=spec.unit_length, max_length=spec.max_motion_length)[0]
        out.append(Prompt(o["text"], n, o.get("action"), tuple(o.get("concepts") or ()),
                          tuple(o.get("segments") or ())))
    return out


def segment_reference(folder, labels: dict, judge, concept: str, *, split: str, max_length: int, seed: int
                      ) -> dict[str, Any]:
    """The compositional scores of REAL motions of ``split`` with several labelled segments, one of them carrying
    ``concept``: how well the judge reads a window (the ceiling for forgotten_leakage / allowed_kept)."""
    from src.attacks.common import Prompt
    from src.attacks.compositional import score_segments
    from src.data.humanml3d import read_split

    motions = labels.get("motions", {})
    ids = [m for m in read_split(folder.root / f"{split}.txt")
           if len(motions.get(m, {}).get("segments") or ()) >= 2
           and any(concept in (s.get("concepts") or ()) for s in motions[m]["segments"])]
    if not ids:
        return {"split": split, "n_motions": 0}
    real = [folder.motion(m)[:max_length] for m in ids]
    prompts = [Prompt(m, len(x), None, (concept,), tuple(motions[m]["segments"])) for m, x in zip(ids, real)]
    out = score_segments(judge, prompts, [real], seed=seed)
    out.pop("per_prompt")
    return {"split": split, "n_motions": len(ids), **out}


def forget_train_ids(root: Path, labels: dict, concept: str) -> list[str]:
    """Training motions whose ground-truth labels hold ``concept`` (synth's labels.json)."""
    from src.data.humanml3d import read_split

    train = read_split(root / "train.txt")
    motions = labels.get("motions", {})
    return [m for m in train if concept in (motions.get(m, {}).get("concepts") or ())]


# ---------------------------------------------------------------------------------------------------- main
@cli
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    attacks = parse_attacks(args.attacks)
    specs = parse_models(args.models, ckpt=args.ckpt, res_name=args.res_name, res_ckpt=args.res_ckpt)
    for flag, v, lo in (("--steps", args.steps, 0), ("--repeats", args.repeats, 1), ("--samples", args.samples, 1),
                        ("--shots", args.shots, 1), ("--restarts", args.restarts, 1), ("--inv_samples", args.inv_samples, 1),
                        ("--curve_points", args.curve_points, 1), ("--max_reference", args.max_reference, 1)):
        if v < lo:
            raise HmuError(f"{flag} must be >= {lo}, got {v}")
    if args.rho <= 0 or args.lr <= 0:
        raise HmuError(f"--rho and --lr must be > 0 (got {args.rho}, {args.lr})")
    if args.prompts is not None and not Path(args.prompts).is_file():
        raise HmuError(f"--prompts file not found: {args.prompts}")

    from src.common.paths import Paths
    from src.data.spec import get_spec
    from src.eval.results import metrics_path

    spec = get_spec(args.dataset_name)
    if not spec.synthetic:
        raise HmuError(f"attacks are judged by ground truth, which only synth has (got --dataset_name {spec.name})")
    paths = Paths.default(checkpoints_dir=args.checkpoints_dir, dataset_dir=args.dataset_dir,
                          glove_dir=args.glove_dir, results_dir=args.results_dir)
    run = args.run_name or f"{spec.name}_attacks_{args.concept}_s{args.seed}"
    out = metrics_path(paths.results_dir, run).with_name(ATTACKS_FILE)
    from src.common.io import refuse_overwrite

    refuse_overwrite(out, args.force, what="results file")
    root = paths.data_root(spec.name)
    labels = _read_json(root / "labels.json", "labels")
    if args.concept not in labels.get("concepts", {}):
        raise HmuError(f"--concept '{args.concept}' is not in {root / 'labels.json'} "
                       f"(has: {', '.join(labels.get('concepts', {}))})")
    prompts_json = _read_json(root / "prompts.json", "prompts")
    implicit_json = _read_json(root / "implicit_prompts.json", "implicit prompts")
    from src.attacks.common import read_prompts

    user_prompts = read_prompts(args.prompts) if args.prompts else None
    if user_prompts:
        from src.data.prompt_check import check_prompts

        check_prompts([p.text for p in user_prompts], glove_dir=paths.glove(spec.name), what="--prompts prompt")
    return run_attacks(args, attacks, specs, paths, spec, root, labels, prompts_json, implicit_json, user_prompts,
                       out, run)


def run_attacks(args, attacks, specs, paths, spec, root, labels, prompts_json, implicit_json, user_prompts, out,
                run) -> int:
    import numpy as np
    import torch

    from src.attacks.adversarial import adversarial_attack
    from src.attacks.common import ClassifierJudge, crop_lengths, seed_int
    from src.attacks.compositional import compositional_attack
    from src.attacks.implicit import implicit_attack
    from src.attacks.inversion import cond_space, inversion_attack, pool_inversion, word_space
    from src.attacks.target import MotionEmbedder
    from src.common.device import resolve_device
    from src.data.humanml3d import HumanML3DFolder
    from src.eval.leakage import classifier_path
    from src.eval.loop import T2MEvaluator

    device = resolve_device(args.gpu_id, args.device)
    clf_path = Path(args.classifier) if args.classifier else classifier_path(paths.checkpoints_dir, spec.name)
    judge = ClassifierJudge.load(clf_path, args.concept)
    judge.classifier.to(device)
    implicit = _prompts_from([o for o in implicit_json if not o.get("free_text")], str(root / "implicit_prompts.json"),
                             spec, args.concept)
    # plain-English paraphrases outside synth's caption grammar (issue 15), reported as their own set
    free_text = _prompts_from([o for o in implicit_json if o.get("free_text")],
                              f"{root / 'implicit_prompts.json'} free_text", spec, args.concept)
    comp = _prompts_from(prompts_json.get("compositional", []), f"{root / 'prompts.json'} compositional", spec)
    forget_prompts = _prompts_from(prompts_json.get("forget", []), f"{root / 'prompts.json'} forget", spec,
                                   args.concept)
    if user_prompts:
        from src.attacks.common import Prompt

        user_prompts = [Prompt(p.text, n, p.action, p.concepts, p.segments) for p, n in
                        zip(user_prompts, crop_lengths([p.length for p in user_prompts], unit_length=spec.unit_length,
                                                       max_length=spec.max_motion_length))]
    folder = HumanML3DFolder(root)
    rng = np.random.default_rng([args.seed, 11])
    f_ids = forget_train_ids(root, labels, args.concept)
    if ("adversarial" in attacks or "inversion" in attacks) and not f_ids:
        raise HmuError(f"no training motion of {root} holds '{args.concept}' (labels.json + train.txt)")
    f_ids = [f_ids[i] for i in rng.permutation(len(f_ids))]
    evaluator = embedder = reference = real_texts = None
    if "adversarial" in attacks:
        if not forget_prompts:
            raise HmuError(f"prompts.json of {root} has no forget prompt of '{args.concept}' to start from")
        evaluator = T2MEvaluator.load(checkpoints_dir=paths.checkpoints_dir, dataset_name=spec.name,
                                      glove_dir=paths.glove(spec.name), device=device)
        embedder = MotionEmbedder.from_t2m(evaluator)
        ref_motions = [folder.motion(m) for m in f_ids[: args.max_reference]]
        reference = embedder.embed_motions(ref_motions)
        caps = sorted({c.text for m in folder.ids("train") for c in folder.captions(m)})
        caps = [caps[i] for i in np.random.default_rng([args.seed, 12]).permutation(len(caps))[:2000]]
        real_texts = sorted({*caps, *(p.text for p in implicit), *(p.text for p in comp),
                             *(o["text"] for k in ("forget", "retain") for o in prompts_json.get(k, []))})
    # restart r learns from its own shots: disjoint slices of the seeded permutation while there are enough
    shot_sets = []
    for r in range(args.restarts if "inversion" in attacks else 0):
        ids = [f_ids[(r * args.shots + j) % len(f_ids)] for j in range(min(args.shots, len(f_ids)))]
        shot_sets.append([folder.motion(m)[: spec.max_motion_length] for m in ids])

    judge_reference: dict[str, Any] = {}
    if "compositional" in attacks:
        judge_reference["compositional_ground_truth"] = segment_reference(
            folder, labels, judge, args.concept, split="test", max_length=spec.max_motion_length, seed=args.seed)
    results: dict[str, dict[str, Any]] = {}
    infos: dict[str, Any] = {}
    t_all = time.perf_counter()
    for mi, ms in enumerate(specs):
        sampling = {k: v for k, v in (("cond_scale", args.cond_scale), ("time_steps", args.time_steps))
                    if v is not None}
        target, info = load_target(paths, spec.name, ms, device=device, sampling=sampling, clip_path=args.clip_path)
        infos[ms.label] = info
        res: dict[str, Any] = {}
        for att in attacks:
            t0 = time.perf_counter()
            log.info("model %s: %s attack", ms.label, att)
            if att == "implicit":
                res["implicit"] = implicit_attack(target, judge, implicit, repeats=args.repeats, seed=args.seed,
                                                  name="implicit")
                if free_text:
                    res["implicit_free_text"] = implicit_attack(target, judge, free_text, repeats=args.repeats,
                                                                seed=args.seed, name="free_text")
                if user_prompts:
                    res["implicit_user"] = implicit_attack(target, judge, user_prompts, repeats=args.repeats,
                                                           seed=args.seed, name="user")
                    res["implicit_user"]["set_source"] = str(args.prompts)
            elif att == "adversarial":
                with torch.no_grad():
                    starts = target.encode_text([p.text for p in forget_prompts])
                    real = target.encode_text(real_texts)
                length = int(np.median([p.length for p in forget_prompts]))
                res["adversarial"] = adversarial_attack(
                    target, judge, embedder.embed, starts=starts, start_texts=[p.text for p in forget_prompts],
                    reference=reference.to(starts.device), real=real, length=length, steps=args.steps, rho=args.rho,
                    samples=args.samples, seed=args.seed)
            elif att == "inversion":
                space_name = args.inversion_space
                if space_name == "auto":
                    space_name = "word" if hasattr(target.text_encoder, "projection") else "cond"
                init_word = None if args.init_word == "mean" else args.init_word
                if space_name == "word":
                    space = word_space(target.text_encoder, template=args.template, init_word=init_word)
                else:
                    init_text = args.template.replace("{}", init_word or "").strip()
                    with torch.no_grad():
                        space = cond_space(target.encode_text([init_text])[0], init_text=init_text)
                ks = np.unique(np.linspace(0, args.steps, args.curve_points + 1).round().astype(int)).tolist()
                runs = [inversion_attack(target, judge, shots, space, steps=args.steps, checkpoints=ks, lr=args.lr,
                                         samples=args.inv_samples,
                                         seed=args.seed if r == 0 else seed_int(args.seed, 31, r))
                        for r, shots in enumerate(shot_sets)]
                res["inversion"] = pool_inversion(runs, seed=args.seed)
            elif att == "compositional":
                res["compositional"] = compositional_attack(target, judge, comp, repeats=args.repeats,
                                                            seed=args.seed)
            for k, v in res.items():
                if k.startswith(att):
                    v["timing_s"] = time.perf_counter() - t0
        results[ms.label] = res
        del target

    record = build_attack_record(
        run=run, seed=args.seed, config=vars(args), models=infos, results=results,
        evaluator=None if evaluator is None else {"key": evaluator.key},
        classifier={"path": str(clf_path), "concept": args.concept, "threshold": judge.threshold},
        judge_reference=judge_reference)
    record["timing_s"] = time.perf_counter() - t_all
    from src.eval.results import write_metrics

    write_metrics(out, record, force=args.force)
    from src.common.io import atomic_write_text

    atomic_write_text(out.with_suffix(".md"), attacks_markdown(record))
    print(format_table(record))
    print(f"attacks written to {out}")
    return 0


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


if __name__ == "__main__":
    raise SystemExit(main())
