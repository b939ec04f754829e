"""Progress for long loops: a tqdm bar with a total and an ETA on a terminal, plain lines everywhere else.

``progress(iterable, total=..., desc=...)`` is what every long loop uses. On a terminal it is a tqdm bar (with the
total taken from ``len(iterable)`` when ``total`` is not given, so it shows ``12/33 [00:10<00:19]`` rather than
``12it``). When stderr is not a terminal (a log file, a pipe, the quickstart's stage logs) tqdm's ``\\r`` redraws
would pile up on one line, so it writes a plain line instead, at most every ``every_s`` seconds and once at the end:
``epoch 1/5: 12/33 (36%) 10s elapsed, ETA 19s, loss=0.4321``. ``enabled=False`` (the CLIs' ``--no_progress``) shows
nothing. ``HMU_PROGRESS=bar|lines|off`` overrides the choice.

:class:`Sized` gives a generator a length, so a loop over ``batches(epoch)`` can still show its total.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TextIO, TypeVar

T = TypeVar("T")
ENV = "HMU_PROGRESS"
QUIET_S = 5.0   # a loop that ends sooner, with no line printed yet, prints none
MODES = ("bar", "lines", "off")


class Sized(Generic[T]):
    """An iterable with a known length: ``Sized(generator, n)``; iterating it more than once is an error."""

    def __init__(self, iterable: Iterable[T], n: int):
        self._it, self._n = iterable, int(n)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[T]:
        return iter(self._it)


def fmt_seconds(s: float) -> str:
    """12 -> '12s', 75 -> '1m15s', 3725 -> '1h02m'."""
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def mode(enabled: bool = True, stream: TextIO | None = None) -> str:
    """'bar' on a terminal, 'lines' otherwise, 'off' when disabled; env HMU_PROGRESS overrides the first two."""
    if not enabled:
        return "off"
    env = os.environ.get(ENV, "").strip().lower()
    if env in MODES:
        return env
    stream = stream if stream is not None else sys.stderr
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


class LineProgress(Generic[T]):
    """tqdm's interface (iteration, ``set_postfix``, ``update``, ``close``) written as plain, whole lines."""

    def __init__(self, iterable: Iterable[T] | None, *, total: int | None, desc: str, unit: str = "it",
                 every_s: float = 30.0, stream: TextIO | None = None, clock=time.monotonic):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.every_s, self.stream, self.clock = float(every_s), stream, clock
        self.n, self.postfix = 0, ""
        self.t0 = self.clock()
        self._last = self.t0
        self._closed = False

    def line(self) -> str:
        """The current state as one line (what is printed)."""
        el = self.clock() - self.t0
        if self.total:
            pct = 100.0 * self.n / self.total
            eta = el / self.n * (self.total - self.n) if self.n else None
            s = (f"{self.desc}: {self.n}/{self.total} {self.unit} ({pct:.0f}%) {fmt_seconds(el)} elapsed, ETA "
                 f"{fmt_seconds(eta) if eta is not None else '?'}")
        else:
            s = f"{self.desc}: {self.n} {self.unit} {fmt_seconds(el)} elapsed"
        return s + (f", {self.postfix}" if self.postfix else "")

    def _emit(self) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        print(self.line(), file=stream, flush=True)
        self._last = self.clock()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.clock() - self._last >= self.every_s:
            self._emit()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def close(self) -> None:
        """The final line, when the loop printed before or took a while (short loops stay silent in logs)."""
        if not self._closed:
            self._closed = True
            if self._last > self.t0 or self.clock() - self.t0 >= QUIET_S:
                self._emit()

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("LineProgress without an iterable is not iterable")
        try:
            for x in self.iterable:
                yield x
                self.update()
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Off(LineProgress):
    def _emit(self) -> None:
        pass


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, leave: bool = False, every_s: float = 30.0, stream: TextIO | None = None):
    """A progress wrapper over ``iterable`` (see the module docstring); ``total`` defaults to ``len(iterable)``."""
    if total is None and iterable is not None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    m = mode(enabled, stream)
    if m == "off":
        return _Off(iterable, total=total, desc=desc, unit=unit, stream=stream)
    if m == "lines":
        return LineProgress(iterable, total=total, desc=desc, unit=unit, every_s=every_s, stream=stream)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=stream, dynamic_ncols=True)


def apply_progress(enabled: bool) -> bool:
    """``enabled``; when False also sets HMU_PROGRESS=off, so that every loop below this command (and any subprocess
    it starts) stays quiet, including those not handed a ``progress`` argument."""
    if not enabled:
        os.environ[ENV] = "off"
    return bool(enabled)
