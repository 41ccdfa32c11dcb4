"""Every module the prose names exists: a `connector.<module>` in the docs, the README,
CONTRIBUTING, pyproject.toml, the Makefile, scripts/ or a docstring or comment of the code, tests
and benchmarks is a module (or a name defined at the top of one), and a `connector/<path>.py`
there is a file (other paths in the docs: `tests/unit/test_settings_agree.py`). Dotted names
the code uses as values, such as metric, span attribute and logger names
(`connector.events.received`), are names, not modules."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "connector"
DOTTED = re.compile(r"(?<![\w./-])connector(?:\.[a-z_][a-z0-9_]*)+")
SLASHED = re.compile(r"(?<![\w./-])connector/[\w/]+\.py")
PROSE = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "deploy").rglob("*.md")),
    ROOT / "pyproject.toml",
    ROOT / "Makefile",
    *sorted(p for p in (ROOT / "scripts").iterdir() if p.is_file()),
]
SOURCES = [
    ROOT / "function_app.py",
    *sorted(PACKAGE.rglob("*.py")),
    *sorted((ROOT / "tests").rglob("*.py")),
    *sorted((ROOT / "bench").rglob("*.py")),
]


_SCOPES = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


def docstrings(tree: ast.Module) -> list[ast.Constant]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, _SCOPES) and node.body and isinstance(node.body[0], ast.Expr):
            value = node.body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.append(value)
    return found


def prose_of(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every docstring and comment of a Python source."""
    yield from ((d.lineno, str(d.value)) for d in docstrings(ast.parse(source)))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def names_in_use() -> set[str]:
    """Dotted `connector.…` strings the code passes as values (metric, attribute and logger
    names)."""
    names: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        prose = {id(d) for d in docstrings(tree)}
        texts = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in prose]
        names.update(
            t.value for t in texts if isinstance(t.value, str) and DOTTED.fullmatch(t.value)
        )
    return names


def top_level_names(module: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def resolves(dotted: str) -> bool:
    """A module (`connector.storage.tables`), or a name at the top of one
    (`connector.core.gates.decide`)."""
    parts = dotted.split(".")[1:]
    for i in range(len(parts), -1, -1):
        base = PACKAGE.joinpath(*parts[:i])
        module = base.with_suffix(".py") if i else PACKAGE / "__init__.py"
        if not module.exists():
            module = base / "__init__.py"
        if module.exists():
            rest = parts[i:]
            if not rest:
                return True
            return rest[0] in top_level_names(module)
    return False


def named_in(line: str) -> Iterator[str]:
    """The modules and files a line names; `connector.events.*` (a family) keeps its `.*`."""
    for found in DOTTED.finditer(line):
        family = line[found.end() : found.end() + 2] == ".*"
        yield found.group(0) + (".*" if family else "")
    yield from (found.group(0) for found in SLASHED.finditer(line))


def mentions() -> Iterator[tuple[str, int, str]]:
    for doc in PROSE:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            yield from ((str(doc.relative_to(ROOT)), number, n) for n in named_in(line))
    for path in SOURCES:
        for first, text in prose_of(path.read_text(encoding="utf-8")):
            for offset, line in enumerate(text.splitlines()):
                where = str(path.relative_to(ROOT))
                yield from ((where, first + offset, n) for n in named_in(line))


def test_every_module_the_prose_names_exists() -> None:
    in_use = names_in_use()
    missing = []
    for where, line, named in mentions():
        if named.endswith(".py"):
            ok = (ROOT / named).exists()
        elif named.endswith(".*"):  # a family of names, or of modules
            ok = any(n.startswith(named[:-1]) for n in in_use) or resolves(named[:-2])
        else:
            ok = named in in_use or resolves(named)
        if not ok:
            missing.append(f"{where}:{line}: {named}")
    assert missing == []


def test_the_check_finds_a_module_that_does_not_exist() -> None:
    assert resolves("connector.storage.tables")
    assert resolves("connector.core.gates.decide")
    assert resolves("connector.app.doctor")
    assert not resolves("connector.devops_routes")
    assert not resolves("connector.signature.verify")
    assert not resolves("connector.core.gates.no_such_name")
    assert "connector.events.received" in names_in_use()
    assert "connector.events" not in names_in_use()  # a family is named `connector.events.*`
