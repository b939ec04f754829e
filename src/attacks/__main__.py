"""Does the forgotten concept come back? Run the attacks of src/attacks on each model; write results/<run>/attacks.json.

    python -m src.attacks --dataset_name synth --concept violence \\
        --models original=t2m_synth,uce=t2m_synth_uce+res=t2m_synth_uce_res,lcr=t2m_synth+vq=rvq_synth_lcr

A model spec is ``label=NAME[:CKPT][+vq=NAME][+res=NAME[:CKPT]|+res=none]``: NAME is the masked-transformer run
folder under checkpoints/<dataset>/, CKPT a file in its model/ folder (or a path); the VQ defaults to the transformer's
own vq_name (opt.txt) and the residual transformer to --res_name. Attacks: implicit (synth's implicit_prompts.json and
--prompts FILE), adversarial (PGD in the conditioning space), inversion (textual inversion from --shots forget
motions), compositional (prompts.json's compositional prompts, per segment); opt-in re-learning
(src/attacks/relearn.py): relearn_ft (fine-tuning on --shots forget motions) and relearn_rl (RL post-training on the
training part of the forget prompts, TMR reward), leakage measured at --relearn_steps on the held-out forget prompts
and the implicit prompts.
Ground truth: synth's action classifier.
Schema of attacks.json: see src.attacks.record.ATTACKS_SCHEMA. ``python -m src.eval.attack`` is an alias.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.attacks.inputs import ModelSpec, _prompts_from, forget_train_ids, load_target, parse_models  # noqa: F401
from src.attacks.record import ATTACKS, ATTACKS_FILE, RELEARN_ATTACKS, build_attack_record, format_table
from src.common.errors import HmuError, cli
from src.common.run_names import help_default
from src.common.validate import NON_NEGATIVE, POSITIVE, Range, comma_choices
from src.config.command import (DeviceOptions, Locations, RunOptions, command_context, config_parser, flat_dict,
                                group, parse_config)
from src.config.flags import opt

log = logging.getLogger(__name__)

_STRICTLY_POSITIVE = Range(lo=0, lo_open=True)
PROG = "python -m src.attacks"


@dataclasses.dataclass(kw_only=True)
class AttackConfig:
    """Does the forgotten concept come back? Run the attacks of src/attacks on each model; write attacks.json."""

    # models
    dataset_name: str = opt("synth", help="dataset name (ground truth needs synth)")
    concept: str = opt("violence", aliases=("--split_name",), help="the forgotten concept")
    models: str = opt(None, required=True, help="comma-separated label=NAME[:CKPT][+vq=NAME][+res=NAME[:CKPT]|+res=none]")
    ckpt: str = opt("net_best_fid.tar", help="default masked-transformer checkpoint file in <NAME>/model/")
    res_name: str | None = opt(None, help="default residual-transformer run folder ('none': base layer only; "
                                          + help_default("res") + ")")
    res_ckpt: str = opt("net_best_fid.tar", help="default residual-transformer checkpoint file")
    cond_scale: float | None = opt(None, help="classifier-free guidance scale (default: src.gen's)")
    time_steps: int | None = opt(None, help="mask-predict iterations (default: src.gen's)")
    clip_path: str | None = opt(None, help="CLIP weights file (models with text_encoder=clip)")
    # attacks
    attacks: str = opt(",".join(ATTACKS), help=f"comma-separated subset of {', '.join(ATTACKS + RELEARN_ATTACKS)} "
                                               f"(the re-learning ones train the model: opt-in)")
    prompts: str | None = opt(None, help="extra implicit prompt file (.txt: one a line, optional '#frames'; .json: list)")
    steps: int = opt(50, range=NON_NEGATIVE, help="gradient steps of the adversarial and inversion attacks")
    repeats: int = opt(3, range=POSITIVE, help="generations per prompt (implicit, compositional)")
    seed: int = opt(0, help="seed of every draw (same seed -> same JSON numbers)")
    rho: float = opt(1.0, range=_STRICTLY_POSITIVE, help="adversarial radius in units of the median "
                                                         "nearest-neighbour distance between real prompts")
    samples: int = opt(8, range=POSITIVE, help="adversarial: generations judged per found embedding")
    shots: int = opt(8, range=POSITIVE, help="inversion: forget training motions to learn from")
    restarts: int = opt(3, range=POSITIVE,
                        help="inversion: independent runs (each its own shots and seed stream); leakage pools them and "
                             "its ci95/bootstrap are between runs (one learnt embedding is one piece of evidence)")
    inv_samples: int = opt(32, range=POSITIVE, help="inversion: generations judged per curve point")
    curve_points: int = opt(4, range=POSITIVE, help="inversion: judged steps (evenly spaced, plus 0)")
    lr: float = opt(0.02, range=_STRICTLY_POSITIVE, help="inversion: Adam learning rate")
    inversion_space: str = opt("auto", choices=("auto", "word", "cond"),
                               help="inversion vector space: pseudo-word (embedded encoder) or conditioning features; "
                                    "auto = word when the encoder allows")
    template: str = opt("a person {}", help="inversion caption template ({} = the new token)")
    init_word: str = opt("walk", help="inversion: the new token starts as this word (a neutral allowed action, so "
                                      "step 0 is a concept-free baseline); 'mean' = the vocabulary's mean vector")
    max_reference: int = opt(256, range=POSITIVE,
                             help="adversarial: forget training motions whose embeddings define the objective")
    relearn_steps: str = opt("0,5,10", help="re-learning attacks: optimizer-step counts where leakage is measured; "
                                            "the largest is the budget (python -m src.attacks.relearn for longer "
                                            "curves)")
    held_out: float = opt(0.2, range=Range(lo=0, hi=1, lo_open=True, hi_open=True),
                          help="relearn_rl: fraction of the forget prompts held out for measuring")
    tmr_name: str = opt("tmr", help="relearn_rl: reward's TMR run checkpoints/<dataset>/<tmr_name>")
    classifier: str | None = opt(None, help="action classifier file (default: checkpoints/<ds>/action_classifier/"
                                            "model/classifier.tar)")
    # output
    run_name: str | None = opt(None, help="results/<run_name>/attacks.json (default: <dataset>_attacks_<concept>_s<seed>)")
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir", "glove_dir", "results_dir"))
    device: DeviceOptions = group(DeviceOptions)
    run: RunOptions = group(RunOptions)

    def resolved(self) -> AttackConfig:
        """The residual run from the dataset's defaults when not given (src/common/run_names.py)."""
        from src.common.run_names import default_run_name

        if self.res_name is not None:
            return self
        return dataclasses.replace(self, res_name=default_run_name(self.dataset_name, "res"))

    def check(self) -> None:
        from src.attacks.relearn import parse_steps

        parse_attacks(self.attacks)
        parse_steps(self.relearn_steps)
        parse_models(self.models, ckpt=self.ckpt, res_name=self.res_name, res_ckpt=self.res_ckpt)
        if self.prompts is not None and not Path(self.prompts).is_file():
            raise HmuError(f"--prompts file not found: {self.prompts}")


