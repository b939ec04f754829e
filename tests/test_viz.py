"""Stick-figure rendering, comparison videos and result plots (src/viz): fast, CPU, no screen."""
import logging
import time

import numpy as np
import pytest
from PIL import Image

from src.common.errors import HmuError
from src.common.datasets import get_spec
from src.viz import animate, compare, plots, skeleton
from src.viz.skeleton import Camera, project, render_frame, save_png, t_pose

CHAIN = get_spec("HumanML3D").kinematic_chain
HEAD, L_FOOT, R_FOOT, L_WRIST, R_WRIST, SPINE2 = 15, 10, 11, 20, 21, 6


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


def _near(img: np.ndarray, u: float, v: float, color: str, r: int = 2) -> float:
    """Smallest colour distance to ``color`` in a (2r+1)^2 window around pixel coordinate (u, v)."""
    c, row = int(np.floor(u)), int(np.floor(v))
    win = img[max(0, row - r):row + r + 1, max(0, c - r):c + r + 1].reshape(-1, 3).astype(float)
    return float(np.linalg.norm(win - _rgb(color), axis=1).min())


def _motion(T: int, *, speed: float = 0.05, wave: float = 0.3) -> np.ndarray:
    """A T-pose that walks along +z and waves its left arm: every frame differs."""
    m = np.repeat(t_pose()[None], T, axis=0)
    t = np.arange(T)
    m[:, :, 2] += speed * t[:, None]
    m[:, [18, 20], 1] += wave * np.sin(t / 2.0 + 0.3)[:, None]
    return m


# ---------------------------------------------------------------- projection


def test_project_front_camera_by_hand():
    # azim=0, elev=0: looking from +z at the target; x goes right, y goes up, 100 px per metre, centre (100, 100).
    cam = Camera(width=200, height=200, azim=0.0, elev=0.0, target=(0.0, 0.85, 0.0), scale=100.0)
    pts = np.array([[0.0, 0.85, 0.0], [0.7, 1.4, 0.0], [-0.7, 1.4, 0.3], [0.1, 0.0, 0.1]])
    np.testing.assert_allclose(project(pts, cam), [[100, 100], [170, 45], [30, 45], [110, 185]], atol=1e-9)


def test_project_turns_and_tilts():
    # azim=90: the camera sits on +x looking towards -x, so +z is on the picture's left.
    side = Camera(width=100, height=100, azim=90.0, elev=0.0, target=(0.0, 0.0, 0.0), scale=10.0)
    assert project(np.array([0.0, 0.0, 1.0]), side)[0] == pytest.approx(40.0)
    # elev=90: looking straight down, world -z (away from the default camera) is up in the picture.
    top = Camera(width=100, height=100, azim=0.0, elev=90.0, target=(0.0, 0.0, 0.0), scale=10.0)
    np.testing.assert_allclose(project(np.array([0.0, 5.0, -1.0]), top), [50.0, 40.0], atol=1e-9)
    # batch shape is kept
    assert project(np.zeros((4, 22, 3)), side).shape == (4, 22, 2)


def test_fit_camera_keeps_every_joint_inside():
    m = _motion(30, speed=0.1)
    for follow in (False, True):
        cam = skeleton.fit_camera([m], width=200, height=160, follow=follow)
        for t in (0, 29):
            c = skeleton.with_target(cam, skeleton.root_offsets(m)[t]) if follow else cam
            px = project(m[t], c)
            assert (px[:, 0] > 0).all() and (px[:, 0] < 200).all() and (px[:, 1] > 0).all() and (px[:, 1] < 160).all()


# ---------------------------------------------------------------- one frame


def test_render_known_pose_joints_land_where_projected(tmp_path):
    cam = Camera(width=200, height=200, azim=0.0, elev=0.0, target=(0.0, 0.85, 0.0), scale=100.0)
    png = tmp_path / "tpose.png"
    save_png(png, render_frame(t_pose(), chain=CHAIN, camera=cam))
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape == (200, 200, 3)
    # hand-computed from the T-pose's coordinates (head y=1.62, wrists x=+-0.70 y=1.40, spine y=1.20, feet y=0)
    assert _near(img, 100, 100 - 77, skeleton.SPINE_COLOR) < 30            # head: end of the spine chain
    assert _near(img, 100, 100 - 35, skeleton.SPINE_COLOR) < 30            # spine joint 6
    assert _near(img, 169, 45, skeleton.ARM_COLORS[1]) < 30                # left wrist, +x, orange
    assert _near(img, 31, 45, skeleton.ARM_COLORS[0]) < 30                 # right wrist, -x, dark red
    assert _near(img, 110, 181, skeleton.LEG_COLORS[1]) < 30               # left shin/foot, light blue
    assert _near(img, 90, 181, skeleton.LEG_COLORS[0]) < 30                # right shin/foot, dark blue
    # far from the body the picture is background
    assert _near(img, 185, 10, skeleton.BACKGROUND, r=0) < 1


