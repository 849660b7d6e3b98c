"""The shape of the house, checked from the source: layers, cycles and sizes.

Imports are read with `ast`, nothing is imported or run, so a violation fails here
even when it would only bite at runtime on some path. Every import counts, also one
under `TYPE_CHECKING` or inside a function: a dependency hidden from the loader is
still a dependency. `docs/architecture.md` draws the same map.

The checker itself is tested on small synthetic trees, so a check that quietly stops
seeing anything (a wrong path, a resolution bug) fails as well.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "streamworker"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 100

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "budgets", "limits", "metrics", "jsonbound"}),
    frozenset({"contract"}),
    frozenset({"settings", "settings_file", "kafka_security"}),
    frozenset({"languages"}),
    frozenset({"sandbox"}),
    frozenset({"images", "monitor"}),
    frozenset({"verdict", "judge"}),
    frozenset({"audit"}),
    frozenset({"pipeline", "fit", "retry"}),
    frozenset({"worker"}),
    frozenset({"replay", "client", "doctor", "bench", "gateway"}),
    frozenset({"cli"}),
)
"""Bottom to top, by top-level module or package of `streamworker`. A unit may import
its own layer and the layers below it, never one above; within a layer only the cycle
check stands between units. The root `streamworker/__init__.py` holds the version and
imports nothing, so it is below everything."""


@dataclass(frozen=True)
class Module:
    name: str
    """Dotted, e.g. `streamworker.sandbox.pool`."""
    path: Path
    is_package: bool
    """An `__init__.py`: its relative imports start in its own folder."""


def modules(root: Path) -> dict[str, Module]:
    """Every Python module under the package folder `root`, by dotted name."""
    found: dict[str, Module] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        found[name] = Module(name, path, is_package)
    return found


def _absolute(module: Module, level: int, target: str | None) -> str:
    """The absolute name a relative `from` import (`level` dots) refers to."""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


def imports_of(module: Module, known: Mapping[str, Module]) -> set[str]:
    """The project modules `module` imports, resolved to names in `known`.

    `from a import b` is an import of module `a.b` when that module exists, else of
    `a` (b is a name in it); `import a.b.c` is an import of `a.b.c`.
    """
    tree = ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))
    wanted: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            wanted.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node.level, node.module) if node.level else node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                wanted.add(submodule if submodule in known else source)
    return {name for name in wanted if name in known and name != module.name}


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module name -> the project modules it imports."""
    known = modules(root)
    return {name: imports_of(module, known) for name, module in known.items()}


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module),
    each sorted, found with Tarjan's algorithm written iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def unit_of(name: str) -> str | None:
    """The layered unit of a module: its top-level module or package (None: the root)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_problems(
    graph: Mapping[str, Iterable[str]], layers: Sequence[frozenset[str]]
) -> list[str]:
    """Imports that run up the layer map, and units the map does not place."""
    level = {unit: i for i, layer in enumerate(layers) for unit in layer}
    problems: list[str] = []
    for name in sorted(graph):
        unit = unit_of(name)
        if unit is None:
            if graph[name]:
                problems.append(f"{name}: the root package must import nothing")
            continue
        if unit not in level:
            problems.append(f"{name}: '{unit}' is in no layer of the map")
            continue
        for target in sorted(graph[name]):
            other = unit_of(target)
            if other is None or other not in level:
                continue  # the root is below everything; unplaced units are named above
            if level[other] > level[unit]:
                problems.append(f"{name} imports {target}: '{unit}' is below '{other}'")
    return problems


def long_modules(root: Path, limit: int) -> list[str]:
    """Modules over `limit` lines."""
    out = []
    for module in modules(root).values():
        count = len(module.path.read_text(encoding="utf-8").splitlines())
        if count > limit:
            out.append(f"{module.name}: {count} lines")
    return sorted(out)


def long_functions(root: Path, limit: int) -> list[str]:
    """Functions and methods (nested ones too) whose body runs over `limit` lines,
    counted from the `def` line to the last line, decorators aside."""
    out = []
    for module in modules(root).values():
        tree = ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    out.append(f"{module.name}.{node.name} (line {node.lineno}): {length} lines")
    return sorted(out)


# The real tree.


def test_the_package_is_read() -> None:
    graph = import_graph(PACKAGE)
    assert "streamworker.judge" in graph and "streamworker.contract" in graph
    assert "streamworker.sandbox.policy" in graph["streamworker.judge"]


def test_no_import_cycles() -> None:
    assert cycles(import_graph(PACKAGE)) == []


def test_imports_follow_the_layers() -> None:
    assert layer_problems(import_graph(PACKAGE), LAYERS) == []


def test_no_module_over_the_limit() -> None:
    assert long_modules(PACKAGE, MAX_MODULE_LINES) == []


def test_no_function_over_the_limit() -> None:
    assert long_functions(PACKAGE, MAX_FUNCTION_LINES) == []


# The checker, on synthetic trees.


def tree(tmp_path: Path, files: Mapping[str, str]) -> Path:
    """A package `pkg` under `tmp_path` with `files` (relative paths -> source)."""
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


SMALL_LAYERS = (frozenset({"low"}), frozenset({"mid"}), frozenset({"high"}))


def test_resolves_absolute_relative_and_from_package_imports(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "low.py": "",
            "mid/__init__.py": "from . import part\nfrom .part import X\n",
            "mid/part.py": "from ..low import Y\nimport pkg.low\n",
            "mid/other.py": "from pkg.mid import part\nfrom pkg import low\nimport os\n",
            "high.py": "def f():\n    from pkg.mid.part import Z\n",
        },
    )
    graph = import_graph(root)
    assert graph["pkg.mid"] == {"pkg.mid.part"}
    assert graph["pkg.mid.part"] == {"pkg.low"}
    assert graph["pkg.mid.other"] == {"pkg.mid.part", "pkg.low"}
    assert graph["pkg.high"] == {"pkg.mid.part"}, "a function-local import counts"
    assert graph["pkg.low"] == set()


def test_finds_a_cycle_through_three_modules_and_nothing_in_a_chain(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "a.py": "from pkg import b\n",
            "b.py": "from pkg.c import x\n",
            "c.py": "import pkg.a\n",
            "d.py": "import pkg.a\n",
        },
    )
    assert cycles(import_graph(root)) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert cycles({"x": {"y"}, "y": {"z"}, "z": set()}) == []


def test_a_type_checking_import_still_closes_a_cycle(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "a.py": "import pkg.b\n",
            "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
        },
    )
    assert cycles(import_graph(root)) == [["pkg.a", "pkg.b"]]


def test_an_upward_import_and_an_unplaced_unit_are_named(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "low.py": "from pkg.high import thing\n",
            "mid/__init__.py": "from pkg import low\n",
            "high.py": "from pkg.mid import x\nfrom pkg import low\n",
            "stray.py": "",
        },
    )
    assert layer_problems(import_graph(root), SMALL_LAYERS) == [
        "pkg.low imports pkg.high: 'low' is below 'high'",
        "pkg.stray: 'stray' is in no layer of the map",
    ]


def test_the_root_package_may_not_import(tmp_path: Path) -> None:
    root = tree(tmp_path, {"__init__.py": "from pkg import low\n", "low.py": ""})
    assert layer_problems(import_graph(root), SMALL_LAYERS) == [
        "pkg: the root package must import nothing"
    ]


@pytest.mark.parametrize(("body", "flagged"), [(98, False), (99, True)])
def test_function_length_limit_is_exact(tmp_path: Path, body: int, flagged: bool) -> None:
    # def line + docstring + `body` statements: 100 lines, or 101.
    source = "class K:\n    async def m(self):\n        '''d'''\n" + "        x = 1\n" * body
    root = tree(tmp_path, {"m.py": source})
    found = long_functions(root, 100)
    assert found == (["pkg.m.m (line 2): 101 lines"] if flagged else [])


def test_module_length_limit_is_exact(tmp_path: Path) -> None:
    root = tree(tmp_path, {"ok.py": "x = 1\n" * 400, "big.py": "x = 1\n" * 401})
    assert long_modules(root, 400) == ["pkg.big: 401 lines"]


def test_the_gateway_reaches_neither_docker_nor_faust() -> None:
    """The gateway is a public HTTP surface: it must not be able to run code or hold the
    Docker socket, only produce submissions and read results (docs/architecture.md)."""
    graph = import_graph(PACKAGE)
    forbidden = {"worker", "sandbox", "judge", "images", "monitor", "pipeline"}
    reached = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if unit_of(module) == "gateway"
        for target in targets
        if unit_of(target) in forbidden
    )
    assert reached == []
    third_party = {
        name.split(".")[0]
        for path in (PACKAGE / "gateway").glob("*.py")
        for name in re.findall(r"^(?:from|import) (\w+)", path.read_text(), flags=re.M)
    }
    assert not {"aiodocker", "faust"} & third_party
