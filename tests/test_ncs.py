"""NCS (src/eval/ncs.py) against a case computed by hand from upstream's definition (ncs_compute.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from src.eval import ncs

KW = ["kick", "punch"]
# (name, repeat, retrieved captions in rank order); the rank written next to each is worked out by hand
RECORDS = [
    ("a", 0, ["a man walks", "a person kicks", "kick"]),        # 2
    ("a", 0, ["a person punches", "walks", "jumps"]),           # 1 -> motion a, repeat 0: min(2, 1) = 1
    ("b", 0, ["walks", "runs", "jumps"]),                       # none: 3 + 1 = 4
    ("c", 0, ["x", "y", "Kick high"]),                          # case-sensitive: "Kick" is no hit -> 4
    ("a", 1, ["walks", "kicks", "z"]),                          # 2
    ("b", 1, ["walk", "run", "punching"]),                      # 3
    ("c", 1, ["kicking", "a", "b"]),                            # 1
]


def test_ranks_by_hand():
    got = ncs.retrieval_ranks([r for _, _, r in RECORDS], KW)
    assert got.tolist() == [2, 1, 4, 4, 2, 3, 1]
    assert ncs.retrieval_ranks([["walk"], ["a", "b", "c", "d", "e"]], KW).tolist() == [2, 6]  # len + 1 per list


def test_summary_by_hand():
    names = [n for n, _, _ in RECORDS]
    reps = [r for _, r, _ in RECORDS]
    out = ncs.ncs_from_retrievals([r for _, _, r in RECORDS], KW, names, reps)
    # repeat 0: a=1, b=4, c=4 ; repeat 1: a=2, b=3, c=1
    want = {"ncs@1": (1 / 3 + 1 / 3) / 2, "ncs@2": (1 / 3 + 2 / 3) / 2, "ncs@3": (1 / 3 + 1) / 2, "ncs@5": 1.0,
            "ncs@10": 1.0, "mean_rank": (3 + 2) / 2, "median_rank": (4 + 2) / 2}
    for k, v in want.items():
        assert out[k] == pytest.approx(v), k
    # two repeats: 1.96 * std(ddof=1) / sqrt(2) = 0.98 * |x0 - x1|
    conf = {"ncs@1": 0.0, "ncs@2": 0.98 / 3, "ncs@3": 0.98 * 2 / 3, "mean_rank": 0.98, "median_rank": 1.96}
    for k, v in conf.items():
        assert out[f"conf/{k}"] == pytest.approx(v), k
    # each motion's minimum over all repeats: a=1, b=3, c=1
    mins = {"min_ncs@1": 2 / 3, "min_ncs@2": 2 / 3, "min_ncs@3": 1.0, "min_mean_rank": 5 / 3, "min_median_rank": 1.0}
    for k, v in mins.items():
        assert out[k] == pytest.approx(v), k
    assert out["forget_size"] == 3 and out["repeats"] == 2


def test_one_repeat_defaults_and_nan_interval():
    out = ncs.ncs_summary([1, 3, 11])
    assert out["ncs@1"] == pytest.approx(1 / 3) and out["ncs@3"] == pytest.approx(2 / 3)
    assert out["ncs@10"] == pytest.approx(2 / 3)
    assert out["mean_rank"] == pytest.approx(5.0) and out["median_rank"] == 3.0
    assert math.isnan(out["conf/ncs@1"])
    with pytest.raises(ValueError):
        ncs.ncs_summary([0, 1])


def test_first_keyword_rank_from_similarities():
    sims = np.array([[0.9, 0.1, 0.5, 0.7],    # order 0, 3, 2, 1 -> first keyword text (2) at rank 3
                     [0.2, 0.8, 0.1, 0.3],    # order 1, ... -> rank 1
                     [0.5, 0.0, 0.0, 0.5]])   # ties keep text order: 0, 3, 1, 2 -> text 1 at rank 3
    is_kw = np.array([False, True, True, False])
    assert ncs.first_keyword_rank(sims, is_kw).tolist() == [3, 1, 3]
    assert ncs.first_keyword_rank(sims, is_kw, top=2).tolist() == [3, 1, 3]  # beyond the top 2: 2 + 1
    assert ncs.first_keyword_rank(sims, is_kw, top=1).tolist() == [2, 1, 2]
    assert ncs.first_keyword_rank(sims, np.zeros(4, bool)).tolist() == [5, 5, 5]


# ---------------------------------------------------------------------------------------------------------------------
# python -m src.eval.ncs_compute

def _records_file(tmp_path, records, **meta):
    import json

    f = tmp_path / "gen" / "records.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({**meta, "records": records}))
    return f


def test_cli_on_upstream_retrieval_lists_matches_the_hand_case(tmp_path, capsys):
    import json

    from src.eval import ncs_compute

    recs = [{"name": n, "repeat": r, "retrieval": [{"description": c} for c in caps]} for n, r, caps in RECORDS]
    f = _records_file(tmp_path, recs)
    assert ncs_compute.main(["--file", str(f), "--forget_kw", *KW]) == 0
    out = json.loads((f.parent / "ncs.json").read_text())
    # repeat 0: a 1, b 4, c 4; repeat 1: a 2, b 3, c 1 (see RECORDS)
    assert out["summary"]["ncs@1"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert out["summary"]["ncs@3"] == pytest.approx((1 / 3 + 1) / 2)
    assert out["summary"]["mean_rank"] == pytest.approx((9 / 3 + 6 / 3) / 2)
    assert out["summary"]["min_mean_rank"] == pytest.approx((1 + 3 + 1) / 3)
    assert [r["rank"] for r in out["ranks"]] == [2, 1, 4, 4, 2, 3, 1]
    logged = json.loads((f.parent / "ncs.jsonl").read_text().splitlines()[0])
    assert logged["unlearn/ncs@1"] == pytest.approx(1 / 3)
    assert "ncs@1" in capsys.readouterr().out
    assert ncs_compute.main(["--file", str(f), "--forget_kw", *KW]) == 2  # no overwrite without --force
    assert "--force" in capsys.readouterr().err


def test_cli_refuses_a_file_without_records(tmp_path, capsys):
    from src.eval import ncs_compute

    f = tmp_path / "x.json"
    f.write_text('{"records": []}')
    assert ncs_compute.main(["--file", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def texts_of_all(root):
    """(caption, tokens) of every caption line of the motions in all.txt, in file order."""
    from src.data.humanml3d import parse_caption_line

    out = []
    for mid in (root / "all.txt").read_text().split():
        for line in (root / "texts" / f"{mid}.txt").read_text().splitlines():
            if line.strip():
                cap = parse_caption_line(line)
                out.append((cap.text, list(cap.tokens)))
    return out


@pytest.mark.slow
def test_cli_with_tmr_retrieval_equals_a_brute_force_ranking(tmp_path):
    """gen_t2m_batch-style records (here: ground-truth motions as the 'generations'), a few-step TMR: the CLI's
    ranks equal a ranking done here by a loop over the gallery, from the model's own encodings."""
    import json
    import shutil

    import torch

    from src.data.humanml3d import read_motion
    from src.data.synth.generate import generate_synth
    from src.eval import ncs_compute
    from src.models.tmr.load import load_tmr
    from src.models.tmr.text import WordVectorText
    from src.data.word_vectorizer import load_word_vectorizer
    from src.train import tmr as T

    ds = tmp_path / "ds"
    generate_synth(ds / "synth", n=32, seed=2, workers=1)
    assert T.main(["--dataset_name", "synth", "--name", "tiny", "--dataset_dir", str(ds), "--checkpoints_dir",
                   str(tmp_path / "ck"), "--latent_dim", "16", "--num_layers", "1", "--batch_size", "4",
                   "--max_epoch", "1", "--max_steps", "2", "--max_train_frames", "48", "--text_model",
                   "word_vectors", "--no_progress"]) == 0
    root = ds / "synth"
    ids = (root / "test.txt").read_text().split()[:5]
    recs = []
    for r in range(2):
        for i in ids:
            dst = tmp_path / "gen" / "feats" / str(r) / f"{i}.npy"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / "new_joint_vecs" / f"{i}.npy", dst)
            recs.append({"name": i, "repeat": r, "feats_path": f"feats/{r}/{i}.npy", "caption": "x"})
    f = _records_file(tmp_path, recs, dataset_name="synth")
    kws = ["kick", "punch"]
    assert ncs_compute.main(["--file", str(f), "--forget_kw", *kws, "--tmr_name", "tiny", "--top", "1000",
                             "--gallery_split", "all", "--checkpoints_dir", str(tmp_path / "ck"),
                             "--dataset_dir", str(ds)]) == 0
    written = json.loads((f.parent / "ncs.json").read_text())["ranks"]
    got = [r["rank"] for r in written]
    n_gallery = sum(1 for r in written[0]["retrieval"])
    assert n_gallery == len(texts_of_all(ds / "synth")) < 1000  # --top beyond the gallery keeps all of it

    model = load_tmr(tmp_path / "ck" / "synth" / "tiny", modules=("motion_encoder", "text_encoder")).eval()
    side = WordVectorText(load_word_vectorizer(root / "glove"))
    texts = texts_of_all(root)
    mean, std = np.load(root / "Mean.npy"), np.load(root / "Std.npy")
    with torch.no_grad():
        x, mask = side.token_features([t for _, t in texts])
        t_lat = torch.nn.functional.normalize(model.encode(x, mask, modality="text", sample_mean=True), dim=-1)
        want = []
        for rec in recs:
            m = (read_motion(f.parent / rec["feats_path"], dim_pose=len(mean))[:196] - mean) / std
            mt = torch.from_numpy(m.astype(np.float32))[None]
            lat = model.encode(mt, torch.ones(1, len(m), dtype=torch.bool), modality="motion", sample_mean=True)
            sims = (t_lat @ torch.nn.functional.normalize(lat, dim=-1)[0]).tolist()
            order = sorted(range(len(texts)), key=lambda j: -sims[j])   # every gallery text, best first
            hit = [any(k in texts[j][0] for k in kws) for j in order]
            want.append(hit.index(True) + 1 if True in hit else len(texts) + 1)
    assert got == want
    assert len(set(got)) > 1, got  # a ranking that tells the motions apart, not all "none retrieved"