def test_render_default_camera_head_above_feet_and_colours_present():
    j = t_pose()
    img = render_frame(j, chain=CHAIN, title="T-pose", size=(240, 180))
    assert img.shape == (180, 240, 3) and img.dtype == np.uint8
    cam = skeleton.fit_camera([j[None]], width=240, height=180)
    px = project(j, cam)
    assert px[HEAD, 1] < px[L_FOOT, 1] and px[HEAD, 1] < px[R_FOOT, 1]
    for joint, color in [(HEAD, skeleton.SPINE_COLOR), (L_WRIST, skeleton.ARM_COLORS[1]),
                         (R_WRIST, skeleton.ARM_COLORS[0]), (L_FOOT, skeleton.LEG_COLORS[1]),
                         (R_FOOT, skeleton.LEG_COLORS[0])]:
        assert _near(img, *px[joint], color, r=3) < 40, joint


def test_render_into_given_axes_and_other_chain():
    kit = get_spec("KIT-ML").kinematic_chain
    j = np.random.default_rng(0).normal(size=(21, 3)) * 0.3 + [0, 1, 0]
    fig = skeleton.new_figure(300, 150)
    ax = fig.add_axes((0.5, 0.0, 0.5, 1.0))
    img = render_frame(j, chain=kit, ax=ax, camera=skeleton.fit_camera([j[None]], width=150, height=150))
    assert img.shape == (150, 300, 3)
    assert (img[:, :150] == 255).all() and (img[:, 150:] != 255).any()  # drawn only into its axes


@pytest.mark.parametrize("bad, match", [(np.zeros((22, 2)), r"\(J, 3\)"), (np.zeros((10, 3)), "joint 21"),
                                        (np.full((22, 3), np.nan), "no finite")])
def test_render_rejects_bad_joints(bad, match):
    with pytest.raises(HmuError, match=match):
        render_frame(bad, chain=CHAIN)


# ---------------------------------------------------------------- videos


def _read_mp4(path):
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in gen]
    return meta, frames


def test_video_mp4_frame_count_size_and_padding(tmp_path):
    motions = {"original": _motion(10), "lcr": _motion(7, speed=0.0), "uce": _motion(4, wave=0.6)}
    t0 = time.perf_counter()
    out = compare.save_comparison(tmp_path / "cmp.mp4", motions, chain=CHAIN, title="a person walks and waves",
                                  panel_size=(160, 160))
    elapsed = time.perf_counter() - t0
    assert out == tmp_path / "cmp.mp4" and out.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["cmp.mp4"]  # no temporary left behind
    meta, frames = _read_mp4(out)
    assert len(frames) == 10
    w, h = meta["size"]
    assert w == 3 * 160 and h > 160 and h % 2 == 0
    assert meta["fps"] == pytest.approx(20)
    # each panel shows a figure (dark pixels), the title strip has text
    last = frames[-1]
    for i in range(3):
        assert (last[h - 160:, i * 160:(i + 1) * 160].min(axis=2) < 100).sum() > 50
    assert (last[: h - 160].min(axis=2) < 100).sum() > 20
    # the padded panel ("uce", 4 frames) stops moving; the full-length one does not
    body = slice(h - 160 + 30, h)   # below the label
    assert np.abs(frames[9][body, 320:].astype(int) - frames[5][body, 320:]).mean() < 1.0
    assert np.abs(frames[9][body, :160].astype(int) - frames[5][body, :160]).mean() > 1.0
    logging.getLogger(__name__).info("10-frame 3-panel mp4 in %.2f s", elapsed)


def test_video_gif_when_asked_and_when_ffmpeg_missing(tmp_path, monkeypatch, caplog):
    motions = {"original": _motion(6), "rece": _motion(6, wave=-0.4)}
    out = compare.save_comparison(tmp_path / "a.gif", motions, chain=CHAIN, title="kick", panel_size=(120, 100))
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == 6 and im.size[0] == 240

    monkeypatch.setattr(compare, "ffmpeg_exe", lambda: None)
    with caplog.at_level(logging.WARNING, logger="src.viz.compare"):
        out2 = compare.save_comparison(tmp_path / "b.mp4", motions, chain=CHAIN, panel_size=(120, 100))
    assert out2 == tmp_path / "b.gif" and out2.is_file() and not (tmp_path / "b.mp4").exists()
    assert any("gif" in r.getMessage() for r in caplog.records)
    with Image.open(out2) as im:
        assert im.n_frames == 6 and im.size == (240, 100)  # no title: panels only


def test_video_bad_input_writes_nothing(tmp_path):
    with pytest.raises(HmuError, match="lcr"):
        compare.save_comparison(tmp_path / "x.mp4", {"original": _motion(3), "lcr": np.zeros((3, 5, 3))},
                                chain=CHAIN)
    with pytest.raises(HmuError, match="format"):
        compare.save_comparison(tmp_path / "x.mp4", {"original": _motion(3)}, chain=CHAIN, fmt="avi")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- CLI


def test_cli_help_is_fast(cli):
    t0 = time.perf_counter()
    r = cli("src.viz.animate", "--help")
    assert r.returncode == 0 and "--joints" in r.stdout
    assert time.perf_counter() - t0 < 5


