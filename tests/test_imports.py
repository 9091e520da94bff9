"""The package's import structure: no import cycle inside ``oicsr_lab``, no library module importing the CLI.

Every import that runs counts, at module level *and* inside functions: a cycle hidden in a function
body is still two modules that need each other (both cycles issue #16 found were such function-level
imports). Imports under ``if TYPE_CHECKING:`` never run and do not count. ``from pkg import name``
counts as an import of ``pkg.name`` when that is a module, else of ``pkg`` (its ``__init__``); the
implicit import of a module's parent package is not an edge (every package imports its own modules).
"""

from __future__ import annotations

import ast
from pathlib import Path

import oicsr_lab

PACKAGE_DIR = Path(oicsr_lab.__file__).parent


def module_files(root: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of the package at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, files: dict[str, Path]) -> dict[str, int]:
    """``{imported module of the package: first line}`` for module ``name`` (TYPE_CHECKING blocks skipped)."""
    top = next(iter(files)).split(".")[0]
    path = files[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == top:
                        found.setdefault(alias.name, child.lineno)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == top:
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        found.setdefault(sub if sub in files else target, child.lineno)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """The package's import graph: module -> {module it imports: line}."""
    files = module_files(root)
    return {name: {t: ln for t, ln in imports_of(name, files).items() if t in files} for name in files}


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def dfs(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (cycle := dfs(w)):
                return cycle
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (cycle := dfs(v)):
            return cycle
    return None


def is_cli(name: str) -> bool:
    """True for command-line modules: ``oicsr_lab.cli`` (and anything in it) and ``oicsr_lab.__main__``."""
    return name in ("oicsr_lab.cli", "oicsr_lab.__main__") or name.startswith("oicsr_lab.cli.")


def describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    """``a (line 3) -> b (line 9) -> a`` for a failure message."""
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def test_no_import_cycle_inside_the_package():
    graph = import_graph(PACKAGE_DIR)
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the walk really saw the package
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {describe(graph, cycle)}"


def test_no_library_module_imports_the_cli():
    graph = import_graph(PACKAGE_DIR)
    assert "oicsr_lab.cli" in graph
    offenders = [f"{m} imports {t} (line {ln})" for m, targets in graph.items() if not is_cli(m)
                 for t, ln in targets.items() if is_cli(t)]
    assert not offenders, "library modules must not import the CLI: " + "; ".join(offenders)


def test_command_line_code_lives_only_in_the_cli_package():
    strays = [m for m in import_graph(PACKAGE_DIR) if m.rpartition(".")[2] == "cli" and m != "oicsr_lab.cli"]
    assert not strays, f"command-line modules outside oicsr_lab.cli: {strays}"
    assert (PACKAGE_DIR / "cli" / "__init__.py").is_file()
    assert not (PACKAGE_DIR / "cli.py").exists(), "oicsr_lab/cli.py would be shadowed by the oicsr_lab/cli/ package"


def test_every_subcommand_module_is_registered():
    """One module per subcommand under oicsr_lab/cli/, each in COMMANDS (registered in one place)."""
    from oicsr_lab.cli import COMMANDS

    files = {p.stem for p in (PACKAGE_DIR / "cli").glob("*.py")} - {"__init__", "common"}
    assert {c.__name__.rpartition(".")[2] for c in COMMANDS} == files
    assert [c.NAME for c in COMMANDS] == ["train", "eval", "info", "pretrained", "prune", "reproduce", "tables",
                                          "calibrate", "course"]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_the_walk_finds_function_level_and_package_cycles(tmp_path):
    pkg = tmp_path / "oicsr_lab"
    _write(pkg, {
        "__init__.py": "",
        "a/__init__.py": "from .loader import Loader\n",
        "a/loader.py": "def make():\n    from .streaming import S\n    return S\n",
        "a/streaming.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .loader import make\n",
        "b.py": "from . import c\n",
        "c.py": "import oicsr_lab.b\n",
    })
    graph = import_graph(pkg)
    assert graph["oicsr_lab.a.loader"] == {"oicsr_lab.a.streaming": 2}  # function-level import seen
    assert graph["oicsr_lab.a.streaming"] == {}  # TYPE_CHECKING import ignored
    assert find_cycle(graph) == ["oicsr_lab.b", "oicsr_lab.c", "oicsr_lab.b"]
    (pkg / "a" / "streaming.py").write_text("class S:\n    def f(self):\n        from .loader import make\n")
    graph = import_graph(pkg)
    assert find_cycle({k: v for k, v in graph.items() if k not in ("oicsr_lab.b", "oicsr_lab.c")}) == [
        "oicsr_lab.a.loader", "oicsr_lab.a.streaming", "oicsr_lab.a.loader"]
