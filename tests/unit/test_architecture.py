"""The architecture, checked: every import points down the layers, packages import one another
without cycles and no module does inside its package, the core imports nothing but itself, the
standard library and pydantic, every error of ours derives from `ConnectorError`, every module the
warm-up names imports, and no module outgrows 400 lines. Layers, bottom to top (CONTRIBUTING.md,
"Architecture"): core < base (`connector/*.py`) < devops, queue, storage < sources < outputs <
gates < app.

Imports count at any depth: inside functions and `if TYPE_CHECKING:` blocks too. A deferred or a
type-only import still makes one module know another; deferring it hides a cycle from the
interpreter, not from the reader (the doctor's three files were one such circle)."""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType

import pytest

from connector.app.functions import warmup
from connector.core.errors import ConnectorError

ROOT = Path(__file__).resolve().parents[2] / "connector"
LAYERS = {
    "core": 0,
    "base": 1,
    "devops": 2,
    "queue": 2,
    "storage": 2,
    "sources": 3,
    "outputs": 4,
    "gates": 5,
    "app": 6,
}
# What the core may import besides itself and the standard library: pydantic, for the validated
# values it defines (`core.names`, `core.environments`); it reads nothing and connects nothing.
CORE_MAY_IMPORT = frozenset({"pydantic"})
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


def module_imports(source: str, known: Iterable[str]) -> Iterator[str]:
    """The `connector` modules `source` imports, at any depth: `from connector.app.doctor import
    checks` imports the module `connector.app.doctor.checks`, `from connector.core.gates import
    Gate` the module `connector.core.gates`. (Importing a submodule runs its package's
    `__init__` too; that is not counted, or every package that imports its own parts would be a
    cycle.)"""
    known = set(known)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("connector."):
                    yield _nearest(alias.name, known)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _ours(node.module or ""):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield sub if sub in known else _nearest(node.module or "", known)


def _ours(module: str) -> bool:
    return module == "connector" or module.startswith("connector.")


def _nearest(target: str, known: set[str]) -> str:
    """`target` if it is a module of ours, else the module it names something in."""
    while target not in known and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def module_edges(sources: Mapping[str, str]) -> dict[str, set[str]]:
    """Module → the modules of its own package it imports (`sources`: module name → source)."""
    edges: dict[str, set[str]] = {}
    for module, source in sources.items():
        for target in module_imports(source, sources):
            if target != module and package_of(target) == package_of(module):
                edges.setdefault(module, set()).add(target)
    return edges


def impure_imports(module: str, source: str) -> list[str]:
    """What a core module imports beyond the core, the standard library and `CORE_MAY_IMPORT`."""
    if package_of(module) != "core":
        return []
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "connector":
                names = [f"connector.{alias.name}" for alias in node.names]
        else:
            continue
        found += [f"{module}:{node.lineno} imports {n}" for n in names if not _pure(n)]
    return found


def _pure(name: str) -> bool:
    top = name.split(".", maxsplit=1)[0]
    if top == "connector":
        return name == "connector.core" or name.startswith("connector.core.")
    return top in sys.stdlib_module_names or top in CORE_MAY_IMPORT


def foreign_errors(module: ModuleType) -> list[str]:
    """The exception classes `module` defines that do not derive from `ConnectorError`."""
    return [
        f"{module.__name__}.{name}"
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
        and not issubclass(value, ConnectorError)
    ]


def warm_up_modules() -> tuple[str, ...]:
    """What the warm-up imports (the app's own modules and the registered plug-ins')."""
    return tuple(warmup.modules())


def unimportable(names: Iterable[str]) -> list[str]:
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            failed.append(f"{name}: {exc}")
    return failed


def sources_by_module() -> dict[str, str]:
    return {module_name(p): p.read_text() for p in modules()}


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


def test_modules_import_one_another_without_cycles() -> None:
    """Inside a package too (cycles between packages are the test above)."""
    found = cycles(module_edges(sources_by_module()))
    assert [" → ".join(cycle) for cycle in found] == []


def test_the_core_imports_only_itself_the_standard_library_and_pydantic() -> None:
    problems = [
        problem
        for path in modules()
        for problem in impure_imports(module_name(path), path.read_text())
    ]
    assert problems == []


def test_every_error_of_ours_derives_from_connector_error() -> None:
    """So that `connector.errors.is_retryable` reads the marker of each (`connector.__main__`
    runs the CLI when imported: it defines nothing)."""
    ours = [module_name(p) for p in modules() if p.name != "__main__.py"]
    assert [e for m in ours for e in foreign_errors(importlib.import_module(m))] == []


