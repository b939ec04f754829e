"""Every command from one typed config: the parser is built from the config's fields and gives back the config.

A command declares one dataclass; each field is a flag (:func:`src.config.flags.opt` carries its help, choices,
aliases and range), and a field whose type is itself a dataclass adds that dataclass's flags as an argument group
(the shared groups below: device, locations, run, wandb)::

    @dataclasses.dataclass(kw_only=True)
    class LcrConfig:
        dataset_name: str = opt("synth", help="dataset name or alias")
        concept: str = opt("violence", help="concept", aliases=("--split_name",))
        code_prune: int = opt(16, help="codes per layer", range=NON_NEGATIVE)
        device: DeviceOptions = group(DeviceOptions)
        where: Locations = group(Locations, only=("checkpoints_dir", "dataset_dir"))
        run: RunOptions = group(RunOptions)

    cfg = parse_config(LcrConfig, argv, prog="python -m src.methods.lcr", doc=__doc__)
    ctx = command_context(cfg.dataset_name, cfg.device, cfg.where, cfg.run)

Validation is declared once, on the field: ``range=Range(...)`` (else the name's entry in
``src.common.validate.FLAG_RANGES``), every float finite, ``choices`` by argparse. A config may define ``check()``
for rules that span fields; it runs after parsing and raises HmuError. The argparse Namespace never leaves
:func:`parse_config`.

Only the standard library (and src.common/src.config) is imported at module level, so ``--help`` stays instant.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from src.common.errors import HmuError
from src.common.validate import FLAG_RANGES, Range, check_value

from .flags import HelpFormatter, RawDescriptionHelpFormatter, flag_kwargs, opt
from .flags import field_default as flags_field_default

# field metadata keys that are ours, not add_argument's
_OURS = ("aliases", "range", "group_title", "only", "flag")


def group(cls, *, title: str | None = None, only: Sequence[str] | None = None, **defaults: Any):
    """A config field holding a shared option group (a dataclass): its flags join the parser under ``title``.

    ``only``: the subset of the group's fields that become flags (the others keep their defaults).
    ``defaults``: this command's defaults for some of the group's fields (e.g. ``seed=3``).
    """
    def make():
        return cls(**defaults)
    return dataclasses.field(default_factory=make,
                             metadata={"group_title": title, "only": tuple(only) if only else None,
                                       "defaults": defaults})


def layered(cls, names: Sequence[str], *, title: str | None = None, default_text=None,
            overrides: Mapping[str, Mapping[str, Any]] | None = None):
    """A config field (a dict) holding the values given on the command line for fields ``names`` of config class
    ``cls`` (flags built by ``add_config_flags(..., layered=True)``: default None = not given, so that a later layer
    such as a preset can fill the rest). ``default_text(name, default)`` words each flag's default in ``--help``."""
    return dataclasses.field(default_factory=dict, metadata={
        "layered": (cls, tuple(names), default_text, dict(overrides or {})), "group_title": title})


def _is_layered(f: dataclasses.Field) -> bool:
    return "layered" in f.metadata


