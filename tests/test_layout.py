"""The package's shape, read from its source with `ast` (nothing is imported): no import cycle
among the modules of synthgen/, no module over 450 lines, no function over 60.

A cycle counts every import a module can run, function-level (lazy) ones included: a lazy
import only hides a circle from the import system, not from the reader. Imports under
`if TYPE_CHECKING:` run never and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "synthgen"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60  # from the `def` line to the last line of the body, docstring included


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _statements(node: ast.AST) -> list[ast.stmt]:
    """Every import statement under `node` at any depth, less `if TYPE_CHECKING:` bodies."""
    out: list[ast.stmt] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child):
            for other in child.orelse:
                out += [other] if isinstance(other, ast.Import | ast.ImportFrom) else []
                out += _statements(other)
        elif isinstance(child, ast.Import | ast.ImportFrom):
            out.append(child)
        else:
            out += _statements(child)
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The synthgen modules `name` imports: `from a.b import c` names a.b.c where that is a
    module, else a.b (its __init__)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _statements(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
            continue
        base = node.module or ""
        if node.level:  # relative: from .x import y
            up = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{up}.{base}" if base else up
        for a in node.names:
            if f"{base}.{a.name}" in known:
                out.add(f"{base}.{a.name}")
            elif base in known:
                out.add(base)
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first, in sorted order)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_names_a_cycle_and_passes_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_lazy_imports_count_and_type_checking_ones_do_not(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from synthgen import a\n"
        "def f():\n    from synthgen import b\n    import synthgen.c\n"
        "from synthgen.pkg import d\n"
    )
    known = dict.fromkeys(["synthgen.a", "synthgen.b", "synthgen.c", "synthgen.pkg"], src)
    assert imports("m", src, known) == {"synthgen.b", "synthgen.c", "synthgen.pkg"}


def test_no_import_cycle_among_the_modules_of_synthgen() -> None:
    graph = import_graph()
    assert "synthgen.errors" in graph and not graph["synthgen.errors"]  # the leaf
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_over_450_lines_and_no_function_over_60() -> None:
    too_long = []
    for name, path in modules().items():
        src = path.read_text(encoding="utf-8")
        if (n := len(src.splitlines())) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {n} lines")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name} (line {node.lineno}): {n} lines")
    assert not too_long, "over the limits:\n" + "\n".join(too_long)
