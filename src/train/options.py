"""The trainers' options: their flags (built from the typed configs, src/config/flags.py), the resolution
config defaults < preset < flags, and the logging/paths/device setup. Only ``main()`` functions pass argparse
results in here; everything below them takes the resolved config.

Only the standard library is imported at module level, so each trainer's ``--help`` stays instant.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from src.common.errors import HmuError
from src.common.validate import NON_NEGATIVE
from src.config import command as cc
from src.config.flags import SpeedOptions, opt

EXTRA_KEYS = ("preset", "split", "val_split", "epoch_size", "balance_actions")
RUN_FLAGS = ("seed",)
OPTIM_FLAGS = ("batch_size", "max_epoch", "lr", "milestones", "gamma", "warm_up_iter", "log_every")
CHECKPOINT_FLAGS = ("eval_every_e",)
TRANSFORMER_FLAGS = ("vq_name", "latent_dim", "n_layers", "n_heads", "ff_size", "dropout", "cond_drop_prob",
                     "max_motion_length", "unit_length")


def preset_default_text(cls, kind: str):
    """``default_text`` for ``add_config_flags``: a trainer's value is config default < preset < flag, so ``--help``
    names the presets' values of the option (when a preset sets it) and ``cls``'s own default."""
    import dataclasses

    from src.config.flags import field_default
    from src.train.presets import PRESETS

    own = {f.name: f for f in dataclasses.fields(cls)}

    def show(v) -> str:
        return " ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    def text(name: str, base_default) -> str:
        default = field_default(own[name]) if name in own else base_default
        values = {p: show(PRESETS[p][kind].get(name, default)) for p in PRESETS}  # a run always has a preset
        if len(set(values.values())) == 1:
            return next(iter(values.values()))
        return ", ".join(f"{v} with --preset {p}" for p, v in values.items())

    return text


@dataclasses.dataclass(kw_only=True)
class TrainerCommand:
    """The flags every MoMask/BAMM trainer has (upstream names); :func:`trainer_command` adds a trainer's own."""

    name: str = opt(None, required=True, help="run name: checkpoints/<dataset>/<name>/")
    dataset_name: str = opt("synth", help="synth, t2m/HumanML3D, kit, Motion-X")
    preset: str | None = opt(None, choices=("tiny", "released"),
                             help="sizes and schedule (default: tiny for synth, released otherwise); flags override it")
    split: str | None = opt(None, help="training ids: split name or ids file under the data root, e.g. "
                                       "kw_splits/train_val-wo-violence for the retain-only model (default: train)")
    val_split: str | None = opt(None, help="validation ids (default: val)")
    is_continue: bool = opt(False, action="store_true", help="resume the run from model/latest.tar")
    save_every_e: int = opt(0, range=NON_NEGATIVE,
                            help="also keep model/E%%04d.tar every N epochs (upstream's name); 0 = never")
    where: cc.Locations = cc.group(cc.Locations, only=("checkpoints_dir", "dataset_dir"))
    device: cc.DeviceOptions = cc.group(cc.DeviceOptions)
    speed: SpeedOptions = cc.group(SpeedOptions, title="speed")
    run: cc.RunOptions = cc.group(cc.RunOptions, title="run")
    wandb: cc.WandbFlags = cc.group(cc.WandbFlags)


_COMMANDS: dict[str, type] = {}


