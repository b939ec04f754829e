"""One error type for bad input, and the wrapper that turns it into a one-line message at the CLI."""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence


class HmuError(Exception):
    """A problem the user can fix (bad flag, missing file, malformed data).

    The message must be one line and name the thing at fault (file, flag, key). CLIs print it as
    ``error: <message>`` on stderr and exit with status 2, never with a traceback.
    """


def cli(fn: Callable[[Sequence[str] | None], int | None]) -> Callable[[Sequence[str] | None], int]:
    """Decorate ``main(argv=None)``: HmuError, a missing file or Ctrl-C become one line on stderr and a non-zero status.

    Set ``HMU_DEBUG=1`` to see the traceback instead.
    """

    @functools.wraps(fn)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        import os

        try:
            rc = fn(argv)
            return 0 if rc is None else int(rc)
        except SystemExit:
            raise
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # output piped into `head` and the reader left: not an error of ours
            try:
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep the interpreter's final flush quiet
            except OSError:
                pass
            return 141
        except Exception as exc:  # the CLI boundary: every other error becomes one line
            if os.environ.get("HMU_DEBUG"):
                raise
            print(f"error: {one_line(exc)}{'' if is_user_error(exc) else bug_hint()}", file=sys.stderr)
            return 2

    return wrapper


def is_user_error(exc: BaseException) -> bool:
    """True for what the user can fix (bad input, a missing or unreadable file, a full disk, too little memory);
    anything else reaching the CLI boundary is a bug of hmu."""
    return isinstance(exc, (HmuError, OSError, MemoryError))


def bug_hint() -> str:
    """The tail of the one line printed for an unexpected exception: it is a bug, and how to report it."""
    return (" -- this is a bug in hmu, not a problem with your input: please report it with the command and the "
            "traceback that HMU_DEBUG=1 prints")


def one_line(exc: BaseException) -> str:
    """Render an exception as one line; non-HmuError exceptions keep their type name."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, HmuError):
        return msg
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return msg
    if isinstance(exc, MemoryError):
        return "out of memory (try a smaller --batch_size)"
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" while writing {exc.filename}" if exc.filename else ""
        return f"no space left on device{where}"
    return f"{type(exc).__name__}: {msg}"
