"""Per-action figures (src.data.action_figures), the balanced window sampling (src.train.feed) and the VQ trainer's
per-action reconstruction (src.train.vq), on hand-built cases."""
from __future__ import annotations

import numpy as np
import pytest

from src.data import action_figures as af


def standing(T: int = 5, lift: float = 0.0) -> np.ndarray:
    """(T, 22, 3): every joint at the origin at height ``lift``, feet on that floor, chest 1.4 m above it."""
    j = np.zeros((T, 22, 3))
    j[..., 1] = lift
    j[:, 9, 1] = lift + 1.4
    return j


def test_ankle_height_is_above_the_motions_floor():
    j = standing(4, lift=1.0)            # a floor at y = 1 m: heights are measured from it, not from y = 0
    j[:, [7, 8], 1] = 1.1                # ankles 0.1 m above the floor
    j[2, 8, 1] = 1.75                    # the right ankle kicks to 0.75 m in frame 2
    assert af.ankle_height(j) == pytest.approx([0.1, 0.1, 0.75, 0.1])
    assert af.segment_figures(j)["ankle_m"] == pytest.approx(0.75)
    assert af.segment_figures(j, (0, 2))["ankle_m"] == pytest.approx(0.1)  # the kick frame is outside
    assert np.isnan(af.segment_figures(j, (3, 3))["ankle_m"])


def test_wrist_reach_is_horizontal_distance_from_the_chest():
    j = standing(3)
    j[:, 9] = (0.0, 1.4, 0.0)
    j[:, 20] = (0.1, 0.8, 0.0)           # hanging: 0.1 m
    j[:, 21] = (-0.1, 0.8, 0.0)
    j[1, 21] = (0.3, 1.6, 0.4)           # extended: 3-4-5 triangle, the height does not count
    assert af.wrist_reach(j) == pytest.approx([0.1, 0.5, 0.1])
    assert af.segment_figures(j, (1, 2))["reach_m"] == pytest.approx(0.5)


def test_mpjpe_over_a_segment():
    a = standing(4)
    b = a.copy()
    b[2:] += (0.03, 0.04, 0.0)           # 5 cm error on frames 2, 3
    assert af.mpjpe_m(a, b) == pytest.approx(0.025)
    assert af.mpjpe_m(a, b, (2, 4)) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        af.mpjpe_m(a, b[:3])
    with pytest.raises(ValueError):
        af.ankle_height(np.zeros((3, 21, 3)))


def test_rows_and_medians_per_action():
    true = standing(6)
    true[:, [7, 8], 1] = 0.1
    true[3, 7, 1] = 0.8                  # a kick in frames 2..4
    rec = true.copy()
    rec[3, 7, 1] = 0.3                   # reconstructed at 0.3 m
    rows = af.reconstruction_rows([(true, rec, [("walk", 0, 2), ("kick", 2, 5)]),
                                   (true, true, [("kick", 2, 5)]), (true, true, [("kick", 7, 9)])])
    assert [r["action"] for r in rows] == ["walk", "kick", "kick"]   # an empty segment gives no row
    kick = rows[1]
    assert kick["ankle_true_m"] == pytest.approx(0.8) and kick["ankle_rec_m"] == pytest.approx(0.3)
    assert kick["mpjpe_m"] == pytest.approx(0.5 / (3 * 22))
    s = af.summarise(rows)
    assert list(s) == ["kick", "walk"] and s["kick"]["n"] == 2
    assert s["kick"]["ankle_rec_m"] == pytest.approx(0.55)          # median of 0.3 and 0.8
    assert s["walk"]["mpjpe_m"] == 0.0
    flat = af.flat_log(s, ["kick"])
    assert flat["kick_ankle_true_m"] == pytest.approx(0.8) and not any(k.startswith("walk") for k in flat)
    assert "kick" in af.format_table(s).splitlines()[1]


def test_action_frame_weights_balance_rare_actions():
    from src.train.feed import action_frame_weights, window_weights

    segs = [[("walk", 0, 30)], [("walk", 0, 5), ("kick", 5, 15)]]     # walk 35 frames, kick 10: shares 7/9, 2/9
    w = action_frame_weights(segs, [30, 20], power=1.0)
    assert w[0] == pytest.approx(np.full(30, 9 / 7))
    assert w[1][:5] == pytest.approx(np.full(5, 9 / 7)) and w[1][5:15] == pytest.approx(np.full(10, 9 / 2))
    # every action gets the same total weight with power 1
    assert w[0].sum() + w[1][:5].sum() == pytest.approx(w[1][5:15].sum())
    assert w[1][15:] == pytest.approx(np.full(5, np.median([9 / 7, 9 / 2])))   # unlabelled: the median action
    assert all(np.all(x == 1.0) for x in action_frame_weights(segs, [30, 20], power=0.0))
    ww = window_weights([np.array([1.0, 1.0, 3.0, 3.0]), np.array([5.0]), np.array([2.0, 4.0])], 2)
    assert ww == pytest.approx([1.0, 2.0, 3.0, 3.0])                   # the 1-frame motion has no window