def _is_group(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _flag_kw(cls, f: dataclasses.Field, defaults: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The option strings and ``add_argument`` keywords of one plain field."""
    meta = dict(f.metadata)
    aliases = tuple(meta.get("aliases", ()))
    # flag_kwargs reads the metadata through the class; strip our keys from what it passes on
    kw = flag_kwargs(cls, f.name, layered=False)
    for k in _OURS:
        kw.pop(k, None)
    if f.name in defaults:
        kw["default"] = defaults[f.name]
    flag = meta.get("flag", f"--{f.name}")
    if not flag.startswith("-"):  # a positional (``flag=<field name>``): its dest is its name
        if flag != f.name:
            raise TypeError(f"{cls.__name__}.{f.name}: a positional's flag must be the field's name")
        kw.pop("dest", None)
        return [flag], kw
    kw["dest"] = kw.get("dest", f.name)
    return [flag, *aliases], kw


def _add_fields(parser: argparse.ArgumentParser, target, cls, *, only: Sequence[str] | None,
                defaults: Mapping[str, Any], prefix: str) -> None:
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if _is_layered(f):
            from .flags import add_config_flags

            src_cls, names, text, overrides = f.metadata["layered"]
            title = f.metadata.get("group_title")
            add_config_flags(parser.add_argument_group(title) if title else target, src_cls, names, layered=True,
                             default_text=text, overrides=overrides)
            continue
        if _is_group(hints[f.name]):
            sub = hints[f.name]
            title = f.metadata.get("group_title") or (sub.__doc__ or sub.__name__).strip().split("\n")[0]
            g = parser.add_argument_group(title)
            _add_fields(parser, g, sub, only=f.metadata.get("only"), defaults=f.metadata.get("defaults") or {},
                        prefix=f"{prefix}{f.name}.")
            continue
        if only is not None and f.name not in only:
            continue
        if "help" not in f.metadata:
            continue  # a field set by the command itself, not a flag
        names, kw = _flag_kw(cls, f, defaults)
        target.add_argument(*names, **kw)


def config_parser(cls, *, prog: str, doc: str | None = None, raw_description: bool = False,
                  epilog: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` whose flags are the fields of config class ``cls`` (groups as argument groups)."""
    desc = (doc or cls.__doc__ or "").strip()
    if not raw_description:
        desc = desc.split("\n")[0]
    p = argparse.ArgumentParser(prog=prog, description=desc, epilog=epilog,
                                formatter_class=RawDescriptionHelpFormatter if raw_description else HelpFormatter)
    _add_fields(p, p, cls, only=None, defaults={}, prefix="")
    return p


def _build(cls, ns: argparse.Namespace, *, only: Sequence[str] | None, defaults: Mapping[str, Any]):
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if _is_layered(f):
            values[f.name] = {n: getattr(ns, n) for n in f.metadata["layered"][1] if getattr(ns, n, None) is not None}
        elif _is_group(hints[f.name]):
            values[f.name] = _build(hints[f.name], ns, only=f.metadata.get("only"),
                                    defaults=f.metadata.get("defaults") or {})
        elif (only is None or f.name in only) and hasattr(ns, f.name) and "help" in f.metadata:
            values[f.name] = getattr(ns, f.name)
        elif f.name in defaults:
            values[f.name] = defaults[f.name]
    return cls(**values)


def check_config(cfg) -> None:
    """Every number of ``cfg`` (groups included): finite, and inside its field's ``range`` (else FLAG_RANGES by name).
    Then ``cfg.check()`` where the config defines one. One-line HmuError naming the flag."""
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if _is_layered(f):
            src_meta = {g.name: g.metadata for g in dataclasses.fields(f.metadata["layered"][0])}
            for name, v in value.items():
                rng = src_meta.get(name, {}).get("range", FLAG_RANGES.get(name))
                for x in v if isinstance(v, (list, tuple)) else [v]:
                    check_value(name, x, rng, what=src_meta.get(name, {}).get("flag", f"--{name}"))
            continue
        if _is_group(hints[f.name]):
            check_config(value)
            continue
        if value is None:
            continue
        rng: Range | None = f.metadata.get("range", FLAG_RANGES.get(f.name))
        for v in value if isinstance(value, (list, tuple)) else [value]:
            check_value(f.name, v, rng, what=f.metadata.get("flag", f"--{f.name}"))
    check = getattr(cfg, "check", None)
    if callable(check):
        check()


def parse_config(cls, argv: Sequence[str] | None = None, *, prog: str, doc: str | None = None,
                 raw_description: bool = False, parser: argparse.ArgumentParser | None = None,
                 intermixed: bool = False):
    """``argv`` -> a checked instance of config class ``cls`` (exits 2 with argparse's message on a bad flag).
    ``intermixed``: positionals may come after flags (``split --dataset_dir D synth violence``)."""
    p = parser or config_parser(cls, prog=prog, doc=doc, raw_description=raw_description)
    ns = p.parse_intermixed_args(argv) if intermixed else p.parse_args(argv)
    cfg = _build(cls, ns, only=None, defaults={})
    check_config(cfg)
    return cfg


def parse_known_config(cls, argv: Sequence[str] | None = None, *, prog: str, doc: str | None = None,
                       raw_description: bool = False, epilog: str | None = None):
    """``argv`` -> (a checked instance of ``cls``, the flags it does not know), for a wrapper that passes the rest on to
    another command. Abbreviations are off, so a passed-on flag is never mistaken for a prefix of one of ours."""
    p = config_parser(cls, prog=prog, doc=doc, raw_description=raw_description, epilog=epilog)
    p.allow_abbrev = False
    ns, rest = p.parse_known_args(argv)
    cfg = _build(cls, ns, only=None, defaults={})
    check_config(cfg)
    return cfg, rest


def to_argv(cfg, *, only: Sequence[str] | None = None, defaults: Mapping[str, Any] | None = None) -> list[str]:
    """A config back to the flags that rebuild it, defaults left out (for pipelines that launch a command in another
    process): ``parse_config(type(cfg), to_argv(cfg)) == cfg``."""
    out: list[str] = []
    positionals: list[str] = []
    trailing: list[str] = []
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if _is_layered(f):
            for name, v in value.items():
                if isinstance(v, bool):
                    out.append(f"--{name}" if v else f"--no-{name}")
                else:
                    out += [f"--{name}", *map(str, v)] if isinstance(v, (list, tuple)) else [f"--{name}", str(v)]
            continue
        if _is_group(hints[f.name]):
            out += to_argv(value, only=f.metadata.get("only"), defaults=f.metadata.get("defaults"))
            continue
        if "help" not in f.metadata or not f.init or (only is not None and f.name not in only):
            continue
        if value == (defaults[f.name] if defaults and f.name in defaults else flags_field_default(f)):
            continue
        flag = f.metadata.get("flag", f"--{f.name}")
        if not flag.startswith("-"):
            if isinstance(value, (list, tuple)):
                trailing += [str(v) for v in value]  # a list positional (e.g. argparse.REMAINDER) goes last
            elif value is not None:
                positionals.append(str(value))
            continue
        if isinstance(value, bool):
            out.append(flag if value else f"--no-{flag[2:]}")
        elif value is None:
            continue
        elif isinstance(value, (list, tuple)):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return positionals + out + trailing


def flat_dict(cfg) -> dict[str, Any]:
    """A config as one flat ``{field: value}`` dict, groups merged in (what ``vars(args)`` gave: the record of a
    run's settings in its results file)."""
    out: dict[str, Any] = {}
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if _is_layered(f):
            out.update(value)  # only what was given: the rest comes from a later layer
        elif _is_group(hints[f.name]):
            out.update(flat_dict(value))
        elif "dest" not in f.metadata:  # a second spelling of another field (e.g. --which_epoch) is not a setting
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


# ----------------------------------------------------------------------------------------------- shared groups


@dataclasses.dataclass(kw_only=True)
class DeviceOptions:
    """device"""

    gpu_id: int = opt(-1, help="GPU index, -1 for CPU", range=Range(lo=-1))
    device: str | None = opt(None, help="torch device string (cpu, cuda:1, mps); overrides --gpu_id")

    def resolve(self):
        from src.common.device import resolve_device

        return resolve_device(self.gpu_id, self.device)


@dataclasses.dataclass(kw_only=True)
class Locations:
    """locations"""

    checkpoints_dir: str | None = opt(None, help="checkpoints root (env HMU_CHECKPOINTS, else ./checkpoints)")
    dataset_dir: str | None = opt(None, help="datasets root (env HMU_DATASET, else ./dataset)")
    glove_dir: str | None = opt(None, help="word vectors for the embedded text encoder (env HMU_GLOVE, else "
                                           "dataset/<ds>/glove)")
    results_dir: str | None = opt(None, help="results root (env HMU_RESULTS, else ./results)")
    clip_path: str | None = opt(None, help="CLIP ViT-B-32.pt for text_encoder clip (default "
                                           "checkpoints/clip/ViT-B-32.pt)")

    def paths(self):
        from src.common.paths import Paths

        return Paths.default(checkpoints_dir=self.checkpoints_dir, dataset_dir=self.dataset_dir,
                             glove_dir=self.glove_dir, results_dir=self.results_dir)


@dataclasses.dataclass(kw_only=True)
class RunOptions:
    """run"""

    # plain switches: --no-force / --no-no_progress would only restate the defaults
    force: bool = opt(False, help="replace an existing output", action="store_true")
    no_progress: bool = opt(False, help="no progress bars or progress lines (sets HMU_PROGRESS=off for what it runs)",
                            action="store_true")
    verbose: bool = opt(False, help="debug logging", flag="--verbose", aliases=("-v",), action="store_true")


@dataclasses.dataclass(kw_only=True)
class WandbFlags:
    """logging"""

    wandb: bool = opt(False, action="store_true", help="also log to Weights & Biases (offline unless WANDB_MODE is "
                                                       "set or credentials exist)")
    wandb_project: str = opt("hmu", help="wandb project")
    wandb_group: str | None = opt(None, help="wandb group of this run (e.g. the quickstart's)")

    def options(self):
        from src.common.logging import WandbOptions

        return WandbOptions(enabled=self.wandb, project=self.wandb_project or "hmu", group=self.wandb_group or None)


def command_context(dataset_name: str | None, device: DeviceOptions | None = None, where: Locations | None = None,
                    run: RunOptions | None = None, wandb: WandbFlags | None = None, *, needs_device: bool = True):
    """The one bootstrap of a command: logging on, wandb checked before any work, then a
    :class:`src.common.context.Context` (paths, the resolved dataset spec, device, overwrite and progress policy).
    ``needs_device=False``: a command that runs no model (the device stays None and torch is not imported)."""
    from src.common.context import Context
    from src.common.datasets import get_spec
    from src.common.logging import setup_logging

    from src.common.progress import apply_progress

    run = run or RunOptions()
    setup_logging(run.verbose)
    apply_progress(not run.no_progress)  # HMU_PROGRESS=off reaches every loop and subprocess below
    wb = wandb.options() if wandb is not None else None
    if wb is not None:
        wb.check()
    paths = (where or Locations()).paths()
    # a known name, else an imported folder of this run's datasets root (its dataset.json)
    spec = get_spec(dataset_name, paths.dataset_dir) if dataset_name else None
    return Context(paths=paths, spec=spec,
                   device=(device or DeviceOptions()).resolve() if needs_device else None,
                   force=run.force, progress=not run.no_progress, wandb=wb)


__all__ = ["DeviceOptions", "Locations", "RunOptions", "WandbFlags", "check_config", "command_context",
           "config_parser", "flat_dict", "group", "layered", "opt", "parse_config", "parse_known_config", "to_argv"]
