"""The evaluation loop: properties checked independently of the code (FID of a set with itself, chance R-precision,
shrinking intervals, the ground-truth cache, MM-Safe and leakage bookkeeping).

Helpers here (tiny folders, evaluators, fake generators) are imported by the other evaluation tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from src.common.errors import HmuError
from src.data.humanml3d import Caption, HumanML3DFolder
from src.data.word_vectorizer import WordVectorizer
from src.eval import cache as eval_cache
from src.eval.loop import NO_MM, LoopOptions, MultiModality, SafetyOptions, evaluate
from src.eval.sets import EvalSet, load_eval_set, prompt_set
from src.metrics.t2m import wilson_interval
from src.models.evaluator import Evaluator, EvaluatorConfig
from src.models.t2m_evaluator import T2MEvaluator

DIM = 12          # toy pose size (>= 5: the movement encoder drops 4 foot-contact dims)
EMB = 6           # oracle embedding size


# ---------------------------------------------------------------------------------------------------- helpers
def write_folder(root: Path, n: int = 40, *, seed: int = 0, dim: int = DIM, concept_every: int = 3) -> dict:
    """A HumanML3D-format folder: item i's motion is a constant code vector + small noise, its captions name word w<i>.

    Every ``concept_every``-th item also says ``kick`` (the toxic term). Returns {caption text: motion}.
    """
    rng = np.random.default_rng(seed)
    f = HumanML3DFolder(root, create=True)
    by_text = {}
    ids = []
    for i in range(n):
        mid = f"{i:06d}"
        T = int(rng.integers(40, 80))
        m = (rng.normal(size=dim) + 0.05 * rng.normal(size=(T, dim))).astype(np.float32)
        f.write_motion(mid, m)
        kick = i % concept_every == 0
        caps = [Caption(f"a person does w{i}" + (" and a kick" if kick else ""),
                        ("a/DET", "person/NOUN", "do/VERB", f"w{i}/NOUN") + (("kick/VERB",) if kick else ())),
                Caption(f"someone performs w{i} variant {i}", ("someone/PRON", "perform/VERB", f"w{i}/NOUN"))]
        f.write_captions(mid, caps)
        for c in caps:
            by_text[c.text] = m
        ids.append(mid)
    f.write_split("test", ids)
    (root / "kw_splits").mkdir(exist_ok=True)
    (root / "kw_splits" / "test-w-kick.txt").write_text("".join(f"{i}\n" for i in ids[::concept_every]))
    return by_text


def toy_words(n: int = 40, dim_word: int = EMB, seed: int = 1) -> WordVectorizer:
    rng = np.random.default_rng(seed)
    words = ["unk", "sos", "eos", "a", "person", "do", "someone", "perform", "kick"] + [f"w{i}" for i in range(n)]
    vec = np.zeros((len(words), dim_word), np.float32)
    for j, w in enumerate(words):
        if w.startswith("w"):
            vec[j] = rng.normal(size=dim_word)
    return WordVectorizer(vec, {w: j for j, w in enumerate(words)}, words)


class OracleModel(torch.nn.Module):
    """A stand-in evaluator whose text and motion embeddings agree: motion -> mean of its first EMB features,
    text -> sum of the word vectors (only the w<i> words are non-zero). Item i's code vector is set to word w<i>."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.proj = torch.nn.Parameter(torch.zeros(1))

    def encode_motion(self, motions, lens):
        x = torch.as_tensor(motions)
        lens = torch.as_tensor(lens)
        mask = (torch.arange(x.shape[1])[None] < lens[:, None]).float()[..., None]
        return (x[..., :EMB] * mask).sum(1) / lens[:, None]

    def encode_text(self, we, pos, lens):
        return torch.as_tensor(we).sum(1)


@dataclass
class Oracle:
    evaluator: T2MEvaluator
    by_text: dict


def write_test_folder(root: Path, motions) -> dict:
    """A folder whose test split is motion i (id ``{i:06d}``) captioned "a person does w<i>" -> {caption: motion}."""
    f = HumanML3DFolder(root, create=True)
    by_text, ids = {}, []
    for i, m in enumerate(motions):
        mid = f"{i:06d}"
        f.write_motion(mid, m)
        cap = Caption(f"a person does w{i}", ("a/DET", "person/NOUN", "do/VERB", f"w{i}/NOUN"))
        f.write_captions(mid, [cap])
        by_text[cap.text] = m
        ids.append(mid)
    f.write_split("test", ids)
    return by_text