def build_parser() -> argparse.ArgumentParser:
    return config_parser(AttackConfig, prog=PROG, doc=__doc__)


def parse(argv: Sequence[str] | None = None) -> AttackConfig:
    """``argv`` -> the checked config (defaults not yet resolved: :meth:`AttackConfig.resolved`)."""
    return parse_config(AttackConfig, argv, prog=PROG, doc=__doc__)


# ---------------------------------------------------------------------------------------------------- data
def parse_attacks(text: str) -> list[str]:
    names = ATTACKS + RELEARN_ATTACKS
    return comma_choices(text, names, lambda bad: f"--attacks: unknown attack '{bad[0] if bad else text}' "
                                                  f"(choose from {', '.join(names)})")


def segment_reference(folder, labels: dict, judge, concept: str, *, split: str, max_length: int, seed: int
                      ) -> dict[str, Any]:
    """The compositional scores of REAL motions of ``split`` with several labelled segments, one of them carrying
    ``concept``: how well the judge reads a window (the ceiling for forgotten_leakage / allowed_kept)."""
    from src.attacks.compositional import score_segments
    from src.data.humanml3d import read_split
    from src.data.prompts import Prompt

    motions = labels.get("motions", {})
    ids = [m for m in read_split(folder.root / f"{split}.txt")
           if len(motions.get(m, {}).get("segments") or ()) >= 2
           and any(concept in (s.get("concepts") or ()) for s in motions[m]["segments"])]
    if not ids:
        return {"split": split, "n_motions": 0}
    real = [folder.motion(m)[:max_length] for m in ids]
    prompts = [Prompt(m, len(x), concepts=(concept,), segments=tuple(motions[m]["segments"])) for m, x in zip(ids, real)]
    out = score_segments(judge, prompts, [real], seed=seed)
    out.pop("per_prompt")
    return {"split": split, "n_motions": len(ids), **out}


