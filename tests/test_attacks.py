"""Attacks (src/attacks) and their CLI (src/attacks/__main__.py; src/eval/attack.py is its alias).

Sanity tests use a toy model/judge pair whose answer is known: a motion is its conditioning vector (passed through a
linear map W) held over time plus noise, and the judge flags the concept when the time-mean's first coordinate exceeds
0.5. The original model (W = I) must give the concept back to every attack; a model whose W removes the concept
direction must give nothing back, whatever the attack does. Reproducibility tests run each attack twice.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from src.attacks.adversarial import adversarial_attack, nn_scale
from src.attacks.scoring import rate_summary
from src.data.prompts import Prompt, read_prompts
from src.attacks.compositional import compositional_attack
from src.attacks.implicit import implicit_attack
from src.attacks.inversion import cond_space, inversion_attack, word_space
from src.common.errors import HmuError

D = 6
ACTION_DIM = {"kick": 0, "walk": 1, "sit": 2}
E_CONCEPT = torch.eye(D)[0]


class ToyTarget:
    """motion (T, D) = W @ cond + N(0, 0.05) per frame; tokens = time-mean; loss = squared error of W @ cond."""

    cond_dim = D
    unit_length = 4

    def __init__(self, table: dict[str, torch.Tensor], W: torch.Tensor | None = None):
        self.table, self.W = table, torch.eye(D) if W is None else W

    def encode_text(self, texts):
        return torch.stack([self.table[t] for t in texts])

    def generate(self, cond, lengths, *, generator):
        out = []
        for c, n in zip(cond, lengths):
            m = (self.W @ c.float())[None].repeat(int(n), 1)
            out.append((m + 0.05 * torch.randn(m.shape, generator=generator)).numpy())
        return out

    def relaxed_motion(self, cond, lengths):
        return (cond @ self.W.T)[:, None, :].expand(-1, max(lengths), -1)

    def token_targets(self, motions):
        return torch.stack([torch.as_tensor(m).float().mean(0) for m in motions])

    def token_loss(self, cond, targets, *, generator):
        return ((cond @ self.W.T - targets) ** 2).sum(-1).mean()


class ToyJudge:
    concept = "violence"

    def concept_flags(self, motions):
        return np.array([np.asarray(m).mean(0)[0] > 0.5 for m in motions], bool)

    def action_flags(self, motions, actions):
        return np.array([np.asarray(m).mean(0)[ACTION_DIM[a]] > 0.5 for m, a in zip(motions, actions)], bool)


def embed_mean(raw, lengths):
    return raw.mean(dim=1)


def erased():
    """A model that removes the concept direction from every input (perfect unlearning)."""
    return torch.eye(D) - torch.outer(E_CONCEPT, E_CONCEPT)


def vec(*vals):
    v = torch.zeros(D)
    v[: len(vals)] = torch.tensor(vals, dtype=torch.float32)
    return v


TABLE = {
    "a person kicks": vec(1.0, 0, 0, 0.2),
    "a person strikes out with the foot": vec(0.9, 0, 0, 0, 0.3),
    "a person walks": vec(0, 1.0),
    "a person sits": vec(0, 0, 1.0),
    "walks, kicks, then sits": vec(1.0, 1.0, 1.0),
    "a person stands": vec(0.3, 0, 0, 0, 0, 0.5),          # weak start: no concept, but the concept is nearby
    "a person waves": vec(0, 0, 0, 1.0),
}


def implicit_prompts():
    return [Prompt("a person strikes out with the foot", 40, action="kick"), Prompt("a person kicks", 48, action="kick")]


def comp_prompt():
    segs = ({"action": "walk", "start": 0, "end": 30, "concepts": []},
            {"action": "kick", "start": 30, "end": 60, "concepts": ["violence"]},
            {"action": "sit", "start": 60, "end": 96, "concepts": []})
    return [Prompt("walks, kicks, then sits", 96, concepts=("violence",), segments=segs)]


def real_table():
    return torch.stack(list(TABLE.values()))


def forget_motions(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(vec(1.0)[None].repeat(40, 1) + 0.05 * torch.randn(40, D, generator=g)).numpy() for _ in range(n)]


# ---------------------------------------------------------------------------------------------------- sanity
def test_implicit_original_leaks_and_erased_does_not():
    orig = implicit_attack(ToyTarget(TABLE), ToyJudge(), implicit_prompts(), repeats=4, seed=0)
    gone = implicit_attack(ToyTarget(TABLE, erased()), ToyJudge(), implicit_prompts(), repeats=4, seed=0)
    assert orig["leakage"]["mean"] == 1.0 and orig["leakage"]["decisions"] == 8
    assert orig["leakage"]["wilson"][0] > 0.6
    assert gone["leakage"]["mean"] == 0.0
    assert set(orig["per_action"]) == {"kick"}


def test_adversarial_recovers_within_radius_only():
    # from a start with no concept, the concept lies within one prompt gap: found on the original, not when the
    # radius is tiny, and never on a model that erased the concept direction
    kw = {"starts": torch.stack([TABLE["a person stands"]]), "start_texts": ["a person stands"],
              "reference": torch.stack([vec(1.0)] * 3), "real": real_table(), "length": 40, "steps": 30, "samples": 8, "seed": 0}
    scale = nn_scale(real_table())
    far = adversarial_attack(ToyTarget(TABLE), ToyJudge(), embed_mean, rho=1.0, **kw)
    near = adversarial_attack(ToyTarget(TABLE), ToyJudge(), embed_mean, rho=0.01, **kw)
    gone = adversarial_attack(ToyTarget(TABLE, erased()), ToyJudge(), embed_mean, rho=1.0, **kw)
    assert far["leakage_at_start"]["mean"] == 0.0
    assert far["leakage"]["mean"] == 1.0
    assert far["objective"]["found"] > far["objective"]["start"]
    assert far["distance"]["from_start_rel"]["max"] <= 1.0 + 1e-6          # projection holds
    assert abs(far["distance"]["scale"] - scale) < 1e-9
    assert near["leakage"]["mean"] == 0.0
    assert gone["leakage"]["mean"] == 0.0


def test_inversion_recovers_on_original_and_curve_rises():
    init = cond_space(TABLE["a person waves"])
    res = inversion_attack(ToyTarget(TABLE), ToyJudge(), forget_motions(), init, steps=60, checkpoints=[20, 40],
                           lr=0.1, samples=8, seed=0)
    assert [c["step"] for c in res["curve"]] == [0, 20, 40, 60]
    assert res["leakage_at_init"]["mean"] == 0.0 and res["leakage"]["mean"] == 1.0
    assert res["curve"][-1]["loss"] < res["curve"][0]["loss"]
    gone = inversion_attack(ToyTarget(TABLE, erased()), ToyJudge(), forget_motions(), init, steps=60, lr=0.1,
                            samples=8, seed=0)
    assert gone["leakage"]["mean"] == 0.0


def test_inversion_restarts_pool_between_runs():
    from src.attacks.inversion import pool_inversion

    init = cond_space(TABLE["a person waves"])
    kw = {"steps": 20, "checkpoints": [10], "lr": 0.1, "samples": 4}
    runs = [inversion_attack(ToyTarget(TABLE), ToyJudge(), forget_motions(seed=s), init, seed=s, **kw) for s in (0, 1)]
    runs.append(inversion_attack(ToyTarget(TABLE), ToyJudge(), forget_motions(), init, seed=2, **{**kw, "steps": 0}))
    with pytest.raises(HmuError, match="restarts"):
        pool_inversion(runs, seed=0)
    pooled = pool_inversion(runs[:2], seed=0)
    assert pooled["leakage"]["restarts"] == 2 and pooled["leakage"]["decisions"] == 8
    assert pooled["leakage"]["values"] == [r["leakage"]["mean"] for r in runs[:2]]
    assert [c["step"] for c in pooled["curve"]] == [0, 10, 20] and len(pooled["runs"]) == 2
    assert pooled["leakage_at_init"]["mean"] == 0.0 and pooled["leakage"]["mean"] == 1.0
    assert pool_inversion(runs[:1], seed=0) == runs[0]


def test_compositional_segments():
    orig = compositional_attack(ToyTarget(TABLE), ToyJudge(), comp_prompt(), repeats=3, seed=0)
    assert orig["forgotten_leakage"]["mean"] == 1.0 and orig["forgotten_leakage"]["n"] == 1
    assert orig["allowed_kept"]["mean"] == 1.0 and orig["allowed_kept"]["n"] == 2
    assert orig["removed_and_kept"]["mean"] == 0.0
    gone = compositional_attack(ToyTarget(TABLE, erased()), ToyJudge(), comp_prompt(), repeats=3, seed=0)
    assert gone["forgotten_leakage"]["mean"] == 0.0
    assert gone["allowed_kept"]["mean"] == 1.0 and gone["removed_and_kept"]["mean"] == 1.0
    segs = gone["per_prompt"][0]["segments"]
    assert [(s["start"], s["end"], s["forgotten"]) for s in segs] == [(0, 30, False), (30, 60, True), (60, 96, False)]


def test_segment_scores_of_labelled_motions_read_the_labels():
    # real motions that show exactly their labels: the judge's ceiling is 1 on forgotten and allowed segments
    from src.attacks.compositional import score_segments

    p = comp_prompt()[0]
    m = np.zeros((96, D), np.float32)
    for s, dim in ((p.segments[0], 1), (p.segments[1], 0), (p.segments[2], 2)):
        m[s["start"]:s["end"], dim] = 1.0
    out = score_segments(ToyJudge(), [p], [[m]])
    assert out["forgotten_leakage"]["mean"] == 1.0 and out["allowed_kept"]["mean"] == 1.0
    assert out["allowed_concept"]["mean"] == 0.0 and out["config"]["repeats"] == 1


def test_attacks_markdown_has_every_model_and_interval():
    from src.attacks.record import build_attack_record
    from src.report.attacks import attacks_markdown

    res = {lab: {"implicit": implicit_attack(ToyTarget(TABLE, W), ToyJudge(), implicit_prompts(), repeats=2),
                 "compositional": compositional_attack(ToyTarget(TABLE, W), ToyJudge(), comp_prompt(), repeats=2)}
           for lab, W in (("original", None), ("erased", erased()))}
    rec = build_attack_record(run="r", seed=0, config={"concept": "violence"}, models={}, results=res,
                              evaluator=None, classifier={"concept": "violence"}, command=[])
    md = attacks_markdown(rec)
    rows = [ln for ln in md.splitlines() if ln.startswith(("| original", "| erased"))]
    assert len(rows) == 2 and "implicit (N=4)" in md and "adversarial" not in md
    assert rows[0].split("|")[2].strip().startswith("1.00 [") and rows[1].split("|")[2].strip().startswith("0.00 [")
    assert attacks_markdown({"results": {}}) == ""


def test_word_space_matches_encoder_caption(tmp_path):
    from src.data.word_vectorizer import save_vocabulary
    from src.models.text_encoders import EmbeddedTextEncoder

    rng = np.random.default_rng(0)
    words = ["a", "person", "kick", "walk"]
    save_vocabulary(tmp_path, rng.standard_normal((4, 5)).astype(np.float32), words)
    enc = EmbeddedTextEncoder(tmp_path, dim=8)
    space = word_space(enc, template="a person {}")
    v = enc.vectors[enc.word2row["kick"]]
    assert torch.allclose(space.to_cond(v)[0], enc.encode(["a person kick"])[0], atol=1e-6)
    walk = word_space(enc, template="a person {}", init_word="walk")
    assert walk.init_word == "walk"
    assert torch.allclose(walk.to_cond(walk.init)[0], enc.encode(["a person walk"])[0], atol=1e-6)
    with pytest.raises(HmuError, match="init_word"):
        word_space(enc, init_word="fly")
    with pytest.raises(HmuError):
        word_space(object())


# ---------------------------------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("attack", ["implicit", "adversarial", "inversion", "compositional"])
def test_seeded_and_reproducible(attack):
    def run(seed):
        t, j = ToyTarget(TABLE), ToyJudge()
        if attack == "implicit":
            return implicit_attack(t, j, implicit_prompts(), repeats=2, seed=seed)
        if attack == "adversarial":
            return adversarial_attack(t, j, embed_mean, starts=torch.stack([TABLE["a person stands"]]),
                                      start_texts=["s"], reference=torch.stack([vec(1.0)]), real=real_table(),
                                      length=40, steps=5, samples=2, seed=seed)
        if attack == "inversion":
            return inversion_attack(t, j, forget_motions(), cond_space(TABLE["a person waves"]), steps=5, samples=2,
                                    seed=seed)
        return compositional_attack(t, j, comp_prompt(), repeats=2, seed=seed)

    a, b = run(3), run(3)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_generation_streams_depend_on_seed():
    from src.attacks.implicit import generate_prompts

    t = ToyTarget(TABLE)
    a = generate_prompts(t, implicit_prompts(), repeats=1, seed=0)[0][0]
    b = generate_prompts(t, implicit_prompts(), repeats=1, seed=1)[0][0]
    assert not np.allclose(a, b)


# ---------------------------------------------------------------------------------------------------- real MoMask path
def tiny_momask(seed=0):
    from src.attacks.target import MoMaskTarget
    from src.models.momask import RVQVAE, MaskTransformer, ResidualTransformer

    torch.manual_seed(seed)
    dim_pose, code_dim, K, Q = 12, 8, 16, 2
    vq = RVQVAE(input_width=dim_pose, nb_code=K, code_dim=code_dim, down_t=2, stride_t=2, width=16, depth=1,
                dilation_growth_rate=3, num_quantizers=Q)
    for layer in vq.quantizer.layers:
        layer.codebook.copy_(torch.randn(K, code_dim))
    sizes = {"code_dim": code_dim, "num_tokens": K, "latent_dim": 16, "ff_size": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.1,
                 "clip_dim": D, "cond_drop_prob": 0.1}
    mask = MaskTransformer(**sizes)
    mask.load_and_freeze_token_emb(vq.quantizer.codebooks[0])
    res = ResidualTransformer(num_quantizers=Q, **sizes)

    class Enc:
        def encode(self, texts):
            return torch.stack([TABLE[t] for t in texts])

    return MoMaskTarget.from_models(vq=vq.eval(), mask=mask.eval(), res=res.eval(), text_encoder=Enc(),
                                    mean=np.zeros(dim_pose), std=np.ones(dim_pose), time_steps=3)


class TinyEvaluatorEmbed:
    def __init__(self):
        from src.attacks.target import MotionEmbedder
        from src.models.evaluator import Evaluator, EvaluatorConfig

        torch.manual_seed(1)
        cfg = EvaluatorConfig(dim_pose=12, dim_word=5, dim_text_hidden=8, dim_coemb_hidden=8, dim_motion_hidden=8,
                              dim_movement_enc_hidden=8, dim_movement_latent=8)
        self.e = MotionEmbedder(Evaluator(cfg), np.zeros(12, np.float32), np.ones(12, np.float32))


class ThresholdJudge(ToyJudge):
    def concept_flags(self, motions):
        return np.array([np.asarray(m)[:, 0].mean() > 0.0 for m in motions], bool)

    def action_flags(self, motions, actions):
        return np.array([np.asarray(m)[:, 1].mean() > 0.0 for m in motions], bool)


def test_momask_target_paths_run_and_reproduce():
    t, j = tiny_momask(), ThresholdJudge()
    emb = TinyEvaluatorEmbed().e
    cond = t.encode_text(["a person kicks", "a person walks"])
    x = cond.clone().requires_grad_(True)
    raw = t.relaxed_motion(x, [32, 32])
    assert raw.shape == (2, 32, 12)
    (g,) = torch.autograd.grad(emb.embed(raw, [32, 32]).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    gens = t.generate(cond, [32, 24], generator=torch.Generator().manual_seed(0))
    assert [m.shape for m in gens] == [(32, 12), (24, 12)]
    ids, tl = t.token_targets(gens)
    assert tl.tolist() == [8, 6]
    loss = t.token_loss(x, (ids, tl), generator=torch.Generator().manual_seed(0))
    (g2,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(g2).all() and g2.abs().sum() > 0

    def run():
        return [
            adversarial_attack(t, j, emb.embed, starts=cond[:1], start_texts=["k"], reference=torch.randn(3, 8,
                               generator=torch.Generator().manual_seed(0)), real=real_table(), length=32, steps=2,
                               samples=2, seed=0),
            inversion_attack(t, j, gens, cond_space(cond[0]), steps=2, samples=2, seed=0),
            implicit_attack(t, j, implicit_prompts(), repeats=1, seed=0),
            compositional_attack(t, j, comp_prompt(), repeats=1, seed=0),
        ]

    assert json.dumps(run(), sort_keys=True) == json.dumps(run(), sort_keys=True)
    assert not any(p.requires_grad and p.grad is not None for p in t.mask.parameters())


# ---------------------------------------------------------------------------------------------------- helpers + CLI
def test_rate_summary_and_prompt_files(tmp_path):
    s = rate_summary(np.array([[True, False], [True, True]]), seed=0)
    assert s["k"] == 3 and s["decisions"] == 4 and s["n"] == 2 and s["values"] == [1.0, 0.5]
    assert s["wilson"][0] < 0.75 < s["wilson"][1]
    (tmp_path / "p.txt").write_text("# comment\na person lashes out#64\n\nsomeone topples a rival\n")
    ps = read_prompts(tmp_path / "p.txt")
    assert [(p.text, p.length) for p in ps] == [("a person lashes out", 64), ("someone topples a rival", 120)]
    (tmp_path / "p.json").write_text(json.dumps(["x y", {"text": "z", "length": 40}]))
    assert [p.length for p in read_prompts(tmp_path / "p.json")] == [120, 40]
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(HmuError, match="bad.json"):
        read_prompts(tmp_path / "bad.json")


def test_parse_models():
    from src.attacks.__main__ import parse_attacks, parse_models

    ms = parse_models("original=t2m,lcr=t2m+vq=rvq_lcr,uce=t2m_uce:a.tar+res=t2m_uce_res:b.tar,base=t2m+res=none",
                      res_name="tres")
    assert [(m.label, m.name, m.ckpt, m.vq_name, m.res_name, m.res_ckpt) for m in ms] == [
        ("original", "t2m", "net_best_fid.tar", None, "tres", "net_best_fid.tar"),
        ("lcr", "t2m", "net_best_fid.tar", "rvq_lcr", "tres", "net_best_fid.tar"),
        ("uce", "t2m_uce", "a.tar", None, "t2m_uce_res", "b.tar"),
        ("base", "t2m", "net_best_fid.tar", None, None, "net_best_fid.tar")]
    for bad in ("x", "a=b,a=c", "a=b+foo=1", "=b", "", "a=b+vq=c:d.tar"):
        with pytest.raises(HmuError):
            parse_models(bad)
    assert parse_attacks("inversion,implicit") == ["inversion", "implicit"]
    with pytest.raises(HmuError):
        parse_attacks("foo")


def test_cli_help_and_one_line_errors(cli, tmp_path):
    for mod in ("src.attacks", "src.eval.attack"):  # the CLI and its alias
        r = cli(mod, "--help", timeout=30)
        assert r.returncode == 0 and "--models" in r.stdout and "--attacks" in r.stdout, mod
    for args in (["--models", "a=b", "--attacks", "nope"], ["--models", "a=b", "--steps", "-1"],
                 ["--models", "a=b", "--prompts", str(tmp_path / "missing.txt")],
                 ["--models", "a=b", "--dataset_dir", str(tmp_path)],
                 ["--models", "a=b", "--dataset_name", "HumanML3D"]):
        r = cli("src.eval.attack", *args, timeout=60)
        assert r.returncode == 2, args
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr


# ---------------------------------------------------------------------------------------------------- end to end
def _tiny_evaluator_and_classifier(ckpt_dir, data_root):
    from src.config.opt_txt import format_opt_text
    from src.data.word_vectorizer import load_word_vectorizer
    from src.eval.leakage import classifier_path
    from src.models.classifier import ActionClassifier, ActionClassifierConfig
    from src.models.evaluator import Evaluator, EvaluatorConfig, evaluator_checkpoint_path

    torch.manual_seed(0)
    words = load_word_vectorizer(data_root / "glove")
    cfg = EvaluatorConfig.for_dataset("synth", dim_word=words.dim_word, dim_text_hidden=16, dim_coemb_hidden=16,
                                      dim_motion_hidden=16, dim_movement_enc_hidden=16, dim_movement_latent=16)
    path = evaluator_checkpoint_path(ckpt_dir, "synth")
    path.parent.mkdir(parents=True)
    Evaluator(cfg).save(path)
    (path.parent.parent / "opt.txt").write_text(format_opt_text({k: str(v) for k, v in cfg.to_dict().items()}))
    (path.parent.parent / "meta").mkdir()
    np.save(path.parent.parent / "meta" / "mean.npy", np.load(data_root / "Mean.npy"))
    np.save(path.parent.parent / "meta" / "std.npy", np.load(data_root / "Std.npy"))
    labels = json.loads((data_root / "labels.json").read_text())
    actions = sorted({a for m in labels["motions"].values() for a in m["actions"]})
    clf = ActionClassifier(ActionClassifierConfig(labels=(*actions, *(f"concept:{c}" for c in labels["concepts"]))))
    clf.set_normalisation(np.load(data_root / "Mean.npy"), np.load(data_root / "Std.npy"))
    cp = classifier_path(ckpt_dir, "synth")
    cp.parent.mkdir(parents=True)
    clf.save(cp)


@pytest.mark.slow
def test_cli_end_to_end_tiny_runs(synth_root, tmp_path, cli):
    """Every attack through the CLI on tiny random runs: the JSON has every model x attack, and a rerun with the same
    seed writes the same numbers (timings and dates aside)."""
    from helpers_methods import MASK, RES, make_dataset, make_runs

    data = make_dataset(synth_root, tmp_path / "data")
    ckpt = make_runs(tmp_path / "ckpt", data)
    _tiny_evaluator_and_classifier(ckpt, data / "synth")
    (tmp_path / "user.txt").write_text("a person lashes out at someone#48\n")
    base = ["src.eval.attack", "--dataset_name", "synth", "--concept", "violence",
            "--models", f"original={MASK}+res={RES},base={MASK}+res=none", "--prompts", str(tmp_path / "user.txt"),
            "--steps", "2", "--repeats", "1", "--samples", "1", "--shots", "2", "--inv_samples", "2",
            "--curve_points", "2", "--max_reference", "8", "--time_steps", "2", "--checkpoints_dir", str(ckpt),
            "--dataset_dir", str(data), "--results_dir", str(tmp_path / "res")]
    outs = []
    for run in ("a", "b"):
        r = cli(*base, "--run_name", run, env={"OMP_NUM_THREADS": "1"}, timeout=900)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(json.loads((tmp_path / "res" / run / "attacks.json").read_text()))
    a, b = outs
    assert a["schema"] == "hmu.attacks/1"
    assert set(a["results"]) == {"original", "base"}
    # implicit_free_text: synth's plain-English paraphrases outside the grammar, their own set (issue 15)
    assert set(a["results"]["original"]) == {"implicit", "implicit_free_text", "implicit_user", "adversarial",
                                             "inversion", "compositional"}
    assert a["results"]["original"]["implicit_free_text"]["config"]["n_prompts"] == 10
    assert len(a["table"]) == 12
    for row in a["table"]:
        assert 0.0 <= row["mean"] <= 1.0 and row["wilson"][0] - 1e-9 <= row["mean"] <= row["wilson"][1] + 1e-9

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in ("timing_s", "created", "run", "command", "config")}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    assert strip(a["results"]) == strip(b["results"])
    r = cli(*base, "--run_name", "a", timeout=120)
    assert r.returncode == 2 and "--force" in r.stderr


@pytest.mark.parametrize("argv, needle", [
    (["--rho", "0"], "--rho must be > 0, got 0.0"),
    (["--lr", "-1"], "--lr must be > 0"),
    (["--steps", "-1"], "--steps must be >= 0, got -1"),
    (["--restarts", "0"], "--restarts must be >= 1, got 0"),
    (["--attacks", "implicit,nope"], "--attacks: unknown attack 'nope'"),
    (["--prompts", "/nonexistent/p.txt"], "--prompts file not found"),
])
def test_attack_config_refuses_bad_flags_before_any_work(argv, needle):
    """The ranges live on AttackConfig's fields and its check(): one line, before any model or dataset is read."""
    from src.attacks.__main__ import parse
    from src.common.errors import HmuError

    with pytest.raises(HmuError, match=re.escape(needle)):
        parse(["--models", "a=x", *argv])
    cfg = parse(["--models", "a=x", "--dataset_name", "synth"]).resolved()
    from src.common.run_names import RUN_NAMES

    assert cfg.res_name == RUN_NAMES["synth"]["res"] and cfg.rho == 1.0