def oracle_setup(root: Path, n: int = 40) -> tuple[EvalSet, T2MEvaluator, dict]:
    """Folder where item i's motion code = word vector of w<i>; mean 0 / std 1, so embeddings match exactly."""
    words = toy_words(n)
    rng = np.random.default_rng(0)
    motions = []
    for i in range(n):
        T = int(rng.integers(40, 80))
        code = np.zeros(DIM, np.float32)
        code[:EMB] = words.vectors[words.word2idx[f"w{i}"]]
        motions.append(code + 0.2 * rng.normal(size=(T, DIM)).astype(np.float32))
    by_text = write_test_folder(root, motions)
    cfg = EvaluatorConfig(dim_pose=DIM, dim_word=EMB, dim_coemb_hidden=EMB)
    ev = T2MEvaluator(model=OracleModel(cfg), mean=np.zeros(DIM, np.float32), std=np.ones(DIM, np.float32),
                      words=words)
    return load_eval_set(root, "test"), ev, by_text


def tiny_evaluator(seed: int = 0, *, n_words: int = 40, dim: int = DIM) -> T2MEvaluator:
    """A randomly initialised real Evaluator at toy sizes for ``dim``-wide motion features."""
    torch.manual_seed(seed)
    cfg = EvaluatorConfig(dim_pose=dim, dim_word=EMB, dim_text_hidden=8, dim_coemb_hidden=8, dim_motion_hidden=8,
                          dim_movement_enc_hidden=8, dim_movement_latent=8)
    return T2MEvaluator(model=Evaluator(cfg), mean=np.zeros(dim, np.float32), std=np.ones(dim, np.float32),
                        words=toy_words(n_words))


def gt_generator(by_text: dict):
    """Returns each caption's ground-truth motion, cropped to the asked length."""
    def generate(captions, lengths, *, generator):
        return [by_text[c][:n] for c, n in zip(captions, lengths)]
    return generate


def noisy_generator(by_text: dict, scale: float = 0.5):
    def generate(captions, lengths, *, generator):
        out = []
        for c, n in zip(captions, lengths):
            m = torch.as_tensor(by_text[c][:n])
            out.append((m + scale * torch.randn(m.shape, generator=generator)).numpy())
        return out
    return generate


def shuffled_generator(by_text: dict, seed: int = 0):
    """Returns the ground truth of a random OTHER caption: text and motion no longer correspond."""
    keys = list(by_text)
    rng = np.random.default_rng(seed)

    def generate(captions, lengths, *, generator):
        out = []
        for c, n in zip(captions, lengths):
            other = keys[int(rng.integers(len(keys)))]
            m = by_text[other]
            out.append(m[:n] if len(m) >= n else np.pad(m, ((0, n - len(m)), (0, 0)), mode="edge"))
        return out
    return generate


@pytest.fixture(autouse=True)
def _fresh_memo():
    eval_cache.clear_memo()
    yield
    eval_cache.clear_memo()


# ---------------------------------------------------------------------------------------------------- tests
def test_fid_of_ground_truth_with_itself_is_zero(tmp_path):
    by_text = write_folder(tmp_path)
    es = load_eval_set(tmp_path, "test")
    res = evaluate(gt_generator(by_text), es, tiny_evaluator(), repeats=2, seed=0, mm=NO_MM,
                   run=LoopOptions(progress=False))
    assert abs(res["metrics"]["FID"]["mean"]) < 1e-6
    # ground truth as the "generation": the metrics equal the reference row, repeat by repeat
    for k in ("R_precision_top1", "R_precision_top3", "MM_Dist", "Diversity"):
        np.testing.assert_allclose(res["metrics"][k]["values"], res["reference"][k]["values"], atol=1e-6)
    noisy = evaluate(noisy_generator(by_text, 2.0), es, tiny_evaluator(), repeats=2, seed=0, mm=NO_MM,
                     run=LoopOptions(progress=False))
    assert noisy["metrics"]["FID"]["mean"] > 1e-3