def trainer_command(cls, kind: str, *, model: Sequence[str] = (), model_title: str = "model", text: bool = False,
                    fid: bool = True, extra: Sequence[tuple[str, Any, Any]] = (),
                    overrides: Mapping[str, Mapping[str, Any]] | None = None) -> type:
    """The config class of one trainer's command: the shared run flags, then ``cls``'s run/optimisation options and
    ``model`` options as layered flags (default None = 'from the preset, else the config': :func:`resolve_config`),
    ``text`` adds the text encoder and its files, ``extra`` = (name, type, field) of this trainer's own flags."""
    key = f"{cls.__name__}/{kind}/{tuple(model)}/{text}/{fid}"
    if key in _COMMANDS:
        return _COMMANDS[key]
    from src.config.flags import LOCATIONS
    from src.config.momask import VQConfig

    shown = preset_default_text(cls, kind)
    base = VQConfig.__mro__[1]  # _RunFields: the run and optimisation options every MoMask config has
    fields: list[tuple[str, Any, Any]] = [
        ("run_flags", dict, cc.layered(base, RUN_FLAGS, default_text=shown)),
        ("optimisation", dict, cc.layered(base, OPTIM_FLAGS, title="optimisation", default_text=shown))]
    if fid:
        fields.append(("checkpoint_flags", dict, cc.layered(base, CHECKPOINT_FLAGS, title="checkpoints and logs",
                                                         default_text=shown)))
    if model:
        fields.append(("model", dict, cc.layered(cls, model, title=model_title, default_text=shown, overrides=overrides)))
    if text:
        fields += [("text", dict, cc.layered(cls, ("text_encoder",), title="text", default_text=shown)),
                   ("clip_path", str | None, opt(None, help=LOCATIONS["clip_path"])),
                   ("where", cc.Locations, cc.group(cc.Locations, only=("checkpoints_dir", "dataset_dir", "glove_dir")))]
    fields += list(extra)
    made = dataclasses.make_dataclass(f"{kind.capitalize()}TrainCommand", fields, bases=(TrainerCommand,),
                                      kw_only=True)
    _COMMANDS[key] = made
    return made


def parse_command(command_cls, argv, *, prog: str, doc: str):
    """``argv`` -> the trainer's checked command config."""
    from src.config.command import parse_config

    return parse_config(command_cls, argv, prog=prog, doc=doc.split("\n")[0])


def command_parser(command_cls, *, prog: str, doc: str):
    from src.config.command import config_parser

    return config_parser(command_cls, prog=prog, doc=doc.split("\n")[0])


def balance_field(cls, kind: str, what: str) -> tuple[str, Any, Any]:
    """``--balance_actions POWER`` (an hmu-only option written to opt.txt's extra keys; issue 30): ``what`` are drawn in
    proportion to share(action) ** -POWER of their labelled frames (synth's labels.json; 0 = uniform)."""
    from src.common.validate import NON_NEGATIVE
    from src.config.flags import opt

    text = preset_default_text(cls, kind)
    return ("balance_actions", float | None,
            opt(None, range=NON_NEGATIVE, help=f"draw {what} in proportion to share(action) ** -POWER of their "
                                               "frames' labelled actions (labels.json; 0 = uniform, 1 = every "
                                               f"action equally; default: {text('balance_actions', 0)})"))


def transformer_command(cls, kind: str, *, residual: bool, extra: Sequence[tuple[str, Any, Any]] = ()) -> type:
    """A transformer trainer's command: the sizes of :data:`TRANSFORMER_FLAGS` (+ share_weight) and the text side."""
    extra = [*extra, balance_field(cls, kind, "each epoch's motions (with replacement)")]
    return trainer_command(cls, kind, model=TRANSFORMER_FLAGS + (("share_weight",) if residual else ()),
                           model_title="transformer", text=True, extra=extra,
                           overrides={"vq_name": {"help": "VQ run whose codes are modelled (required)"}})


TEXT_DIMS = {"clip": 512, "minilm": 384}  # feature sizes of the pretrained text encoders


def resolve_config(cls, flags: Mapping[str, Any], kind: str, *, aliases: dict[str, str] | None = None):
    """Config defaults < preset < explicit flags (``flags``: the parsed values, None = not given). hmu-only options go
    into ``extra`` (written to opt.txt)."""
    from src.train.presets import default_preset, preset_values

    preset = flags.get("preset") or default_preset(flags["dataset_name"])
    values = preset_values(preset, kind)
    fields = cls.typed_fields()
    given = {k: v for k, v in flags.items() if v is not None}
    for flag, field in (aliases or {}).items():
        if flag in given:
            given[field] = given.pop(flag)
    values.update({k: v for k, v in given.items() if k in fields or k in EXTRA_KEYS})
    if values.get("text_encoder") in TEXT_DIMS:  # the feature size follows a pretrained encoder unless given
        for dim_field in ("clip_dim", "input_size"):
            if dim_field in fields and dim_field not in given:
                values[dim_field] = TEXT_DIMS[values["text_encoder"]]
    if "code_dim" in given and "output_emb_width" not in given and "output_emb_width" in fields:
        values["output_emb_width"] = given["code_dim"]  # upstream requires them equal
    extra = {"preset": preset, "split": values.pop("split", "train"), "val_split": values.pop("val_split", "val")}
    for key in ("epoch_size", "balance_actions"):
        if key in values:
            extra[key] = str(values.pop(key))
    kwargs = {k: v for k, v in values.items() if k in fields}
    kwargs["name"], kwargs["dataset_name"] = flags["name"], flags["dataset_name"]
    if flags.get("checkpoints_dir"):
        kwargs["checkpoints_dir"] = flags["checkpoints_dir"]
    return cls(**kwargs, extra=extra)