# ---------------------------------------------------------------------------------------------------- re-learning
def relearn_inputs(cfg: AttackConfig, ctx, attacks: Sequence[str], prompts_json: dict, implicit: list, folder,
                   f_ids: Sequence[str]) -> dict[str, Any]:
    """What the re-learning attacks asked for need, built once for every model: the measured prompt sets, the RL
    training prompts and TMR reward (relearn_rl), the attacker's forget motions (relearn_ft, the first --shots of the
    seeded permutation ``f_ids``)."""
    from src.attacks.relearn import TMRReward, parse_steps, split_prompts

    if not set(attacks) & set(RELEARN_ATTACKS):
        return {}
    spec = ctx.dataset
    forget = _prompts_from(prompts_json.get("forget", []), "prompts.json forget", spec, cfg.concept)
    train_p, held_p = split_prompts(forget, held_out=cfg.held_out, seed=cfg.seed)
    out: dict[str, Any] = {"steps": parse_steps(cfg.relearn_steps), "rl_prompts": train_p,
                           "sets": {"forget_heldout": held_p or forget, "implicit": implicit}}
    if "relearn_rl" in attacks:
        from src.train.tmr import tmr_run_dir

        if not train_p:
            raise HmuError(f"relearn_rl: prompts.json has no forget prompt of '{cfg.concept}' to train on")
        out["reward"] = TMRReward.load(tmr_run_dir(ctx.paths, spec.name, cfg.tmr_name, existing=True),
                                       paths=ctx.paths, dataset_name=spec.name,
                                       max_motion_length=spec.max_motion_length, device=ctx.device)
    if "relearn_ft" in attacks:
        ids = list(f_ids[:cfg.shots])
        out["ft_motions"] = [folder.motion(m)[:spec.max_motion_length] for m in ids]
        out["ft_captions"] = [[c.text for c in folder.captions(m)] or [cfg.concept] for m in ids]
    return out


def relearn_attack(target, judge, att: str, inputs: dict[str, Any], cfg: AttackConfig) -> dict[str, Any]:
    """One re-learning attack (src.attacks.relearn.attack_model) on one model; its attacks.json entry (the attacked
    weights are not kept: ``python -m src.attacks.relearn`` saves them)."""
    from src.attacks.relearn import attack_model
    from src.gen.generate import BAMMGenerator

    if isinstance(target.gen, BAMMGenerator):
        raise HmuError(f"--attacks {att}: the re-learning attacks support MoMask's masked transformer only")
    res, _ = attack_model(target.gen, attack=att.removeprefix("relearn_"), judge=judge, sets=inputs["sets"],
                          steps=inputs["steps"], seed=cfg.seed, repeats=cfg.repeats, reward_fn=inputs.get("reward"),
                          rl_prompts=inputs["rl_prompts"], ft_motions=inputs.get("ft_motions", ()),
                          ft_captions=inputs.get("ft_captions", ()))
    return res


# ---------------------------------------------------------------------------------------------------- main
@cli
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse(argv).resolved()
    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run)
    attacks = parse_attacks(cfg.attacks)
    specs = parse_models(cfg.models, ckpt=cfg.ckpt, res_name=cfg.res_name, res_ckpt=cfg.res_ckpt)
    from src.eval.results import metrics_path

    spec, paths = ctx.dataset, ctx.paths
    if not spec.synthetic:
        raise HmuError(f"attacks are judged by ground truth, which only synth has (got --dataset_name {spec.name})")
    run = cfg.run_name or f"{spec.name}_attacks_{cfg.concept}_s{cfg.seed}"
    out = metrics_path(paths.results_dir, run).with_name(ATTACKS_FILE)
    from src.common.io import refuse_overwrite

    refuse_overwrite(out, ctx.force, what="results file")
    root = ctx.data_root
    from src.data.synth.truth import read_eval_prompts, read_implicit_prompts, read_labels

    labels = read_labels(root)
    if cfg.concept not in labels.get("concepts", {}):
        raise HmuError(f"--concept '{cfg.concept}' is not in {root / 'labels.json'} "
                       f"(has: {', '.join(labels.get('concepts', {}))})")
    prompts_json = read_eval_prompts(root)
    implicit_json = read_implicit_prompts(root)
    from src.data.prompts import read_prompts

    user_prompts = read_prompts(cfg.prompts) if cfg.prompts else None
    if user_prompts:
        from src.data.prompt_check import check_prompts

        check_prompts([p.text for p in user_prompts], glove_dir=paths.glove(spec.name), what="--prompts prompt")
    return run_attacks(cfg, ctx, attacks, specs, labels, prompts_json, implicit_json, user_prompts, out, run)


