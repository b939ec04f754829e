"""src/config/flags.py: flags built from the typed configs (one declaration per option) and their --help."""
from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from src.config import MaskTransConfig, VQConfig
from src.config.base import OptConfig
from src.config.flags import HelpFormatter, add_config_flags, add_device_flags, add_location_flags, opt

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(kw_only=True)
class _Cfg(OptConfig):
    lr: float = opt(2e-4, help="learning rate")
    steps: list[int] = opt(factory=lambda: [3, 5], help="milestones")
    loss: str = opt("l1", help="loss", choices=("l1", "l2"))
    share: bool = opt(False, help="share tables")
    name: str | None = opt(None, help="a name")
    bare: int = 1


def _parser(**kw) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter)
    add_config_flags(p, _Cfg, ["lr", "steps", "loss", "share", "name"], **kw)
    return p


def test_plain_flags_take_type_and_default_from_the_field():
    p = _parser()
    assert vars(p.parse_args([])) == {"lr": 2e-4, "steps": [3, 5], "loss": "l1", "share": False, "name": None}
    a = p.parse_args(["--lr", "0.5", "--steps", "7", "8", "--loss", "l2", "--share", "--name", "x"])
    assert (a.lr, a.steps, a.loss, a.share, a.name) == (0.5, [7, 8], "l2", True, "x")
    assert p.parse_args(["--no-share"]).share is False
    with pytest.raises(SystemExit):
        p.parse_args(["--loss", "l3"])  # choices from the field's metadata


def test_layered_flags_default_to_none_and_show_the_real_default_once():
    p = _parser(layered=True, default_text=lambda name, d: "9 with --preset x" if name == "lr" else None)
    assert all(v is None for v in vars(p.parse_args([])).values())
    text = " ".join(p.format_help().split())
    assert "learning rate (default: 9 with --preset x)" in text
    assert "milestones (default: 3 5)" in text
    assert "(default: None)" not in text
    assert text.count("(default") == 4  # lr, steps, loss, share; not the name whose default is None


def test_a_field_without_help_is_refused():
    with pytest.raises(KeyError, match="help"):
        add_config_flags(argparse.ArgumentParser(), _Cfg, ["bare"])


def test_device_and_location_flags():
    p = argparse.ArgumentParser()
    add_device_flags(p)
    add_location_flags(p, "checkpoints_dir", "glove_dir")
    a = p.parse_args([])
    assert (a.gpu_id, a.device, a.checkpoints_dir, a.glove_dir) == (-1, None, None, None)
    with pytest.raises(KeyError):
        add_location_flags(p, "nowhere_dir")


@pytest.mark.parametrize("module", ["src.train.vq", "src.train.mask", "src.train.residual", "src.train.length",
                                    "src.train.bamm"])
def test_trainer_help_prints_each_default_once(module):
    r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True, check=True)
    text = " ".join(r.stdout.split())
    assert "(default: None)" not in text
    assert "random seed (upstream's) (default: 3407)" in text
    for part in text.split("--")[1:]:
        assert part.count("(default") <= 1, part


def test_trainer_flags_follow_the_config_fields():
    """A config default changed in src/config changes the trainer's --help: no second copy to drift."""
    from src.train.mask import build_parser

    help_text = " ".join(build_parser().format_help().split())
    assert f"frames (default: {MaskTransConfig().max_motion_length})" in help_text
    assert VQConfig.__dataclass_fields__["nb_code"].metadata["help"] == "codebook size"


def test_which_epoch_is_upstreams_spelling_of_ckpt():
    """``--which_epoch net_best_fid`` / ``E0010`` (upstream's eval option) picks <run>/model/<name>.tar."""
    import pytest

    from src.eval.t2m_unlearn import build_parser as eval_parser
    from src.gen.__main__ import build_parser as gen_parser
    from src.config.command import parse_config
    from src.methods.finetune import FinetuneConfig

    assert eval_parser().parse_args(["--which_epoch", "E0010"]).ckpt == "E0010.tar"
    assert eval_parser().parse_args([]).ckpt == "net_best_fid.tar"
    assert gen_parser().parse_args(["--name", "m", "--which_epoch", "latest"]).ckpt == "latest.tar"
    ft = parse_config(FinetuneConfig, ["--name", "x", "--which_epoch", "net_best_acc"], prog="ft").resolved()
    assert ft.ckpt == "net_best_acc.tar"
    with pytest.raises(SystemExit):
        parse_config(FinetuneConfig, ["--name", "x", "--which_epoch", "../elsewhere/x"], prog="ft")
    with pytest.raises(SystemExit):
        eval_parser().parse_args(["--which_epoch", "../elsewhere/x"])
