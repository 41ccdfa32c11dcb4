"""The tier guard of tests/conftest.py: a unit test that asks for Azurite stops the collection
(the unit tier runs without it), one in tests/integration does not."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from tests import conftest

TESTS = Path(conftest.__file__).parent


@dataclass
class Item:
    """The parts of a collected `pytest.Item` the guard reads."""

    path: Path
    nodeid: str
    fixturenames: tuple[str, ...] = ()
    markers: set[str] = field(default_factory=set)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def collect(*items: Item) -> None:
    conftest.pytest_collection_modifyitems(cast(list[pytest.Item], list[Any](items)))


def test_a_unit_test_with_the_azurite_fixture_is_refused() -> None:
    asking = Item(TESTS / "unit" / "test_x.py", "tests/unit/test_x.py::t", ("azurite_connection",))
    with pytest.raises(pytest.UsageError) as refused:
        collect(Item(TESTS / "unit" / "test_y.py", "tests/unit/test_y.py::ok"), asking)
    assert str(refused.value) == "needs Azurite, move to tests/integration: tests/unit/test_x.py::t"


def test_a_unit_test_marked_azurite_is_refused() -> None:
    marked = Item(TESTS / "unit" / "test_x.py", "tests/unit/test_x.py::m", markers={"azurite"})
    with pytest.raises(pytest.UsageError, match="move to tests/integration"):
        collect(marked)


def test_integration_tests_may_use_azurite() -> None:
    path = TESTS / "integration" / "test_x.py"
    collect(Item(path, "i", ("azurite_connection",)), Item(path, "j", markers={"azurite"}))
