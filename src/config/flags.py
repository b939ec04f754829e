"""Command-line flags built from the typed configs, so an option is declared once (its config field) and cannot drift.

An option's name, type and default are its dataclass field's; its help text and choices sit in the field's metadata,
written with :func:`opt`::

    @dataclasses.dataclass(kw_only=True)
    class MyConfig(OptConfig):
        lr: float = opt(2e-4, help="learning rate (AdamW)")
        milestones: list[int] = opt(factory=lambda: [50_000], help="iterations where lr is multiplied by gamma")
        recons_loss: str = opt("l1_smooth", help="reconstruction loss", choices=("l1", "l1_smooth"))

    p = argparse.ArgumentParser(formatter_class=HelpFormatter)
    add_config_flags(p.add_argument_group("optimisation"), MyConfig, ["lr", "milestones"])

Two ways to fill the parsed value:

- ``layered=False``: the flag's default IS the field's default (argparse fills it; ``--help`` shows it once).
- ``layered=True`` (the trainers): the flag's default is ``None`` (= not given), because the value is resolved later as
  config default < preset < flag. ``--help`` then shows ``(default: ...)`` from ``default_text(name, field_default)``
  when given (e.g. the presets' values), else the field's default -- never argparse's ``(default: None)``.

Types: ``int``, ``float``, ``str`` (and ``X | None``) become ``type=X``; ``list[X]`` becomes ``nargs="+", type=X``;
``bool`` becomes ``--flag/--no-flag`` (``argparse.BooleanOptionalAction``). Metadata keys other than ``help`` are passed
to ``add_argument`` (``choices``, ``metavar``, ``dest`` ...). ``overrides={name: {kwarg: value}}`` replaces any of them
for one CLI (e.g. ``{"name": {"required": True}}``).

Device and location flags (``--gpu_id/--device``, ``--checkpoints_dir``, ``--dataset_dir``, ``--glove_dir``,
``--clip_path``, ``--results_dir``) come from :func:`add_device_flags` and :func:`add_location_flags`, one wording
everywhere.

Only the standard library is imported, so ``--help`` stays instant.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_MISSING = dataclasses.MISSING


def opt(default: Any = _MISSING, *, help: str,  # noqa: A002
        factory: Callable[[], Any] | None = None, aliases: tuple[str, ...] = (), range: Any = None,  # noqa: A002
        flag: str | None = None, **add_argument: Any):
    """A config field with its command-line help (``help``), other spellings (``aliases``, e.g. upstream's),
    its valid ``range`` (a ``src.common.validate.Range``), the flag's name when it is not ``--<field>`` (``flag``),
    and extra ``add_argument`` keywords (``choices``, ``metavar`` ...)."""
    meta = {"help": help, **add_argument}
    if aliases:
        meta["aliases"] = tuple(aliases)
    if range is not None:
        meta["range"] = range
    if flag is not None:
        meta["flag"] = flag
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` once: not for a ``None`` default (= not given) and not when the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        # a layered flag writes its default into its help itself
        if action.default is None or action.default is False or "(default" in text:
            return text
        if isinstance(action.default, (list, tuple)) and action.default and "%(default)" not in text:
            return f"{text} (default: {_show(action.default)})"  # as typed on the command line, not a repr
        return super()._get_help_string(action)


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def _base_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _base_type(args[0])
    return tp


def flag_kwargs(cls, name: str, *, layered: bool,
                default_text: Callable[[str, Any], str | None] | None = None) -> dict[str, Any]:
    """The ``add_argument`` keywords of config field ``name`` of dataclass ``cls`` (see the module docstring)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise KeyError(f"{cls.__name__} has no field '{name}'")
    f = fields[name]
    meta = dict(f.metadata)
    if "help" not in meta:
        raise KeyError(f"{cls.__name__}.{name} has no help text (declare it with src.config.flags.opt)")
    hints = typing.get_type_hints(cls)
    tp = _base_type(hints[name])
    default = field_default(f)
    kw: dict[str, Any] = {}
    if tp is bool:
        # a negative name (--no_progress) is a plain switch: --no-no_progress would read as a typo
        negative = name.startswith("no_") and default is False
        kw["action"] = "store_true" if negative else argparse.BooleanOptionalAction
    elif typing.get_origin(tp) in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (str,)
        kw.update(nargs="+", type=item)
    elif tp in (int, float, str):
        kw["type"] = tp
    else:
        raise TypeError(f"{cls.__name__}.{name}: no flag for type {tp!r}")
    help_text = meta.pop("help")
    for ours in ("aliases", "range", "flag"):  # read by add_config_flags / src.config.command, not add_argument
        meta.pop(ours, None)
    if layered:
        kw["default"] = None
        shown = default_text(name, default) if default_text else None
        shown = shown if shown is not None else None if default is None else _show(default)
        help_text = f"{help_text} (default: {shown})" if shown is not None else help_text
    else:
        kw["default"] = list(default) if isinstance(default, list) else default
    kw["help"] = help_text
    kw.update(meta)
    return kw


def add_config_flags(parser, cls, names: Iterable[str], *, layered: bool = False,
                     default_text: Callable[[str, Any], str | None] | None = None,
                     overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Add ``--<name>`` for each config field ``name`` of ``cls`` to ``parser`` (a parser or an argument group)."""
    for name in names:
        kw = flag_kwargs(cls, name, layered=layered, default_text=default_text)
        kw.update((overrides or {}).get(name, {}))
        meta = {f.name: f.metadata for f in dataclasses.fields(cls)}[name]
        parser.add_argument(meta.get("flag", f"--{name}"), *meta.get("aliases", ()), dest=kw.pop("dest", name), **kw)


# ------------------------------------------------------------------------------------------- device and locations

LOCATIONS: dict[str, str] = {
    "checkpoints_dir": "checkpoints root (env HMU_CHECKPOINTS, else ./checkpoints)",
    "dataset_dir": "datasets root (env HMU_DATASET, else ./dataset)",
    "glove_dir": "word vectors for the embedded text encoder (env HMU_GLOVE, else dataset/<ds>/glove)",
    "clip_path": "CLIP ViT-B-32.pt for text_encoder clip (default checkpoints/clip/ViT-B-32.pt)",
    "results_dir": "results root",
}


def add_device_flags(parser, *, device: bool = True) -> None:
    """``--gpu_id`` (-1 = CPU) and ``--device`` (overrides it); resolved by ``src.common.device.resolve_device``.

    ``device=False``: only ``--gpu_id``, for a launcher that passes the GPU index on to the commands it runs.
    """
    parser.add_argument("--gpu_id", type=int, default=-1, help="GPU index, -1 for CPU (default: -1)")
    if not device:
        return
    parser.add_argument("--device", type=str, default=None,
                        help="torch device string (cpu, cuda:1, mps); overrides --gpu_id")


@dataclasses.dataclass(kw_only=True)
class SpeedOptions:
    """How fast a trainer runs, not what it computes (not written to opt.txt)."""

    amp: str = opt("off", help="mixed precision of the training step on CUDA: off, bf16 or fp16 (fp16 adds a "
                               "gradient scaler); ignored on CPU", choices=("off", "bf16", "fp16"))
    num_workers: int = opt(0, help="batches prepared ahead of the training step in a background worker (0 = in "
                                   "line; useful on GPU, no gain on CPU)")


def add_speed_flags(parser) -> None:
    """``--amp`` and ``--num_workers`` (:class:`SpeedOptions`); the engine applies them (src/train/engine.py)."""
    add_config_flags(parser, SpeedOptions, ("amp", "num_workers"))


def add_location_flags(parser, *names: str, help: Mapping[str, str] | None = None) -> None:  # noqa: A002
    """``--<name>`` (default None = from the environment or the repository layout) for each of ``LOCATIONS``."""
    for name in names or ("checkpoints_dir", "dataset_dir"):
        if name not in LOCATIONS:
            raise KeyError(f"unknown location flag '{name}' (known: {', '.join(LOCATIONS)})")
        parser.add_argument(f"--{name}", type=str, default=None, help=(help or {}).get(name, LOCATIONS[name]))


def add_wandb_flags(parser) -> None:
    """``--wandb``, ``--wandb_project``, ``--wandb_group`` (read by ``src.common.logging.WandbOptions.from_flags``)."""
    parser.add_argument("--wandb", action="store_true",
                        help="also log to Weights & Biases (offline unless WANDB_MODE is set or credentials exist)")
    parser.add_argument("--wandb_project", type=str, default="hmu", help="wandb project")
    parser.add_argument("--wandb_group", type=str, default=None, help="wandb group of this run (e.g. the quickstart's)")


def which_epoch_file(text: str) -> str:
    """Upstream's ``--which_epoch`` value (``latest``, ``net_best_fid``, ``E0010`` ...) -> the file in ``model/``."""
    text = text.strip()
    if not text or "/" in text or "\\" in text:
        raise argparse.ArgumentTypeError(f"'{text}' is not a checkpoint name (e.g. latest, net_best_fid, E0010)")
    return text if text.endswith(".tar") else f"{text}.tar"


def add_which_epoch_flag(parser, *, dest: str = "ckpt") -> None:
    """``--which_epoch NAME`` (upstream's spelling of the checkpoint choice): sets ``dest`` to ``model/NAME.tar``."""
    parser.add_argument("--which_epoch", dest=dest, type=which_epoch_file, default=argparse.SUPPRESS,
                        help="upstream's spelling of --ckpt: a file of <run>/model/ without .tar (latest, "
                             "net_best_fid, net_best_acc, E0010 from --save_every_e)")


def which_epoch_opt(dest: str = "ckpt"):
    """A config field for ``--which_epoch NAME`` (the typed-config form of :func:`add_which_epoch_flag`): it sets
    field ``dest`` to ``NAME.tar`` and keeps no value of its own."""
    meta = {"help": "upstream's spelling of --ckpt: a file of <run>/model/ without .tar (latest, net_best_fid, "
                    "net_best_acc, E0010 from --save_every_e)",
            "dest": dest, "type": which_epoch_file, "default": argparse.SUPPRESS}
    return dataclasses.field(default=None, metadata=meta)


class RawDescriptionHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """:class:`HelpFormatter` that keeps the description's line breaks (a CLI whose docstring shows examples)."""
