"""src.config.command: a command's flags come from its typed config, and parsing gives the config back."""
from __future__ import annotations

import dataclasses
import re

import pytest

from src.common.errors import HmuError
from src.common.validate import Range
from src.config.command import (DeviceOptions, Locations, RunOptions, command_context, config_parser, group,
                                parse_config, to_argv)
from src.config.flags import opt


@dataclasses.dataclass(kw_only=True)
class Demo:
    """A demo command."""

    dataset_name: str = opt("synth", help="dataset")
    concept: str = opt("violence", help="concept", aliases=("--split_name",))
    code_prune: int = opt(16, help="codes per layer", range=Range(lo=0, hi=64))
    alpha: float = opt(1.0, help="noise scale")
    layers: list[int] | None = opt(None, help="layers")
    mode: str = opt("ratio", help="selection", choices=("ratio", "upstream"))
    orth: bool = opt(False, help="orth")
    seed: int = opt(0, help="seed")  # name in FLAG_RANGES? no: unbounded
    batch_size: int = opt(8, help="batch")  # FLAG_RANGES: positive
    device: DeviceOptions = group(DeviceOptions)
    where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir"))
    run: RunOptions = group(RunOptions)

    def check(self) -> None:
        if self.orth and self.alpha > 1:
            raise HmuError("--orth takes --alpha <= 1")


def parse(*argv):
    return parse_config(Demo, list(argv), prog="demo")


def test_defaults_are_the_fields_defaults():
    assert parse() == Demo()


def test_flags_aliases_groups_and_lists():
    cfg = parse("--split_name", "kick", "--code_prune", "8", "--layers", "0", "2", "--orth", "--alpha", "0.5",
                "--gpu_id", "-1", "--checkpoints_dir", "/x", "--force", "-v")
    assert cfg.concept == "kick" and cfg.code_prune == 8 and cfg.layers == [0, 2] and cfg.orth and cfg.alpha == 0.5
    assert cfg.where.checkpoints_dir == "/x" and cfg.run.force and cfg.run.verbose
    assert cfg.device == DeviceOptions(gpu_id=-1)


def test_only_limits_a_groups_flags():
    with pytest.raises(SystemExit):
        parse("--results_dir", "/r")
    text = config_parser(Demo, prog="demo").format_help()
    assert "--dataset_dir" in text and "--results_dir" not in text and "--glove_dir" not in text


@pytest.mark.parametrize("argv, needle", [
    (("--code_prune", "65"), "--code_prune must be >= 0 and <= 64, got 65"),
    (("--code_prune", "-1"), "--code_prune must be >= 0 and <= 64, got -1"),
    (("--alpha", "nan"), "--alpha must be a finite number"),
    (("--alpha", "inf"), "--alpha must be a finite number"),
    (("--batch_size", "0"), "--batch_size must be >= 1"),
    (("--gpu_id", "-2"), "--gpu_id must be >= -1"),
    (("--orth", "--alpha", "2"), "--orth takes --alpha <= 1"),
])
def test_ranges_and_cross_field_rules_are_one_line_errors(argv, needle):
    with pytest.raises(HmuError, match=re.escape(needle)):
        parse(*argv)


def test_choices_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        parse("--mode", "nope")
    assert "invalid choice" in capsys.readouterr().err


def test_to_argv_round_trips():
    cfg = parse("--split_name", "kick", "--layers", "1", "--orth", "--alpha", "0.25", "--dataset_dir", "/d",
                "--no_progress")
    argv = to_argv(cfg)
    assert "--split_name" not in argv and "--concept" in argv  # the canonical spelling
    assert parse(*argv) == cfg
    assert to_argv(Demo()) == []


def test_command_context_resolves_once(tmp_path):
    cfg = parse("--dataset_name", "t2m", "--checkpoints_dir", str(tmp_path / "ck"), "--dataset_dir",
                str(tmp_path / "ds"), "--force")
    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run)
    assert ctx.spec.folder == "HumanML3D" and ctx.force and ctx.progress
    assert ctx.data_root == tmp_path / "ds" / "HumanML3D"
    assert ctx.run_dir("x") == ctx.paths.run_dir("t2m", "x") == tmp_path / "ck" / "HumanML3D" / "x"
    assert str(ctx.device) == "cpu"