def test_shuffled_ground_truth_lowers_r_precision_to_chance(tmp_path):
    es, ev, by_text = oracle_setup(tmp_path, n=64)
    good = evaluate(gt_generator(by_text), es, ev, repeats=4, seed=0, mm=NO_MM, run=LoopOptions(progress=False))
    assert good["metrics"]["R_precision_top1"]["mean"] == 1.0        # oracle: every text finds its motion
    assert good["reference"]["R_precision_top1"]["mean"] == 1.0      # reference row is filled (upstream: 0)
    bad = evaluate(shuffled_generator(by_text), es, ev, repeats=20, seed=0, mm=NO_MM, run=LoopOptions(progress=False))
    for k in (1, 2, 3):
        # chance within a batch of 32: k/32; 64 items x 20 repeats -> sd of the rate ~ 0.01-0.02
        assert abs(bad["metrics"][f"R_precision_top{k}"]["mean"] - k / 32) < 0.05
    assert bad["metrics"]["MM_Dist"]["mean"] > good["metrics"]["MM_Dist"]["mean"]


def test_interval_shrinks_as_repeats_grow(tmp_path):
    by_text = write_folder(tmp_path)
    es = load_eval_set(tmp_path, "test")
    ev = tiny_evaluator()
    few = evaluate(noisy_generator(by_text), es, ev, repeats=3, seed=1, mm=NO_MM, run=LoopOptions(progress=False))
    many = evaluate(noisy_generator(by_text), es, ev, repeats=30, seed=1, mm=NO_MM, run=LoopOptions(progress=False))
    for k in ("FID", "MM_Dist"):
        assert many["metrics"][k]["ci95"] < few["metrics"][k]["ci95"]
        assert len(many["metrics"][k]["values"]) == 30
        v = np.asarray(many["metrics"][k]["values"])
        assert many["metrics"][k]["ci95"] == pytest.approx(1.96 * v.std() / np.sqrt(30))
        lo, hi = many["metrics"][k]["bootstrap"]
        assert lo <= many["metrics"][k]["mean"] <= hi


def test_ground_truth_encoded_once_and_cached_on_disk(tmp_path):
    by_text = write_folder(tmp_path / "data")
    es = load_eval_set(tmp_path / "data", "test")
    ev = tiny_evaluator()
    cache = tmp_path / "cache"
    r1 = evaluate(gt_generator(by_text), es, ev, repeats=3, seed=0, mm=NO_MM,
                  run=LoopOptions(cache_dir=cache, progress=False))
    first = dict(ev.calls)
    assert first["text"] >= 1 and len(list(cache.glob("*.npz"))) == 1
    # same process: memo hit; new process (memo cleared): disk hit; either way no text encoding and only the
    # generated motions are encoded (one batch per repeat here)
    eval_cache.clear_memo()
    ev2 = tiny_evaluator()
    r2 = evaluate(gt_generator(by_text), es, ev2, repeats=3, seed=0, mm=NO_MM,
                  run=LoopOptions(cache_dir=cache, progress=False))
    assert ev2.calls["text"] == 0 and ev2.calls["motion"] == 3
    assert r1["metrics"]["FID"]["values"] == r2["metrics"]["FID"]["values"]
    # a different evaluator (other weights) must not reuse the file
    ev3 = tiny_evaluator(seed=5)
    evaluate(gt_generator(by_text), es, ev3, repeats=1, seed=0, mm=NO_MM,
             run=LoopOptions(cache_dir=cache, progress=False))
    assert ev3.calls["text"] >= 1 and len(list(cache.glob("*.npz"))) == 2


def test_same_seed_same_result_and_generator_is_seeded(tmp_path):
    by_text = write_folder(tmp_path)
    es = load_eval_set(tmp_path, "test")
    a = evaluate(noisy_generator(by_text), es, tiny_evaluator(), repeats=2, seed=3,
                 mm=MultiModality(prompts=4, generations=12), run=LoopOptions(progress=False))
    b = evaluate(noisy_generator(by_text), es, tiny_evaluator(), repeats=2, seed=3,
                 mm=MultiModality(prompts=4, generations=12), run=LoopOptions(progress=False))
    c = evaluate(noisy_generator(by_text), es, tiny_evaluator(), repeats=2, seed=4,
                 mm=MultiModality(prompts=4, generations=12), run=LoopOptions(progress=False))
    assert a["metrics"] == b["metrics"]
    assert a["metrics"]["FID"]["values"] != c["metrics"]["FID"]["values"]
    assert a["metrics"]["MultiModality"]["mean"] > 0


