"""The argparse Namespace stops at the parser: no function of src/ other than a command's ``main`` takes one.

Read with ``ast`` (nothing is imported). A function takes a Namespace when a parameter is annotated ``Namespace``,
is named as argparse's result is by convention (``args``, ``ns``, ``namespace``) without another annotation, or is
read or filled the Namespace way (``vars(p)``, ``setattr(p, ...)`` on an unannotated parameter). Library code takes
the command's typed config (``src.config.command``) or the values it needs instead.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

NAMESPACE_NAMES = {"args", "ns", "namespace"}

# The parser itself: where the Namespace becomes the config.
PARSER = {("src/config/command.py", "_build")}

# TEMPORARY, each owned by the other issue-24 helper (i24-cli-b) or kept only for its commands: remove an entry when
# its command parses a typed config (the test fails when an entry is no longer needed).
TEMPORARY: set[tuple[str, str]] = set()


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.arg]:
    a = fn.args
    return [*a.posonlyargs, *a.args, *a.kwonlyargs]


def _is_namespace_annotation(node: ast.expr | None) -> bool:
    return node is not None and "Namespace" in ast.unparse(node)


def _untyped(p: ast.arg) -> bool:
    """No annotation, or one that says nothing (``Any``, ``object``)."""
    return p.annotation is None or ast.unparse(p.annotation) in ("Any", "typing.Any", "object")


def namespace_params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The parameters of ``fn`` that are argparse Namespaces (see the module docstring)."""
    out = []
    unannotated = {p.arg for p in _params(fn) if _untyped(p)}
    used_as_namespace = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Name) and first.id in unannotated and (
                    node.func.id == "vars" or (node.func.id == "setattr" and len(node.args) == 3
                                               and isinstance(node.args[1], ast.Constant))):
                used_as_namespace.add(first.id)
    for p in _params(fn):
        if _is_namespace_annotation(p.annotation) or (_untyped(p) and p.arg in NAMESPACE_NAMES) \
                or p.arg in used_as_namespace:
            out.append(p.arg)
    return out


def namespace_functions(root: Path = SRC) -> set[tuple[str, str]]:
    """(file relative to the repository, function name) of every function other than ``main`` taking a Namespace."""
    found = set()
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != "main" \
                    and namespace_params(node):
                found.add((path.relative_to(root.parent).as_posix(), node.name))
    return found


def test_no_function_below_main_takes_a_namespace():
    found = namespace_functions()
    assert sorted(found - PARSER - TEMPORARY) == []
    assert sorted(TEMPORARY - found) == [], "no longer takes a Namespace: remove it from TEMPORARY"


def _found(source: str) -> list[str]:
    fn = ast.parse(source).body[0]
    return namespace_params(fn)


def test_checker_sees_each_way_a_namespace_comes_in():
    assert _found("def f(args): return args.lr") == ["args"]
    assert _found("def f(args: Any): return args.lr") == ["args"]
    assert _found("def f(cfg: argparse.Namespace): pass") == ["cfg"]
    assert _found("def f(flags):\n    return vars(flags)") == ["flags"]
    assert _found("def f(o, n):\n    setattr(o, 'vq_name', n)") == ["o"]
    # typed configs, plain dicts and *args are not Namespaces
    assert _found("def f(cfg: LcrConfig, args: dict): return cfg.seed") == []
    assert _found("def f(*args, **kw): pass") == []
    assert _found("def f(model, name):\n    setattr(model, name, 1)") == []  # an attribute chosen at run time


def test_checker_walks_a_planted_library_function(tmp_path):
    pkg = tmp_path / "src" / "methods"
    pkg.mkdir(parents=True)
    (pkg / "lib.py").write_text("def run(args):\n    return args.seed\n\n\ndef main(argv=None):\n    args = 1\n")
    assert namespace_functions(tmp_path / "src") == {("src/methods/lib.py", "run")}
