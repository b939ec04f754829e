"""The layering rule of src/ (README "Layout"): nothing imports upward, and there are no import circles.

Layers, bottom to top: common, config -> data -> models, metrics -> gen, train, viz -> methods -> eval ->
attacks, report -> quickstart, prepare, momask_codes -> cli. A command (``__main__.py`` or a module with a main guard)
sits on its package's floor like any module: one that must import upward lives in ``src/cli/``. The only exemption is
:data:`ALIASES`, the old ``python -m`` names kept as forwarding modules; their bodies are checked to be nothing but a
docstring, ``from src.cli.X import main`` and the main guard, so an alias cannot hide logic. Imports are read with
``ast``, both module level and inside functions, so a lazy import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# package (first component under src) -> layer rank; a module may import only its own rank or below.
LAYERS = {
    "common": 0,
    "config": 0,
    "data": 1,
    "models": 2,
    "metrics": 2,  # pure numpy metrics: the trainers (train/) and the evaluation (eval/) both use them
    "gen": 3,
    "train": 3,
    "viz": 3,
    "methods": 4,
    "eval": 5,
    "attacks": 6,
    "report": 6,
    "quickstart": 7,
    "prepare": 7,
    "momask_codes": 7,
    "TMR": 7,  # upstream's path, no Python: requirements.txt and models/ (TMR checkpoints)
    "cli": 8,  # the commands that compose several floors
}

# old `python -m` name -> the src.cli module it forwards to (README, scripts/ and upstream's README use these names)
ALIASES = {
    "src.data.split": "src.cli.split",
    "src.eval.ncs_compute": "src.cli.ncs_compute",
    "src.eval.t2m_unlearn_sh": "src.cli.t2m_unlearn_sh",
    "src.eval.attack": "src.cli.attack",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _resolve(mod: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    base = pkg[: len(pkg) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Module -> the src modules it imports (a `from pkg import name` counts name when it is a module)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, path, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                if not t.startswith("src"):
                    continue
                while t and t not in mods:  # `import src.a.b.func` -> the module that holds it
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    deps.add(t)
        graph[mod] = deps
    return graph


def alias_problems(path: Path, target: str) -> list[str]:
    """What in an alias module is more than a docstring, ``from <target> import main`` and the main guard."""
    body = ast.parse(path.read_text(), str(path)).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    expected = [f"from {target} import main", "if __name__ == '__main__':\n    raise SystemExit(main())"]
    got = [ast.unparse(node) for node in body]
    return [] if got == expected else [f"{path}: expected exactly {expected}, found {got}"]


def _layer(mod: str) -> int | None:
    parts = mod.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def upward_imports(graph: dict[str, set[str]], aliases: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Edges to a higher floor, and any edge into an alias module; an alias's one edge to its target is allowed."""
    aliases = aliases or {}
    out = []
    for mod, deps in graph.items():
        lm = _layer(mod)
        for d in deps:
            if aliases.get(mod) == d:
                continue
            ld = _layer(d)
            if d in aliases or (lm is not None and ld is not None and ld > lm):
                out.append((mod, d))
    return sorted(out)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), ignoring package __init__ re-export edges."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_package_parents(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    # `import src.a.b` runs src/a/__init__.py; an __init__ that re-exports its own children is not a circle of design.
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


def test_every_src_package_has_a_layer():
    pkgs = {p.name if p.is_dir() else p.stem for p in SRC.iterdir() if p.name not in ("__init__.py", "__pycache__")}
    assert pkgs <= set(LAYERS), f"give these a layer in LAYERS: {sorted(pkgs - set(LAYERS))}"


def test_no_upward_imports():
    """CLIs count too; no module imports an alias (each alias forwards upward)."""
    assert upward_imports(import_graph(), ALIASES) == []


def test_aliases_only_forward():
    mods = _modules()
    problems = [p for alias, target in ALIASES.items() for p in alias_problems(mods[alias], target)]
    assert problems == []
    assert all(target in mods and _layer(target) == LAYERS["cli"] for target in ALIASES.values())


def test_no_import_circles():
    assert cycles(_without_package_parents(import_graph())) == []


def test_checker_sees_a_planted_circle_and_upward_import():
    g = {"src.data.a": {"src.eval.b"}, "src.eval.b": {"src.data.a"}}
    assert upward_imports(g) == [("src.data.a", "src.eval.b")]
    assert cycles(g) == [["src.data.a", "src.eval.b"]]
    # a command on the data floor that imports train climbs like any module (no __main__ exemption)
    assert upward_imports({"src.data.split_cli": {"src.train.tmr"}}) == [("src.data.split_cli", "src.train.tmr")]
    # an alias may reach its own target only; importing an alias is an upward edge
    aliases = {"src.data.split": "src.cli.split"}
    assert upward_imports({"src.data.split": {"src.cli.split"}}, aliases) == []
    assert upward_imports({"src.data.split": {"src.cli.split", "src.train.tmr"}}, aliases) == [
        ("src.data.split", "src.train.tmr")]
    assert upward_imports({"src.data.other": {"src.data.split"}}, aliases) == [("src.data.other", "src.data.split")]


def test_alias_checker_refuses_logic(tmp_path):
    ok = tmp_path / "ok.py"
    guard = 'if __name__ == "__main__":\n'
    ok.write_text(f'"""doc"""\nfrom src.cli.split import main\n\n{guard}    raise SystemExit(main())\n')
    assert alias_problems(ok, "src.cli.split") == []
    assert alias_problems(ok, "src.cli.other") != []
    bad = tmp_path / "bad.py"
    bad.write_text(ok.read_text() + "\nLIMIT = 3\n")
    assert alias_problems(bad, "src.cli.split") != []
    bad.write_text(f'from src.cli.split import main\n\n{guard}    print(1)\n    raise SystemExit(main())\n')
    assert alias_problems(bad, "src.cli.split") != []