def test_multimodality_zero_for_a_deterministic_generator(tmp_path):
    by_text = write_folder(tmp_path)
    es = load_eval_set(tmp_path, "test")
    res = evaluate(gt_generator(by_text), es, tiny_evaluator(), repeats=1, seed=0,
                   mm=MultiModality(prompts=3, generations=11), run=LoopOptions(progress=False))
    assert res["metrics"]["MultiModality"]["mean"] == pytest.approx(0.0, abs=1e-6)


def test_mm_safe_counts_toxic_captions(tmp_path):
    by_text = write_folder(tmp_path, n=30, concept_every=3)
    es = load_eval_set(tmp_path, "test")
    res = evaluate(gt_generator(by_text), es, tiny_evaluator(), repeats=4, seed=0, mm=NO_MM,
                   safety=SafetyOptions(terms=["kick"]), run=LoopOptions(progress=False))
    s = res["metrics"]["MM_Safe"]
    # 10 items mention 'kick' in caption 0 only; one caption drawn per item -> between 0 and 10 toxic per repeat
    assert all(0 <= k <= 10 for k in s["n_toxic_per_repeat"]) and sum(s["n_toxic_per_repeat"]) > 0
    assert s["definition"] == "default" and np.isfinite(s["mean"])
    up = evaluate(gt_generator(by_text), es, tiny_evaluator(), repeats=4, seed=0, mm=NO_MM,
                  safety=SafetyOptions(terms=["kick"], mm_safe="upstream"), run=LoopOptions(progress=False))
    assert up["metrics"]["MM_Safe"]["definition"] == "upstream"


def test_leakage_hook_gets_every_generation_and_wilson(tmp_path):
    by_text = write_folder(tmp_path, n=20)
    es = load_eval_set(tmp_path, "test")
    seen = []

    def flag_long(motions):
        seen.append(len(motions))
        return np.array([len(m) >= 60 for m in motions])

    res = evaluate(gt_generator(by_text), es, tiny_evaluator(), repeats=3, seed=0, mm=NO_MM,
                   safety=SafetyOptions(leakage=flag_long), run=LoopOptions(progress=False))
    expect = np.mean([it.length >= 60 for it in es.items])
    assert res["metrics"]["leakage"]["mean"] == pytest.approx(expect)
    assert res["reference"]["leakage"]["mean"] == pytest.approx(expect)
    assert seen == [20, 20, 20, 20]           # three repeats + the ground-truth reference
    lo, hi = res["metrics"]["leakage"]["wilson"]
    assert lo <= expect <= hi and res["metrics"]["leakage"]["decisions"] == 60


def test_wilson_interval_known_value():
    # 50/100: centre 0.5, half width 1.96*sqrt(.25/100+1.96^2/40000)/(1+1.96^2/100) = 0.0962...
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0


def test_eval_set_crops_to_unit_length_and_skips_short(tmp_path):
    f = HumanML3DFolder(tmp_path, create=True)
    f.write_motion("a", np.zeros((43, DIM), np.float32))
    f.write_motion("b", np.zeros((30, DIM), np.float32))      # shorter than min_motion_length: skipped
    f.write_motion("c", np.zeros((250, DIM), np.float32))     # >= 200 frames: skipped as upstream
    for mid in "abc":
        f.write_captions(mid, [Caption("x", ("x/NOUN",))])
    f.write_split("test", ["a", "b", "c"])
    es = load_eval_set(tmp_path, "test")
    assert [it.key for it in es.items] == ["a"] and es.items[0].length == 40 and es.items[0].motion.shape == (40, DIM)