def continue_overrides(flags: Mapping[str, Any]) -> dict[str, Any]:
    """Flags that may change when a run is resumed (only when given)."""
    return {k: flags[k] for k in ("max_epoch", "log_every", "eval_every_e") if flags.get(k) is not None}


def extra(cfg, key: str, default: str) -> str:
    return cfg.extra.get(key, default)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How one trainer run is carried out, beside its config: where, on what device, new or resumed, which text
    encoder files. Built from the flags by :func:`from_flags`; library code takes this, never argparse's Namespace."""

    paths: Any
    device: Any
    is_continue: bool = False
    force: bool = False
    progress: bool = True
    glove_dir: str | None = None
    clip_path: str | None = None
    amp: str = "off"
    num_workers: int = 0
    continue_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    wandb: Any = None           # src.common.logging.WandbOptions
    save_every_e: int = 0


def metric_logger(run_dir, cfg, wandb, *, job_type: str = "train"):
    """The run's ``train_log.jsonl`` logger, mirrored to wandb when ``wandb`` (WandbOptions) is enabled."""
    from pathlib import Path

    from src.common.logging import MetricLogger

    config = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
    return MetricLogger(Path(run_dir) / "train_log.jsonl", wandb=wandb, name=Path(run_dir).name, config=config,
                        dir=run_dir, job_type=job_type)


def record_selection(run_dir, cfg, criterion: str) -> None:
    """Say in opt.txt (hmu-only key ``best_by``) which criterion chose ``net_best_fid.tar``."""
    from pathlib import Path

    from src.common import dist

    cfg.extra["best_by"] = criterion
    if dist.is_main():  # under torchrun only rank 0 writes
        cfg.save(Path(run_dir) / "opt.txt")


def setup(cmd):
    """Logging, wandb check, paths and device of a trainer's command config -> (Paths, torch.device)."""
    from src.config.command import command_context

    ctx = command_context(cmd.dataset_name, cmd.device, cmd.where, cmd.run, cmd.wandb)
    return ctx.paths, init_distributed(ctx.device)


def init_distributed(device):
    """Under torchrun: start the process group -> this rank's device (src.common.dist.init_cli)."""
    from src.common import dist

    return dist.init_cli(device)


def flags_of(cmd) -> dict[str, Any]:
    """A trainer's command config as one flat mapping of the flags (layered ones only when given): what
    :func:`resolve_config` and :func:`continue_overrides` read."""
    from src.config.command import flat_dict

    return flat_dict(cmd)


def from_command(cmd, cls, kind: str, *, aliases: dict[str, str] | None = None, need_vq_name: bool = False):
    """A trainer's command config -> (its typed model config, :class:`RunOptions`); sets up logging."""
    paths, device = setup(cmd)
    flags = flags_of(cmd)
    if need_vq_name and not flags.get("vq_name") and not cmd.is_continue:
        raise HmuError("--vq_name is required (the VQ run whose codes this transformer models)")
    cfg = resolve_config(cls, flags, kind, aliases=aliases)
    run = RunOptions(paths=paths, device=device, is_continue=cmd.is_continue, force=cmd.run.force,
                     progress=not cmd.run.no_progress, glove_dir=cmd.where.glove_dir,
                     clip_path=getattr(cmd, "clip_path", None), amp=cmd.speed.amp, num_workers=cmd.speed.num_workers,
                     continue_overrides=continue_overrides(flags), wandb=cmd.wandb.options(),
                     save_every_e=cmd.save_every_e)
    return cfg, run