def test_window_weights_follow_the_window_dataset_order(tmp_path):
    from src.data.datasets import MotionWindowDataset
    from src.train.feed import window_weights

    (tmp_path / "new_joint_vecs").mkdir()
    for n in (7, 3, 9):
        np.save(tmp_path / "new_joint_vecs" / f"{n:06d}.npy", np.full((n, 263), float(n), dtype=np.float32))
    (tmp_path / "train.txt").write_text("000007\n000003\n000009\n")
    ds = MotionWindowDataset(tmp_path, "train", window=4, mean=np.zeros(263), std=np.ones(263))
    ww = window_weights([np.full(7, 7.0), np.full(3, 3.0), np.full(9, 9.0)], 4)
    assert len(ww) == len(ds)
    for i in (0, 3, 4, len(ds) - 1):     # each window's weight belongs to the motion the dataset gives at i
        assert ww[i] == pytest.approx(ds[i][0, 0])


def test_weighted_order_draws_in_proportion():
    from src.common.errors import HmuError
    from src.train.feed import weighted_order

    only = weighted_order([0.0, 0.0, 1.0], batch_size=4, seed=0, epoch=0, limit=10)
    assert len(only) == 2 and all((b == 2).all() for b in only)       # 10 drawn, the partial batch dropped
    a = np.concatenate(weighted_order([1.0, 3.0], batch_size=100, seed=1, epoch=0, limit=4000))
    assert (a == 1).mean() == pytest.approx(0.75, abs=0.03)
    again = np.concatenate(weighted_order([1.0, 3.0], batch_size=100, seed=1, epoch=0, limit=4000))
    other = np.concatenate(weighted_order([1.0, 3.0], batch_size=100, seed=1, epoch=1, limit=4000))
    assert (a == again).all() and not (a == other).all()
    with pytest.raises(HmuError):
        weighted_order([0.0, 0.0], batch_size=1, seed=0, epoch=0, limit=5)


class IdentityVQ:
    """decode(encode(x)) = x, with the interface reconstruct() uses."""

    downsample = 4

    def __init__(self):
        import torch

        self.w = torch.nn.Parameter(torch.zeros(1))
        self.training = True

    def parameters(self):
        return iter([self.w])

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def encode(self, x):
        return x, None

    def forward_decoder(self, x):
        return x


def test_action_reconstruction_of_a_perfect_vq_equals_the_ground_truth():
    from src.data.synth.generate import make_motion
    from src.train.vq import action_log, action_reconstruction, reconstruction_mpjpe

    ms = [make_motion(0, i, violent=True, mode="mixed") for i in range(3)]
    motions = [m["features"] for m in ms]
    segs = [af.action_segments(m["label"]) for m in ms]
    D = motions[0].shape[1]
    model = IdentityVQ()
    s = action_reconstruction(model, motions, segs, mean=np.zeros(D, np.float32), std=np.ones(D, np.float32),
                              joints_num=22)
    assert model.training                       # the mode is restored
    assert set(s) == {a for sg in segs for a, *_ in sg}
    for figs in s.values():
        assert figs["mpjpe_m"] == pytest.approx(0.0, abs=1e-6)
        assert figs["ankle_rec_m"] == pytest.approx(figs["ankle_true_m"], abs=1e-6)
        assert figs["reach_rec_m"] == pytest.approx(figs["reach_true_m"], abs=1e-6)
    # a violent plan holds one of the violent actions; its ground truth figure is the labelled segment's own
    from src.data.synth.actions import VIOLENT

    assert any(a in VIOLENT for a in s)
    assert reconstruction_mpjpe(model, motions, mean=np.zeros(D), std=np.ones(D), joints_num=22)["mpjpe_mm"] \
        == pytest.approx(0.0, abs=1e-3)
    log = action_log(s)
    name = next(iter(s))
    assert log[f"{name}_mpjpe_mm"] == pytest.approx(1000 * s[name]["mpjpe_m"])
    assert log[f"{name}_ankle_gt_m"] == s[name]["ankle_true_m"] and f"{name}_reach_m" in log