def test_every_module_the_warm_up_names_imports() -> None:
    names = warm_up_modules()
    assert names, "the warm-up names no module"
    assert unimportable(names) == []


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
        ("connector.core.tracking", "def f():\n    from connector import settings"),
        ("connector.devops.client", "from connector.queue import envelope"),
        (
            "connector.outputs.statuses",
            "if TYPE_CHECKING:\n    from connector.gates.keeper import GateKeeper",
        ),
        ("connector.gates.keeper", "import connector.app.root.bootstrap"),
        ("connector.settings", "from connector import keyrings, sources"),
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
        ("connector.settings", "from connector.core.environments import EnvironmentSpec"),
        ("connector.telemetry", "def f():\n    from connector.core import processing"),
        ("connector.__main__", "from connector.app.cli.main import main"),
    ],
)
def test_a_downward_import_passes(module: str, source: str) -> None:
    assert upward_imports(module, source) == []


def test_a_cycle_is_found() -> None:
    edges = {"queue": {"storage"}, "storage": {"devops"}, "devops": {"queue"}, "core": {"base"}}
    assert cycles(edges) == [["devops", "queue", "storage", "devops"]]


def test_a_cycle_inside_a_package_is_found() -> None:
    """The doctor's circle as it was: a deferred import closes it, a type-only one counts too."""
    sources = {
        "connector.app.doctor.report": "def f():\n    from connector.app.doctor import checks",
        "connector.app.doctor.checks": "from connector.app.doctor.devops import devops_checks",
        "connector.app.doctor.devops": (
            "if TYPE_CHECKING:\n    from connector.app.doctor.report import Check"
        ),
        "connector.app.root.bootstrap": "from connector.app.doctor import report",
        "connector.core.tracking": "",
    }
    assert cycles(module_edges(sources)) == [
        [
            "connector.app.doctor.checks",
            "connector.app.doctor.devops",
            "connector.app.doctor.report",
            "connector.app.doctor.checks",
        ]
    ]


def test_modules_importing_down_one_package_have_no_cycle() -> None:
    sources = {
        "connector.gates.keeper": "from connector.gates import rechecks, store",
        "connector.gates.rechecks": "def f():\n    from connector.gates.config import GatePolicy",
        "connector.gates.store": "import connector.gates.config",
        "connector.gates.config": "from connector.core.gates import Gate",
        "connector.core.gates": "",
    }
    edges = module_edges(sources)
    assert edges == {
        "connector.gates.keeper": {"connector.gates.rechecks", "connector.gates.store"},
        "connector.gates.rechecks": {"connector.gates.config"},
        "connector.gates.store": {"connector.gates.config"},
    }
    assert cycles(edges) == []


@pytest.mark.parametrize(
    "source",
    [
        "from opentelemetry import trace",
        "from connector import telemetry",
        "def f():\n    from connector.settings import Settings",
        "if TYPE_CHECKING:\n    from azure.core.exceptions import AzureError",
        "import connector.storage.tables",
        "from connector.errors import is_retryable",
    ],
)
def test_an_impure_core_import_is_found(source: str) -> None:
    assert len(impure_imports("connector.core.processing", source)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "from collections.abc import Mapping\nimport re",
        "from connector.core.tracking import Observation",
        "from connector.core import tracking",
        "from pydantic import BaseModel",
    ],
)
def test_a_pure_core_import_passes(source: str) -> None:
    assert impure_imports("connector.core.processing", source) == []


def test_only_the_core_is_held_to_purity() -> None:
    assert impure_imports("connector.telemetry", "from opentelemetry import trace") == []


def test_an_error_without_the_base_is_found() -> None:
    module = ModuleType("connector.somewhere")
    here = {"__module__": module.__name__}
    vars(module).update(
        OwnError=type("OwnError", (ConnectorError,), here),
        BareError=type("BareError", (ValueError,), here),
        ValueError=ValueError,  # imported from elsewhere: not this module's
    )
    assert foreign_errors(module) == ["connector.somewhere.BareError"]


def test_a_warm_up_module_that_does_not_import_is_found() -> None:
    found = unimportable(["connector.core.tracking", "connector.core.no_such_module"])
    assert len(found) == 1
    assert found[0].startswith("connector.core.no_such_module: ")


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(LAYERS)
