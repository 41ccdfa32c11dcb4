"""The architecture, checked: every import points down the layers, packages import one another
without cycles, and no module outgrows 400 lines. Layers, bottom to top (CONTRIBUTING.md,
"Architecture"): base (`connector/*.py`) < core < devops, queue, storage < sources < outputs <
gates < app."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "connector"
LAYERS = {
    "base": 0,
    "core": 1,
    "devops": 2,
    "queue": 2,
    "storage": 2,
    "sources": 3,
    "outputs": 4,
    "gates": 5,
    "app": 6,
}
MAX_LINES = 400


def modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def package_of(module: str) -> str:
    """`connector.core.rollup` → `core`; a top-level module (`connector.settings`) → `base`.
    `connector.__main__` is the process entry point (`python -m connector`, run and never
    imported), so it sits with the other entry points in `app`."""
    parts = module.split(".")
    if parts[1:] == ["__main__"]:
        return "app"
    if len(parts) > 2 or (len(parts) == 2 and (ROOT / parts[1]).is_dir()):
        if parts[1] not in LAYERS:
            raise AssertionError(f"{module}: package {parts[1]!r} has no layer in LAYERS")
        return parts[1]
    return "base"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every `connector` import, at any depth (inside functions and
    `if TYPE_CHECKING:` blocks too)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "connector":
                yield from ((node.lineno, f"connector.{a.name}") for a in node.names)
            elif node.module.startswith("connector."):
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("connector."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level:
            yield node.lineno, "<relative import>"


def upward_imports(module: str, source: str) -> list[str]:
    mine = package_of(module)
    found = []
    for line, target in imports(source):
        if target == "<relative import>":
            found.append(f"{module}:{line} uses a relative import (write `from connector.…`)")
            continue
        theirs = package_of(target)
        if theirs != mine and LAYERS[theirs] >= LAYERS[mine]:
            found.append(f"{module}:{line} ({mine}) imports {target} ({theirs})")
    return found


def package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in modules():
        mine = package_of(module_name(path))
        for _, target in imports(path.read_text()):
            if target != "<relative import>" and package_of(target) != mine:
                edges.setdefault(mine, set()).add(package_of(target))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == path[0]:
                found.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its least package
                walk(nxt, [*path, nxt])

    for start in sorted(edges):
        walk(start, [start])
    return found


# --- the rules ----------------------------------------------------------------------------------


def test_every_import_points_down_the_layers() -> None:
    problems = [
        problem
        for path in modules()
        for problem in upward_imports(module_name(path), path.read_text())
    ]
    assert problems == []


def test_packages_import_one_another_without_cycles() -> None:
    assert cycles(package_edges()) == []


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT.parent)): n
        for p in modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


# --- the checks can fail ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("connector.core.rollup", "from connector.storage.tables import TableStore"),
        ("connector.settings", "def f():\n    from connector.core import tracking"),
        ("connector.devops.client", "from connector.queue import envelope"),
        (
            "connector.outputs.statuses",
            "if TYPE_CHECKING:\n    from connector.gates.keeper import GateKeeper",
        ),
        ("connector.gates.keeper", "import connector.app.root.bootstrap"),
        ("connector.core.names", "from connector import telemetry, sources"),
        ("connector.core.names", "from . import tracking"),
    ],
)
def test_an_upward_import_is_found(module: str, source: str) -> None:
    assert len(upward_imports(module, source)) == 1


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("connector.core.rollup", "from connector.core.state import DeploymentStore"),
        ("connector.app.cli.main", "from connector.storage.tables import TableStore"),
        ("connector.core.gates", "from connector import telemetry"),
        ("connector.__main__", "from connector.app.cli.main import main"),
    ],
)
def test_a_downward_import_passes(module: str, source: str) -> None:
    assert upward_imports(module, source) == []


def test_a_cycle_is_found() -> None:
    edges = {"queue": {"storage"}, "storage": {"devops"}, "devops": {"queue"}, "core": {"base"}}
    assert cycles(edges) == [["devops", "queue", "storage", "devops"]]


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(LAYERS)
