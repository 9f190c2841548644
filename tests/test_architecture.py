"""The shape of the code: no import cycles, no floor of responder/ reaching up, small files.

The import graph is read from the source with ast, every import counted: at module
level, inside functions (a lazy import that dodges a cycle is still one) and under
TYPE_CHECKING. Importing a.b.c runs a/__init__.py and a/b/__init__.py first, so an
import of a.b.c depends on those packages too: a package __init__ that imports its
own modules closes a cycle with them. README.md, "Architecture", tells the floors.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ddb_failover", "exporter", "responder", "sandbox")
# The rooms of responder/, top floor first: a room imports only rooms on lower floors.
# A room is a folder of responder/ or a module at its top.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("__main__", "gunicorn_conf", "gunicorn_worker"),
    ("app",),
    ("cli", "web"),
    ("intake",),
    ("records", "metrics"),
    ("plan", "execute"),
    ("decide", "notify"),
    ("actions", "state"),
    ("model", "secrets"),
)
MAX_LINES = 700
MAX_TOP_MODULES = 12

Graph = Mapping[str, set[str]]


def modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of the packages by dotted name; a package by its __init__.py."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(name: str, path: Path) -> Iterable[str]:
    """The dotted names an import statement in the module names, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    """Module -> the project's modules it needs run first, packages on the way included."""
    known = modules(root, packages)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target in imported_names(name, path):
            while target:
                if target in known and target != name:
                    graph[name].add(target)
                target = target.rpartition(".")[0]
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def room(module: str) -> str | None:
    """The room of responder/ a module is in; None for responder itself and other packages."""
    parts = module.split(".")
    return parts[1] if parts[0] == "responder" and len(parts) > 1 else None


def upward_imports(graph: Graph, floors: tuple[tuple[str, ...], ...]) -> list[str]:
    """Each import of responder/ that reaches its own floor's other rooms or a higher floor."""
    floor_of = {name: level for level, rooms in enumerate(floors) for name in rooms}
    wrong = []
    for module, targets in sorted(graph.items()):
        here = room(module)
        if here is None:
            continue
        for target in sorted(targets):
            there = room(target)
            if there is None or there == here:
                continue
            if floor_of[there] <= floor_of[here]:
                wrong.append(f"{module} -> {target}: {there} is not below {here}")
    return wrong


def test_no_module_imports_itself_round_a_cycle() -> None:
    assert cycles(import_graph(ROOT, PACKAGES)) == []


def test_every_room_of_the_responder_has_a_floor() -> None:
    rooms = {room(m) for m in modules(ROOT, ["responder"])} - {None}
    listed = {name for floor in FLOORS for name in floor}
    assert rooms == listed, "add the room to FLOORS here and to README.md's Architecture"


def test_no_floor_of_the_responder_reaches_up() -> None:
    assert upward_imports(import_graph(ROOT, PACKAGES), FLOORS) == []


def test_no_file_in_the_responder_is_over_700_lines() -> None:
    sizes = {p: len(p.read_text().splitlines()) for p in (ROOT / "responder").rglob("*.py")}
    assert {str(p.relative_to(ROOT)): n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_at_most_a_dozen_modules_at_the_top_of_the_responder() -> None:
    top = sorted(p.name for p in (ROOT / "responder").glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top


def test_a_cycle_through_a_package_init_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.leaf import X\n")
    (package / "sub" / "leaf.py").write_text("from pkg.sub.other import Y\nX = Y\n")
    (package / "sub" / "other.py").write_text("def f():\n    from . import leaf\nY = 1\n")
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.sub.leaf"] == {"pkg", "pkg.sub", "pkg.sub.other"}
    assert graph["pkg.sub.other"] == {"pkg", "pkg.sub", "pkg.sub.leaf"}
    assert cycles(graph) == [["pkg.sub", "pkg.sub.leaf", "pkg.sub.other"]]


def test_an_import_from_a_floor_above_is_found() -> None:
    graph = {
        "responder.model.alerts": {"responder.execute.runner"},
        "responder.execute.runner": {"responder.model.alerts", "responder.plan.plan"},
        "responder.plan.plan": set(),
    }
    floors = (("execute", "plan"), ("model",))
    assert upward_imports(graph, floors) == [
        "responder.execute.runner -> responder.plan.plan: plan is not below execute",
        "responder.model.alerts -> responder.execute.runner: execute is not below model",
    ]
