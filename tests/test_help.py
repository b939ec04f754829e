"""``--help`` of every CLI prints each default once and correctly: never ``(default: None)``, never two defaults for
one option, every real default shown (as ``(default: X)``, or as ``X: ... (default)`` in a list of choices), and a
default written by hand into a help text equal to the value argparse uses."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cli_modules() -> list[str]:
    """Every module with a command line: packages' ``__main__.py`` and modules ending in ``if __name__ ...``."""
    out = []
    for p in sorted((REPO / "src").rglob("*.py")):
        text = p.read_text(encoding="utf-8")
        if p.name == "__main__.py" or 'if __name__ == "__main__":' in text:
            mod = ".".join(p.relative_to(REPO).with_suffix("").parts)
            if "def build_parser" not in text and p.name == "__main__.py":
                mod = mod.removesuffix(".__main__")  # the package holds the parser (python -m src.report)
            out.append(mod)
    return out


MODULES = cli_modules()
DEFAULT = re.compile(r"\(default[:)]|\bdefault: |\(default ")


def _shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _entries(parser: argparse.ArgumentParser) -> list[tuple[argparse.Action, str]]:
    """(action, its help as --help prints it, on one line) for every option."""
    out = []
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help in (None, argparse.SUPPRESS):
            continue
        out.append((action, " ".join(formatter._expand_help(action).split())))
    return out


def parser_of(module: str) -> argparse.ArgumentParser | None:
    mod = importlib.import_module(module)
    if hasattr(mod, "build_parser"):
        return mod.build_parser()
    if hasattr(mod, "CONFIG"):  # a command built from its typed config (src.config.command)
        from src.config.command import config_parser

        return config_parser(mod.CONFIG, prog=mod.PROG)
    main = getattr(mod, "main", None)
    if main is not None and getattr(main, "__module__", module) not in (module, None):  # an alias: its target's
        return parser_of(main.__module__)
    if module in ("src.methods.uce", "src.methods.rece"):  # one shared CLI (src/methods/text_edit.py)
        from src.config.command import config_parser
        from src.methods.text_edit import CONFIGS

        return config_parser(CONFIGS[module.rsplit(".", 1)[1]], prog=module)
    if hasattr(mod, "__path__") and importlib.util.find_spec(f"{module}.__main__"):  # a package's command
        return parser_of(f"{module}.__main__")
    if module == "src.eval.attack":  # an alias of python -m src.attacks
        return importlib.import_module("src.attacks.__main__").build_parser()
    return None


def test_every_cli_is_covered():
    assert len(MODULES) >= 20
    for m in ("src.train.vq", "src.eval.t2m_unlearn", "src.quickstart", "src.report", "src.data.split"):
        assert m in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_help_prints_each_default_once_and_correctly(module):
    parser = parser_of(module)
    if parser is None:  # a parser built inside main(): check the printed text
        r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                           check=False)
        assert r.returncode == 0 and "(default: None)" not in r.stdout, r.stderr
        for entry in re.split(r"\n  (?=-)", r.stdout):
            assert len(DEFAULT.findall(" ".join(entry.split()))) <= 1, entry
        return
    problems = []
    for action, text in _entries(parser):
        flag = action.option_strings[-1] if action.option_strings else action.dest
        marks = DEFAULT.findall(text)
        if "default: None" in text:
            problems.append(f"{flag}: prints (default: None)")
        if len(marks) > 1:
            problems.append(f"{flag}: prints its default {len(marks)} times: {text}")
        real = action.default
        if real in (None, False, "", argparse.SUPPRESS) or isinstance(action, argparse._StoreConstAction):
            continue
        d = _shown(real)
        if not marks:
            problems.append(f"{flag}: default {d!r} not shown: {text}")
            continue
        m = re.search(r"default: ([^)]*)\)", text)
        if m and not (m.group(1) == d or m.group(1).startswith((d + " ", d + ",", d + ";"))):
            problems.append(f"{flag}: help says default {m.group(1)!r}, argparse uses {d!r}")
        if "(default)" in text and f"{d}:" not in text:
            problems.append(f"{flag}: '(default)' marks a choice other than {d!r}: {text}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("module", ["src.train.mask", "src.eval.t2m_unlearn", "src.quickstart"])
def test_help_runs_as_a_command(module):
    r = subprocess.run([sys.executable, "-m", module.removesuffix(".__main__"), "--help"], cwd=REPO,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "(default: None)" not in r.stdout