def test_batch_generation_jobs_one_per_caption_line_and_ncs_takes_each_motions_best_line():
    """Upstream's batch generation writes one record per caption line under the motion's name; NCS then ranks each
    motion by its best line (three chances for a three-line motion), where one record per motion has one chance."""
    import numpy as np

    from src.methods.gen_t2m_batch import generation_jobs

    items = [("m1", 40, ["a man kicks", "someone kicks a ball", "a person walks"]), ("m2", 60, ["a jab"])]
    jobs = generation_jobs(items, "caption", np.random.default_rng(0))
    assert jobs == [("m1", "m1_0", 40, "a man kicks"), ("m1", "m1_1", 40, "someone kicks a ball"),
                    ("m1", "m1_2", 40, "a person walks"), ("m2", "m2_0", 60, "a jab")]
    per_motion = generation_jobs(items, "motion", np.random.default_rng(0))
    assert [(m, s, n) for m, s, n, _ in per_motion] == [("m1", "m1", 40), ("m2", "m2", 60)]
    assert per_motion[0][3] in items[0][2] and per_motion[1][3] == "a jab"
    # hand-assigned retrieval ranks of the four generations: m1's lines rank 5, 2, 11; m2's line ranks 1
    out = ncs.ncs_summary([5, 2, 11, 1], names=[m for m, *_ in jobs])
    assert out["forget_size"] == 2
    assert out["ncs@1"] == pytest.approx(1 / 2) and out["ncs@2"] == pytest.approx(1.0)   # m1 counts its best: 2
    assert out["mean_rank"] == pytest.approx((2 + 1) / 2)