def test_cli_writes_video_and_refuses_overwrite(tmp_path):
    a, b = tmp_path / "orig.npy", tmp_path / "lcr.npy"
    np.save(a, _motion(5))
    np.save(b, _motion(3)[None])  # (1, T, J, 3) is accepted
    out = tmp_path / "v.gif"
    args = ["--joints", str(a), "--joints", str(b), "--title", "a man kicks", "--out", str(out), "--size", "100", "100"]
    assert animate.main(args) == 0
    with Image.open(out) as im:
        assert im.n_frames == 5 and im.size[0] == 200
    assert animate.main(args) == 2            # exists, no --force
    assert animate.main([*args, "--force"]) == 0


def test_cli_bad_file_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 22)))
    assert animate.main(["--joints", str(bad), "--out", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --joints") and "bad.npy" in err and "\n" not in err
    assert animate.main(["--joints", str(bad), "--labels", "a", "b", "--out", str(tmp_path / "o.mp4")]) == 2


# ---------------------------------------------------------------- plots

RECORDS = [
    {"method": "original", "forget": {"FID": {"mean": 0.5, "ci95": 0.05}, "Leakage": {"mean": 0.8, "ci95": 0.04}},
     "retain": {"FID": {"mean": 0.4, "ci95": 0.03}, "R@3": 0.72}},
    {"method": "lcr", "forget": {"FID": {"mean": 3.5, "ci95": 0.2}, "Leakage": {"mean": 0.1, "ci95": 0.02}},
     "retain": {"FID": {"mean": 0.6, "ci95": 0.05}, "R@3": {"mean": 0.70, "ci95": 0.01}}},
    {"method": "uce", "forget": {"FID": {"mean": 2.5, "ci95": 0.3}, "Leakage": {"mean": 0.3, "ci95": None}},
     "retain": {"FID": {"mean": 0.9, "ci95": 0.05}, "R@3": {"mean": float("nan")}}},
]


def _png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def _has_color(img, color, tol=10):
    return (np.abs(img.astype(int) - _rgb(color)).max(axis=2) <= tol).sum()


def test_metric_bars_png(tmp_path):
    out = plots.metric_bars(RECORDS, ["FID", "R@3", "Leakage"], tmp_path / "bars.png", size=(700, 480))
    img = _png(out)
    assert img.shape == (480, 700, 3)
    assert (img.min(axis=2) < 200).mean() > 0.01          # something drawn
    colors = plots.method_colors([r["method"] for r in RECORDS])
    for m in colors.values():                              # every method has bars in its colour
        assert _has_color(img, m) > 100


def test_tradeoff_scatter_png(tmp_path):
    out = plots.tradeoff_scatter(RECORDS, "Leakage", "FID", tmp_path / "sc.png", size=(400, 300), title="t")
    img = _png(out)
    assert img.shape == (300, 400, 3)
    for m in plots.method_colors([r["method"] for r in RECORDS]).values():
        assert _has_color(img, m) > 10


def test_plots_bad_input(tmp_path):
    with pytest.raises(HmuError, match="'FIDD'.*known: FID"):
        plots.metric_bars(RECORDS, ["FIDD"], tmp_path / "x.png")
    with pytest.raises(HmuError, match="record 0 has no 'method'"):
        plots.metric_bars([{"forget": {}}], ["FID"], tmp_path / "x.png")
    with pytest.raises(HmuError, match="forget/nope"):
        plots.tradeoff_scatter(RECORDS, "nope", "FID", tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []
    assert plots.stat(RECORDS[2], "retain", "R@3") is None and plots.stat(RECORDS[2], "forget", "Leakage") == (0.3, 0.0)


def test_cli_still_and_gif_fallback_respects_force(tmp_path, monkeypatch):
    a = tmp_path / "orig.npy"
    np.save(a, _motion(4))
    still = tmp_path / "still.png"
    args = ["--joints", str(a), "--out", str(tmp_path / "v.mp4"), "--size", "80", "60", "--still", str(still)]
    monkeypatch.setattr(compare, "ffmpeg_exe", lambda: None)
    assert animate.main(args) == 0
    assert (tmp_path / "v.gif").is_file() and not (tmp_path / "v.mp4").exists()
    assert _png(still).shape == (60, 80, 3)
    assert animate.main(args) == 2              # the fallback gif exists: refused without --force
    assert animate.main([*args, "--force"]) == 0


def test_long_walk_camera_follows_root():
    walk = _motion(60, speed=0.1)                 # 5.9 m along +z
    assert skeleton.should_follow([walk]) and not skeleton.should_follow([_motion(60, speed=0.01)])
    fixed = list(compare.render_comparison({"w": walk}, chain=CHAIN, panel_size=(120, 120), follow=False,
                                         trajectory=False))
    auto = list(compare.render_comparison({"w": walk}, chain=CHAIN, panel_size=(120, 120), trajectory=False))

    def body_pixels(frame):
        return int((frame.min(axis=2) < 100).sum())

    # following keeps the figure large: many more dark (limb) pixels than the whole-path view
    assert body_pixels(auto[-1]) > 2 * body_pixels(fixed[-1])