def test_flat_dict_merges_groups_like_the_flags():
    from src.config.command import flat_dict

    flat = flat_dict(parse("--split_name", "kick", "--checkpoints_dir", "/x", "--force"))
    assert flat["concept"] == "kick" and flat["checkpoints_dir"] == "/x" and flat["force"] is True
    assert flat["gpu_id"] == -1 and "device" in flat and "where" not in flat and "run" not in flat


def test_no_progress_reaches_the_environment(monkeypatch):
    monkeypatch.delenv("HMU_PROGRESS", raising=False)
    command_context(None, run=RunOptions(no_progress=True))
    import os

    assert os.environ["HMU_PROGRESS"] == "off"


@dataclasses.dataclass(kw_only=True)
class WithPositional:
    """positional demo"""

    folder: str = opt(None, flag="folder", help="a folder")
    depth: int = opt(1, help="depth")


def test_a_field_can_be_a_positional_argument():
    cfg = parse_config(WithPositional, ["/tmp/x", "--depth", "2"], prog="p")
    assert cfg == WithPositional(folder="/tmp/x", depth=2)
    assert parse_config(WithPositional, to_argv(cfg), prog="p") == cfg
    with pytest.raises(SystemExit):
        parse_config(WithPositional, ["--depth", "2"], prog="p")  # the positional is required


@dataclasses.dataclass(kw_only=True)
class Sizes:
    latent_dim: int = opt(384, help="latent size")
    milestones: list[int] = opt(factory=lambda: [50_000], help="milestones")
    share_weight: bool = opt(False, help="share")


def _layered_cls():
    from src.config.command import layered

    @dataclasses.dataclass(kw_only=True)
    class L:
        """layered demo"""

        name: str = opt("x", help="name")
        sizes: dict = layered(Sizes, ("latent_dim", "milestones", "share_weight"), title="sizes",
                              default_text=lambda n, d: f"preset's {n}")
    return L


def test_layered_fields_keep_only_what_was_given():
    from src.config.command import flat_dict

    L = _layered_cls()
    assert parse_config(L, [], prog="p").sizes == {}  # nothing given: a later layer (a preset) decides
    cfg = parse_config(L, ["--latent_dim", "64", "--milestones", "1", "2", "--share_weight"], prog="p")
    assert cfg.sizes == {"latent_dim": 64, "milestones": [1, 2], "share_weight": True}
    assert parse_config(L, to_argv(cfg), prog="p") == cfg
    assert flat_dict(cfg) == {"name": "x", "latent_dim": 64, "milestones": [1, 2], "share_weight": True}
    assert "preset's latent_dim" in config_parser(L, prog="p").format_help()
    with pytest.raises(HmuError, match="--latent_dim must be >= 1"):  # FLAG_RANGES by name inside the dict too
        parse_config(L, ["--latent_dim", "0"], prog="p")


