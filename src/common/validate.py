"""Range checks of numbers in one place: CLI flags after parsing (:func:`check_args`) and opt.txt keys after reading
(:func:`check_options`). A value out of range is a one-line HmuError naming the flag or key, before any work.

Every float flag must be finite (a NaN scale or an infinite weight only ever produces a NaN model); the names below
carry the ranges that exist. A name is checked wherever it appears, so a new CLI with a ``--batch_size`` flag is
covered without a line of its own.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import HmuError


@dataclass(frozen=True)
class Range:
    """``lo <= v <= hi`` (or strict with ``lo_open``/``hi_open``); None = unbounded."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    allow: tuple = ()  # values accepted outside the range (e.g. 0 = "estimate", -1 = "CPU")

    def ok(self, v: float) -> bool:
        if v in self.allow:
            return True
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def text(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {_fmt(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {_fmt(self.hi)}")
        s = " and ".join(parts) or "finite"
        return s + "".join(f" (or {_fmt(a)})" for a in self.allow)


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


POSITIVE = Range(lo=1)
NON_NEGATIVE = Range(lo=0)
PROBABILITY = Range(lo=0, hi=1)
# Upper bounds (issue 26): a size or count typed by mistake (latent_dim 1e8, --repeat_times 1e9) is refused in one line
# instead of allocating for minutes or hanging. Each is far above any published setting (MoMask: latent_dim 384,
# ff_size 1024, nb_code 512, 6 quantizers, 196 frames; upstream's evaluation: 20 repeats).
WIDTH = Range(lo=1, hi=65536)            # feature and hidden sizes
LAYERS_ = Range(lo=1, hi=1024)           # layers, heads, quantizers, conv depth
FRAMES = Range(lo=1, hi=100_000)         # frame counts of one motion
COUNT = Range(lo=1, hi=1_000_000)        # batch sizes, epochs, prompts
REPEATS = Range(lo=1, hi=10_000)         # evaluation repeats, samples per prompt, sampling steps

# flag name -> range (CLI flags; the same names as upstream's)
FLAG_RANGES: dict[str, Range] = {
    "batch_size": COUNT, "gen_batch_size": COUNT, "time_steps": REPEATS, "repeat_times": REPEATS,
    "temperature": Range(lo=0, lo_open=True),
    "topkr": Range(lo=0, hi=1, hi_open=True),  # fraction of the logits filtered out: 0.9 keeps the top 10 %
    "motion_length": Range(lo=1, allow=(0,)),  # 0 = estimate the length; longer than the model's maximum is cut
    "erase_scale": NON_NEGATIVE, "preserve_scale": NON_NEGATIVE, "lamb": NON_NEGATIVE, "reg": NON_NEGATIVE,
    "epochs": COUNT, "lr": Range(lo=0, lo_open=True), "max_epoch": Range(lo=0, hi=1_000_000),
    "dropout": Range(lo=0, hi=1, hi_open=True), "cond_drop_prob": PROBABILITY,
    "mm_prompts": COUNT, "mm_generations": REPEATS, "max_prompts": Range(lo=0, hi=1_000_000),
    "code_prune": NON_NEGATIVE, "unit_length": Range(lo=1, hi=1024), "max_motion_length": FRAMES,
    "n_heads": LAYERS_, "n_layers": LAYERS_, "latent_dim": WIDTH, "ff_size": WIDTH,
    "nb_code": Range(lo=1, hi=1 << 20), "code_dim": WIDTH, "num_quantizers": LAYERS_, "width": WIDTH,
    "depth": LAYERS_,
    "noise": NON_NEGATIVE,  # a noise scale: -1 would silently act as +1 (the noise is symmetric)
}

# opt.txt key -> range (keys of upstream's option files that size a model or a dataset)
OPTION_RANGES: dict[str, Range] = {
    **{k: WIDTH for k in ("latent_dim", "ff_size", "code_dim", "width", "output_emb_width", "dim_pose", "clip_dim",
                          "dim_word", "dim_text_hidden", "dim_coemb_hidden", "dim_motion_hidden",
                          "dim_movement_enc_hidden", "dim_movement_latent", "dim_movement_dec_hidden", "input_size",
                          "output_size")},
    **{k: LAYERS_ for k in ("n_heads", "n_layers", "num_quantizers", "depth", "joints_num")},
    **{k: Range(lo=1, hi=64) for k in ("down_t", "stride_t", "dilation_growth_rate")},
    "nb_code": Range(lo=1, hi=1 << 20), "unit_length": Range(lo=1, hi=1024), "max_motion_length": FRAMES,
    "max_text_len": Range(lo=1, hi=10_000), "window_size": FRAMES,
    "dropout": Range(lo=0, hi=1, hi_open=True), "cond_drop_prob": PROBABILITY,
    "quantize_dropout_prob": PROBABILITY, "mu": PROBABILITY,
}

# (numerator, denominator): attention splits latent_dim into n_heads equal parts
DIVISIBLE = (("latent_dim", "n_heads"),)


def check_value(name: str, value: Any, rng: Range | None, *, what: str) -> None:
    """One number: finite, and inside ``rng`` when given. ``what`` names it in the message (``--flag`` or ``file: key``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise HmuError(f"{what} must be a finite number, got {value}")
    if rng is not None and not rng.ok(value):
        raise HmuError(f"{what} must be {rng.text()}, got {value}")


def check_args(args: Any, ranges: Mapping[str, Range] | None = None, *, skip: Iterable[str] = ()) -> None:
    """Every number of a parsed argparse Namespace: finite floats, and the ranges of :data:`FLAG_RANGES` (plus
    ``ranges``, which win). Lists of numbers are checked item by item. One-line HmuError naming the flag."""
    table = {**FLAG_RANGES, **(ranges or {})}
    skipped = set(skip)
    for name, value in vars(args).items():
        if name in skipped or value is None:
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        for v in items:
            check_value(name, v, table.get(name), what=f"--{name}")


def check_options(values: Mapping[str, Any], source: str) -> None:
    """Typed values read from an opt.txt file (``source``): finite floats, sizes in range, heads dividing the width.
    One-line HmuError naming the file and the key."""
    for name, value in values.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for v in items:
            check_value(name, v, OPTION_RANGES.get(name), what=f"{source}: {name}")
    for num, den in DIVISIBLE:
        a, b = values.get(num), values.get(den)
        if isinstance(a, int) and isinstance(b, int) and b > 0 and a % b:
            raise HmuError(f"{source}: {den} {b} does not divide {num} {a} (attention splits {num} into {den} "
                           f"equal heads)")


def check_finite_state(state: Mapping[str, Any], what: str) -> None:
    """Every floating tensor of a state dict is finite; one-line HmuError naming ``what`` and the first bad tensor.
    Called before a model is written, so no NaN model reaches the disk."""
    import torch

    for name, t in state.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            n_bad = int((~torch.isfinite(t)).sum())
            raise HmuError(f"{what}: {name} has {n_bad} non-finite values (NaN or inf); nothing was written")


def parse_checked(parser: Any, argv: Any = None, **kwargs: Any) -> Any:
    """``parser.parse_args(argv)`` followed by :func:`check_args`: the one call every CLI makes."""
    args = parser.parse_args(argv)
    check_args(args, **kwargs)
    return args


# Normalised features are (x - mean) / std: an entry of Std below this makes them huge (1e-38 gives inf, then NaN
# losses). Released HumanML3D's smallest Std entry is 0.0128, synth's 0.0103.
STD_FLOOR = 1e-5


def check_mean_std(mean: Any, std: Any, *, mean_path: Any, std_path: Any) -> None:
    """Normalisation statistics: same shape, finite, every std above :data:`STD_FLOOR`; one-line HmuError naming
    the file at fault."""
    import numpy as np

    mean, std = np.asarray(mean), np.asarray(std)
    if mean.shape != std.shape:
        raise HmuError(f"{mean_path} and {std_path} have different shapes {mean.shape} and {std.shape}")
    for a, p in ((mean, mean_path), (std, std_path)):
        if not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
            raise HmuError(f"{p} contains NaN/inf or is not a float array")
    low = np.flatnonzero(std < STD_FLOOR)
    if len(low):
        i = int(low[np.argmin(std[low])])
        raise HmuError(f"{std_path} has {len(low)} entries below {STD_FLOOR:g} (smallest {float(std[i]):.3g} at "
                       f"index {i}): normalising by it gives inf/NaN")


def comma_choices(text: str, choices: Iterable[str], error: Callable[[list[str]], str]) -> list[str]:
    """A comma-separated flag value -> its names, each once, in order; a one-line HmuError (``error`` of the names not
    in ``choices``, maybe none) when one is not a choice or there are none."""
    names = list(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    allowed = set(choices)
    bad = [a for a in names if a not in allowed]
    if bad or not names:
        raise HmuError(error(bad))
    return names