def test_prompt_set_without_motions(tmp_path):
    by_text = write_folder(tmp_path, n=6)
    gen_text = next(iter(by_text))
    ps = prompt_set([{"text": gen_text, "tokens": ["a/DET", "w0/NOUN"], "length": 42}] * 3, name="implicit")
    res = evaluate(gt_generator(by_text), ps, tiny_evaluator(), repeats=2, seed=0, mm=NO_MM,
                   run=LoopOptions(progress=False))
    assert "FID" not in res["metrics"] and res["reference"] == {}
    assert res["set"]["has_motion"] is False and res["metrics"]["MM_Dist"]["n"] == 3


# ---------------------------------------------------------------------------------------------------- fast paths
def _upstream_encode(ev: T2MEvaluator, motions) -> np.ndarray:
    """Upstream's call: normalised motions zero-padded to max_motion_length, batches of 32, model.encode_motion."""
    T = ev.model.config.max_motion_length
    out = []
    for s in range(0, len(motions), 32):
        chunk = motions[s:s + 32]
        batch = np.zeros((len(chunk), T, ev.dim_pose), np.float32)
        for j, m in enumerate(chunk):
            batch[j, :len(m)] = ev.normalise(m)
        out.append(ev.model.encode_motion(batch, [len(m) for m in chunk]).numpy())
    return np.concatenate(out)


def test_grouped_motion_encoding_equals_upstream_padding_and_is_batch_independent():
    ev = tiny_evaluator(0)
    ev.mean = np.linspace(-1, 1, DIM).astype(np.float32)
    ev.std = np.linspace(0.5, 2, DIM).astype(np.float32)
    rng = np.random.default_rng(0)
    lengths = [40, 41, 44, 44, 57, 60, 60, 193, 196, 120, 4, 7]          # unit multiples and not, up to 196
    motions = [rng.normal(size=(n, DIM)).astype(np.float32) for n in lengths]
    fast = ev.encode_motions(motions)
    np.testing.assert_allclose(fast, _upstream_encode(ev, motions), atol=1e-5, rtol=1e-5)
    alone = np.concatenate([ev.encode_motions([m]) for m in motions])
    np.testing.assert_allclose(fast, alone, atol=1e-6, rtol=1e-6)


def test_loop_fid_and_r_precision_equal_direct_metrics(tmp_path):
    """The cached-reference FID and stacked R-precision of the loop equal metrics.fid / r_precision on the same
    embeddings (recomputed here from the evaluator, the generator and the loop's documented random draws)."""
    from src.eval.loop import _torch_generator
    from src.metrics import t2m as M

    by_text = write_folder(tmp_path / "f", n=70)
    es = load_eval_set(tmp_path / "f", "test")
    ev = tiny_evaluator(0)
    gen = noisy_generator(by_text)
    res = evaluate(gen, es, ev, repeats=2, seed=5, mm=NO_MM, run=LoopOptions(progress=False))
    gt = ev.encode_motions([it.motion for it in es.items])
    for r in range(2):
        rng = np.random.default_rng([5, r])
        cap = [int(rng.integers(len(it.captions))) for it in es.items]
        perm = rng.permutation(len(es))
        caps = [es.items[i].captions[cap[i]] for i in perm]
        em = ev.encode_motions(gen([c.text for c in caps], [es.items[i].length for i in perm],
                                   generator=_torch_generator(5, r)))
        text = ev.encode_texts([c.tokens for c in caps])
        assert res["metrics"]["FID"]["values"][r] == pytest.approx(M.fid(gt[perm], em), rel=1e-6)
        hits = M.batched_r_precision(text[:64], em[:64], batch_size=32)   # 70 items: two full batches of 32
        assert res["metrics"]["R_precision_top3"]["values"][r] == pytest.approx(hits[2], abs=1e-12)


def test_settings_the_loop_refuses():
    from src.eval.loop import MM_TIMES, check_settings

    ok = {"repeats": 1, "mm": True, "mm_prompts": 1, "mm_generations": MM_TIMES + 1}
    check_settings(**ok)
    for bad, flag in (({"mm_generations": MM_TIMES}, "--mm_generations"), ({"mm_prompts": 0}, "--mm_prompts"),
                      ({"repeats": 0}, "--repeat_times"), ({"mm_safe": "other"}, "--mm_safe")):
        with pytest.raises(HmuError, match=flag):
            check_settings(**{**ok, **bad})
    check_settings(**{**ok, "mm": False, "mm_generations": 0, "mm_prompts": 0})  # MultiModality off: not checked