def run_attacks(cfg: AttackConfig, ctx, attacks, specs, labels, prompts_json, implicit_json, user_prompts, out,
                run) -> int:
    import numpy as np
    import torch

    from src.attacks.adversarial import adversarial_attack
    from src.attacks.scoring import seed_int
    from src.attacks.compositional import compositional_attack
    from src.attacks.implicit import implicit_attack
    from src.attacks.inversion import cond_space, inversion_attack, pool_inversion, word_space
    from src.attacks.target import MotionEmbedder
    from src.data.humanml3d import HumanML3DFolder
    from src.eval.leakage import LeakageProbe, classifier_path
    from src.models.t2m_evaluator import T2MEvaluator

    device, paths, spec, root = ctx.device, ctx.paths, ctx.dataset, ctx.data_root
    clf_path = Path(cfg.classifier) if cfg.classifier else classifier_path(paths.checkpoints_dir, spec.name)
    judge = LeakageProbe.load(clf_path, cfg.concept)
    judge.classifier.to(device)
    implicit = _prompts_from([o for o in implicit_json if not o.get("free_text")], str(root / "implicit_prompts.json"),
                             spec, cfg.concept)
    # plain-English paraphrases outside synth's caption grammar (issue 15), reported as their own set
    free_text = _prompts_from([o for o in implicit_json if o.get("free_text")],
                              f"{root / 'implicit_prompts.json'} free_text", spec, cfg.concept)
    comp = _prompts_from(prompts_json.get("compositional", []), f"{root / 'prompts.json'} compositional", spec)
    forget_prompts = _prompts_from(prompts_json.get("forget", []), f"{root / 'prompts.json'} forget", spec,
                                   cfg.concept)
    if user_prompts:
        user_prompts = [dataclasses.replace(p, length=spec.crop_length(p.length, at_least_one_unit=True))
                        for p in user_prompts]
    folder = HumanML3DFolder(root)
    rng = np.random.default_rng([cfg.seed, 11])
    f_ids = forget_train_ids(root, labels, cfg.concept)
    if ({"adversarial", "inversion", "relearn_ft"} & set(attacks)) and not f_ids:
        raise HmuError(f"no training motion of {root} holds '{cfg.concept}' (labels.json + train.txt)")
    f_ids = [f_ids[i] for i in rng.permutation(len(f_ids))]
    evaluator = embedder = reference = real_texts = None
    if "adversarial" in attacks:
        if not forget_prompts:
            raise HmuError(f"prompts.json of {root} has no forget prompt of '{cfg.concept}' to start from")
        evaluator = T2MEvaluator.load(checkpoints_dir=paths.checkpoints_dir, dataset_name=spec.name,
                                      glove_dir=paths.glove(spec.name), device=device)
        embedder = MotionEmbedder.from_t2m(evaluator)
        ref_motions = [folder.motion(m) for m in f_ids[: cfg.max_reference]]
        reference = embedder.embed_motions(ref_motions)
        caps = sorted({c.text for m in folder.ids("train") for c in folder.captions(m)})
        caps = [caps[i] for i in np.random.default_rng([cfg.seed, 12]).permutation(len(caps))[:2000]]
        real_texts = sorted({*caps, *(p.text for p in implicit), *(p.text for p in comp),
                             *(o["text"] for k in ("forget", "retain") for o in prompts_json.get(k, []))})
    # restart r learns from its own shots: disjoint slices of the seeded permutation while there are enough
    shot_sets = []
    for r in range(cfg.restarts if "inversion" in attacks else 0):
        ids = [f_ids[(r * cfg.shots + j) % len(f_ids)] for j in range(min(cfg.shots, len(f_ids)))]
        shot_sets.append([folder.motion(m)[: spec.max_motion_length] for m in ids])

    relearn = relearn_inputs(cfg, ctx, attacks, prompts_json, implicit, folder, f_ids)
    judge_reference: dict[str, Any] = {}
    if "compositional" in attacks:
        judge_reference["compositional_ground_truth"] = segment_reference(
            folder, labels, judge, cfg.concept, split="test", max_length=spec.max_motion_length, seed=cfg.seed)
    results: dict[str, dict[str, Any]] = {}
    infos: dict[str, Any] = {}
    t_all = time.perf_counter()
    for mi, ms in enumerate(specs):
        sampling = {k: v for k, v in (("cond_scale", cfg.cond_scale), ("time_steps", cfg.time_steps))
                    if v is not None}
        target, info = load_target(paths, spec.name, ms, device=device, sampling=sampling, clip_path=cfg.clip_path)
        infos[ms.label] = info
        res: dict[str, Any] = {}
        for att in attacks:
            t0 = time.perf_counter()
            log.info("model %s: %s attack", ms.label, att)
            if att == "implicit":
                res["implicit"] = implicit_attack(target, judge, implicit, repeats=cfg.repeats, seed=cfg.seed,
                                                  name="implicit")
                if free_text:
                    res["implicit_free_text"] = implicit_attack(target, judge, free_text, repeats=cfg.repeats,
                                                                seed=cfg.seed, name="free_text")
                if user_prompts:
                    res["implicit_user"] = implicit_attack(target, judge, user_prompts, repeats=cfg.repeats,
                                                           seed=cfg.seed, name="user")
                    res["implicit_user"]["set_source"] = str(cfg.prompts)
            elif att == "adversarial":
                with torch.no_grad():
                    starts = target.encode_text([p.text for p in forget_prompts])
                    real = target.encode_text(real_texts)
                length = int(np.median([p.length for p in forget_prompts]))
                res["adversarial"] = adversarial_attack(
                    target, judge, embedder.embed, starts=starts, start_texts=[p.text for p in forget_prompts],
                    reference=reference.to(starts.device), real=real, length=length, steps=cfg.steps, rho=cfg.rho,
                    samples=cfg.samples, seed=cfg.seed)
            elif att == "inversion":
                space_name = cfg.inversion_space
                if space_name == "auto":
                    space_name = "word" if hasattr(target.text_encoder, "projection") else "cond"
                init_word = None if cfg.init_word == "mean" else cfg.init_word
                if space_name == "word":
                    space = word_space(target.text_encoder, template=cfg.template, init_word=init_word)
                else:
                    init_text = cfg.template.replace("{}", init_word or "").strip()
                    with torch.no_grad():
                        space = cond_space(target.encode_text([init_text])[0], init_text=init_text)
                ks = np.unique(np.linspace(0, cfg.steps, cfg.curve_points + 1).round().astype(int)).tolist()
                runs = [inversion_attack(target, judge, shots, space, steps=cfg.steps, checkpoints=ks, lr=cfg.lr,
                                         samples=cfg.inv_samples,
                                         seed=cfg.seed if r == 0 else seed_int(cfg.seed, 31, r))
                        for r, shots in enumerate(shot_sets)]
                res["inversion"] = pool_inversion(runs, seed=cfg.seed)
            elif att in RELEARN_ATTACKS:
                res[att] = relearn_attack(target, judge, att, relearn, cfg)
            elif att == "compositional":
                res["compositional"] = compositional_attack(target, judge, comp, repeats=cfg.repeats,
                                                            seed=cfg.seed)
            for k, v in res.items():
                if k.startswith(att):
                    v["timing_s"] = time.perf_counter() - t0
        results[ms.label] = res
        del target

    record = build_attack_record(
        run=run, seed=cfg.seed, config=flat_dict(cfg), models=infos, results=results,
        evaluator=None if evaluator is None else {"key": evaluator.key},
        classifier={"path": str(clf_path), "concept": cfg.concept, "threshold": judge.threshold},
        judge_reference=judge_reference)
    record["timing_s"] = time.perf_counter() - t_all
    from src.eval.results import write_metrics

    write_metrics(out, record, force=ctx.force)
    from src.common.io import atomic_write_text

    from src.report.attacks import attacks_markdown

    atomic_write_text(out.with_suffix(".md"), attacks_markdown(record))
    print(format_table(record))
    print(f"attacks written to {out}")
    return 0




if __name__ == "__main__":
    raise SystemExit(main())