def test_action_azimuth_puts_the_movement_across_the_view():
    from src.viz.skeleton import action_azimuth

    still = standing(20)
    still[:, [7, 8, 20, 21]] = [[0.1, 0.1, 0.0], [-0.1, 0.1, 0.0], [0.2, 0.8, 0.0], [-0.2, 0.8, 0.0]]
    assert action_azimuth([still]) == 30.0                      # nothing moves: the default three-quarter view
    kick = still.copy()
    kick[:, 8, 2] = np.linspace(0.0, 0.7, 20)                   # the right ankle swings forward (+z)
    assert action_azimuth([kick]) == -70.0                      # seen from the right (-x), nearly in profile
    left = still.copy()
    left[:, 7, 2] = np.linspace(0.0, 0.7, 20)
    assert action_azimuth([left]) == 70.0
    side = still.copy()
    side[:, 20, 0] = np.linspace(0.2, 0.8, 20)                  # the left wrist reaches out sideways (+x)
    assert action_azimuth([side]) == 30.0                       # seen from the front-left
    diag = still.copy()
    diag[:, 21, 0] = np.linspace(-0.2, -0.7, 20)                # right wrist out at 45 degrees between -x and +z
    diag[:, 21, 2] = np.linspace(0.0, 0.5, 20)
    assert action_azimuth([diag]) == pytest.approx(-45.0)
    assert action_azimuth([np.zeros((5, 21, 3))]) == 30.0       # not the 22-joint layout


def test_balance_actions_flag_reaches_the_run_config():
    import importlib

    from src.config import MaskTransConfig, VQConfig
    from src.train.options import resolve_config

    def args(module, *argv):
        return vars(importlib.import_module(module).build_parser().parse_args(["--name", "x", *argv]))

    cfg = resolve_config(VQConfig, args("src.train.vq", "--dataset_name", "synth", "--balance_actions", "1.5"), "vq")
    assert cfg.extra["balance_actions"] == "1.5" and "balance_actions: 1.5" in cfg.to_text()
    cfg = resolve_config(MaskTransConfig, args("src.train.mask", "--balance_actions", "0.5"), "mask")
    assert cfg.extra["balance_actions"] == "0.5"
    cfg = resolve_config(VQConfig, args("src.train.vq", "--dataset_name", "t2m"), "vq")
    assert float(cfg.extra.get("balance_actions", 0)) == 0.0      # released sizes: upstream's uniform windows


def test_entry_weights_follow_each_entrys_motion(tmp_path):
    import json

    from src.train.feed import entry_weights

    (tmp_path / "labels.json").write_text(json.dumps({"concepts": {}, "motions": {
        "000001": {"segments": [{"action": "walk", "start": 0, "end": 30}]},
        "000002": {"segments": [{"action": "walk", "start": 0, "end": 5}, {"action": "kick", "start": 5, "end": 15}]},
    }}))

    class Folder:
        root = tmp_path

    class DS:
        names = ["000002", "000001", "A_000002"]                   # a sub-clip name carries its motion id
        entries = [(np.zeros((15, 4)), []), (np.zeros((30, 4)), []), (np.zeros((15, 4)), [])]

    assert entry_weights(Folder(), DS(), power=0.0) is None
    w = entry_weights(Folder(), DS(), power=1.0)   # shares over the entries: walk 40/60, kick 20/60 -> 1.5, 3
    assert w == pytest.approx([(5 * 1.5 + 10 * 3) / 15, 1.5, (5 * 1.5 + 10 * 3) / 15])


def test_readme_renders_the_action_figures_from_their_files(tmp_path):
    import json

    from src.report.readme import render_action_figures

    d = tmp_path / "action_figures"
    d.mkdir()
    def stat(m):
        return {"n": 16, "median": m, "p10": m - 0.05, "p90": m + 0.05}
    (d / "gen_after.json").write_text(json.dumps({"actions": {
        "kick": {"gen_ankle": stat(0.51), "gen_reach": stat(0.4)}, "punch": {"gen_reach": stat(0.39)}}}))
    (d / "recon_after.json").write_text(json.dumps({"actions": {
        "kick": {"ankle_true_m": 0.70, "ankle_rec_m": 0.63, "reach_true_m": 0.4, "reach_rec_m": 0.4},
        "punch": {"ankle_true_m": 0.1, "ankle_rec_m": 0.1, "reach_true_m": 0.52, "reach_rec_m": 0.5}}}))
    rows = render_action_figures(tmp_path).splitlines()[2:]
    assert rows == ["| kick | highest ankle | 0.70 | 0.63 | 0.51 (0.46–0.56) | 16 |",
                    "| punch | wrist reach | 0.52 | 0.50 | 0.39 (0.34–0.44) | 16 |"]   # no jab in the files: no row