def test_an_imported_folder_is_a_dataset_by_its_name(tmp_path):
    import json

    from src.common import datasets as D

    folder = tmp_path / "ds" / "mocap_x"
    folder.mkdir(parents=True)
    with pytest.raises(HmuError, match="unknown dataset 'mocap_x'"):
        command_context("mocap_x", where=Locations(dataset_dir=str(tmp_path / "ds")))
    (folder / "dataset.json").write_text(json.dumps({"schema": "hmu.dataset/1", "like": "t2m",
                                                     "min_motion_length": 24}))
    try:
        ctx = command_context("mocap_x", where=Locations(dataset_dir=str(tmp_path / "ds"),
                                                         checkpoints_dir=str(tmp_path / "ck")))
        assert ctx.spec.name == ctx.spec.folder == "mocap_x" and ctx.data_root == folder
        assert (ctx.spec.dim_pose, ctx.spec.joints_num, ctx.spec.fps) == (263, 22, 20)   # HumanML3D's
        assert ctx.spec.min_motion_length == 24 and ctx.run_dir("vq") == tmp_path / "ck" / "mocap_x" / "vq"
        assert D.get_spec("MOCAP_X") is ctx.spec   # registered: later lookups by name find it
    finally:
        D.SPECS.pop("mocap_x", None)
        D._ALIASES.pop("mocap_x", None)


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not readable JSON"),
    ('{"schema": "hmu.dataset/1"}', "expected"),
    ('{"schema": "other", "like": "HumanML3D"}', "expected"),
    ('{"schema": "hmu.dataset/1", "like": "nope"}', "unknown dataset 'nope'"),
    ('{"schema": "hmu.dataset/1", "like": "HumanML3D", "min_motion_length": 1e9}', "min_motion_length must be"),
])
def test_a_bad_dataset_file_is_one_line(tmp_path, content, needle):
    from src.common.datasets import folder_spec

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "dataset.json").write_text(content)
    with pytest.raises(HmuError, match=re.escape(needle)):
        folder_spec(tmp_path, "x")


# ----------------------------------------------------------------------------------------------- helper a's additions
@dataclasses.dataclass(kw_only=True)
class Wrapper:
    """A command with positionals, a REMAINDER tail and a group whose default differs from the class's."""

    method: str = opt(None, flag="method", choices=("lcr", "uce"), help="method")
    dataset: str = opt("HumanML3D", flag="dataset", nargs="?", help="dataset")
    no_eval: bool = opt(False, help="skip the evaluation")
    sweep: list[int] | None = opt(None, help="values")
    device: DeviceOptions = group(DeviceOptions, gpu_id=None)


@dataclasses.dataclass(kw_only=True)
class Tail:
    """A command whose flags after -- go on to another (argparse.REMAINDER)."""

    name: str = opt("x", help="name")
    tail: list[str] | None = opt(None, flag="tail", nargs=__import__("argparse").REMAINDER, help="after --")


def test_positionals_known_args_and_round_trip():
    from src.config.command import flat_dict, parse_known_config

    cfg, rest = parse_known_config(Wrapper, ["uce", "synth", "--code_prune", "8", "--gpu_id", "-1"], prog="w")
    assert (cfg.method, cfg.dataset, cfg.device.gpu_id) == ("uce", "synth", -1) and rest == ["--code_prune", "8"]
    # -1 is not this group's default (None): it must survive the trip back to flags
    assert to_argv(cfg) == ["uce", "synth", "--gpu_id", "-1"]
    assert parse_known_config(Wrapper, to_argv(cfg), prog="w")[0] == cfg
    full = parse_config(Wrapper, ["lcr", "--sweep", "8", "16", "--no_eval"], prog="w")
    assert full.sweep == [8, 16] and full.no_eval and parse_config(Wrapper, to_argv(full), prog="w") == full
    # a group's fields flattened under their own names, as vars(args) gave them
    assert flat_dict(full) == {"method": "lcr", "dataset": "HumanML3D", "no_eval": True, "sweep": [8, 16],
                                 "gpu_id": None, "device": None}
    tail = parse_config(Tail, ["--name", "y", "--", "--max_epoch", "2"], prog="t")
    assert tail.tail == ["--", "--max_epoch", "2"]
    assert to_argv(tail) == ["--name", "y", "--", "--max_epoch", "2"]  # the tail last
    assert parse_config(Tail, to_argv(tail), prog="t") == tail


def test_negative_switch_has_no_double_negative():
    text = config_parser(Wrapper, prog="w").format_help()
    assert "--no_eval" in text and "--no-no_eval" not in text
    with pytest.raises(SystemExit):
        parse_config(Wrapper, [], prog="w")  # the required positional


def test_known_config_does_not_take_a_prefix_of_a_passed_on_flag():
    from src.config.command import parse_known_config

    cfg, rest = parse_known_config(Wrapper, ["lcr", "--no_ev", "1"], prog="w")  # not ours: passed on whole
    assert not cfg.no_eval and rest == ["--no_ev", "1"]
