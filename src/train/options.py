"""The trainers' options: their flags (built from the typed configs, src/config/flags.py), the resolution
config defaults < preset < flags, and the logging/paths/device setup. Only ``main()`` functions pass argparse
results in here; everything below them takes the resolved config.

Only the standard library is imported at module level, so each trainer's ``--help`` stays instant.
"""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any

from src.common.errors import HmuError

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


def base_parser(description: str, cls, kind: str, *, fid: bool = True) -> argparse.ArgumentParser:
    """Flags every trainer has (upstream names). Config options come from the typed config ``cls`` (its run and
    optimisation fields) with default None: 'from the preset, else the config' (``resolve_config``)."""
    from src.config.flags import HelpFormatter, add_config_flags, add_device_flags, add_location_flags, add_speed_flags
    from src.config.momask import VQConfig

    p = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    g = p.add_argument_group("run")
    g.add_argument("--name", type=str, required=True, help="run name: checkpoints/<dataset>/<name>/")
    g.add_argument("--dataset_name", type=str, default="synth", help="synth, t2m/HumanML3D, kit, Motion-X")
    g.add_argument("--preset", type=str, default=None, choices=("tiny", "released"),
                   help="sizes and schedule (default: tiny for synth, released otherwise); flags override it")
    g.add_argument("--split", type=str, default=None,
                   help="training ids: split name or ids file under the data root, e.g. "
                        "kw_splits/train_val-wo-violence for the retain-only model (default: train)")
    g.add_argument("--val_split", type=str, default=None, help="validation ids (default: val)")
    g.add_argument("--is_continue", action="store_true", help="resume the run from model/latest.tar")
    g.add_argument("--force", action="store_true", help="start the run over, deleting its checkpoints and log")
    add_location_flags(g, "checkpoints_dir", "dataset_dir")
    text = preset_default_text(cls, kind)
    base = VQConfig.__mro__[1]  # _RunFields: the run and optimisation options every MoMask config has
    add_config_flags(g, base, RUN_FLAGS, layered=True, default_text=text)
    add_device_flags(g)
    add_speed_flags(g)
    g.add_argument("--no_progress", action="store_true", help="no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_config_flags(p.add_argument_group("optimisation"), base, OPTIM_FLAGS, layered=True, default_text=text)
    add_checkpoint_flags(p.add_argument_group("checkpoints and logs"), base if fid else None, text)
    return p


def add_checkpoint_flags(g, base=None, text=None) -> None:
    """``--eval_every_e`` (a config field: FID selection), ``--save_every_e`` and the wandb flags."""
    from src.config.flags import add_config_flags, add_wandb_flags

    if base is not None:
        add_config_flags(g, base, CHECKPOINT_FLAGS, layered=True, default_text=text)
    g.add_argument("--save_every_e", type=int, default=0,
                   help="also keep model/E%%04d.tar every N epochs (upstream's name); 0 = never")
    add_wandb_flags(g)


def add_transformer_args(p: argparse.ArgumentParser, cls, kind: str, *, residual: bool) -> None:
    from src.config.flags import add_config_flags

    g = p.add_argument_group("transformer")
    names = TRANSFORMER_FLAGS + (("share_weight",) if residual else ())
    add_config_flags(g, cls, names, layered=True, default_text=preset_default_text(cls, kind),
                     overrides={"vq_name": {"help": "VQ run whose codes are modelled (required)"}})
    text = preset_default_text(cls, kind)
    g.add_argument("--balance_actions", type=float, default=None,
                   help="draw each epoch's motions with replacement in proportion to their frames' mean "
                        "share(action) ** -POWER (labels.json; 0 = a plain shuffle; default: "
                        f"{text('balance_actions', 0)})")
    add_text_args(p, cls, kind)


def add_text_args(p: argparse.ArgumentParser, cls, kind: str) -> None:
    from src.config.flags import add_config_flags, add_location_flags

    g = p.add_argument_group("text")
    add_config_flags(g, cls, ["text_encoder"], layered=True, default_text=preset_default_text(cls, kind))
    add_location_flags(g, "clip_path", "glove_dir")


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


def setup(flags: Mapping[str, Any]):
    """Logging, paths and device for a trainer -> (Paths, torch.device)."""
    from src.common.device import resolve_device
    from src.common.logging import setup_logging
    from src.common.paths import Paths

    setup_logging(flags.get("verbose", False))
    from src.common.logging import WandbOptions

    WandbOptions.from_flags(flags).check()  # --wandb without the package: one line before any work
    if flags.get("save_every_e") is not None and flags["save_every_e"] < 0:
        raise HmuError(f"--save_every_e must be >= 0, got {flags['save_every_e']}")
    for flag in ("batch_size", "max_epoch"):  # 0 or negative silently trained nothing and exited 0
        if flags.get(flag) is not None and flags[flag] < 1:
            raise HmuError(f"--{flag} must be >= 1, got {flags[flag]}")
    paths = Paths.default(checkpoints_dir=flags.get("checkpoints_dir"), dataset_dir=flags.get("dataset_dir"))
    return paths, init_distributed(resolve_device(flags.get("gpu_id"), flags.get("device")))


def init_distributed(device):
    """Under torchrun: start the process group -> this rank's device (src.common.dist.init_cli)."""
    from src.common import dist

    return dist.init_cli(device)


def from_flags(flags: Mapping[str, Any], cls, kind: str, *, aliases: dict[str, str] | None = None,
               need_vq_name: bool = False):
    """A trainer's parsed flags (``vars(args)``) -> (its typed config, :class:`RunOptions`); sets up logging."""
    from src.common.logging import WandbOptions

    paths, device = setup(flags)
    if need_vq_name and not flags.get("vq_name") and not flags.get("is_continue"):
        raise HmuError("--vq_name is required (the VQ run whose codes this transformer models)")
    cfg = resolve_config(cls, flags, kind, aliases=aliases)
    run = RunOptions(paths=paths, device=device, is_continue=bool(flags.get("is_continue")),
                     force=bool(flags.get("force")), progress=not flags.get("no_progress"),
                     glove_dir=flags.get("glove_dir"), clip_path=flags.get("clip_path"),
                     amp=flags.get("amp") or "off", num_workers=int(flags.get("num_workers") or 0),
                     continue_overrides=continue_overrides(flags), wandb=WandbOptions.from_flags(flags),
                     save_every_e=int(flags.get("save_every_e") or 0))
    return cfg, run


def small_trainer_parser(prog: str, doc: str, *, dataset_help: str, name: str, max_epoch: int, batch_size: int,
                         lr: float, force_help: str, max_epoch_help: str = "epochs", lr_help: str = "Adam learning rate",
                         locations: tuple[str, ...] = ("checkpoints_dir", "dataset_dir")):
    """-> (parser, its "model" group): the flags of the one-file trainers (evaluator, action classifier): run name,
    schedule, seed, --force, device and location flags. Model options go into the returned group."""
    from src.config.flags import HelpFormatter, add_device_flags, add_location_flags, add_speed_flags

    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--dataset_name", default="synth", help=dataset_help)
    p.add_argument("--name", default=name, help="run folder under checkpoints/<dataset>/")
    p.add_argument("--max_epoch", type=int, default=max_epoch, help=max_epoch_help)
    p.add_argument("--batch_size", type=int, default=batch_size, help="batch size")
    p.add_argument("--lr", type=float, default=lr, help=lr_help)
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--force", action="store_true", help=force_help)
    add_location_flags(p, *locations)
    add_device_flags(p)
    add_speed_flags(p)
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    from src.config.flags import add_wandb_flags

    add_wandb_flags(p)
    return p, p.add_argument_group("model")
