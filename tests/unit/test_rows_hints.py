"""The hints of `update_row_tagged` save its first read and never decide anything: a version
that is no longer the row's, or a change that would write nothing on it, is read again."""

from __future__ import annotations

from typing import Any

import pytest

from connector.storage.rows import update_row_tagged
from tests.fakes.memory_tables import MemoryTableService
from tests.unit.test_status_ledger import CountingTable

PK, RK = "p", "r"


def add(amount: int):
    """A read-modify-write adding to a counter; it returns the value it wrote."""

    def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, int]:
        value = (entity or {}).get("n", 0) + amount
        return {"n": value}, value

    return change


@pytest.fixture
def table() -> CountingTable:
    return CountingTable(MemoryTableService().create_table_if_not_exists("hints"))


def version(table: CountingTable) -> tuple[dict[str, Any], str]:
    entity = table.get_entity(PK, RK)
    table.requests.clear()
    return {"n": entity["n"]}, entity.metadata["etag"]


def test_a_known_version_is_written_without_a_read(table) -> None:
    table.create_entity({"PartitionKey": PK, "RowKey": RK, "n": 1})
    known = version(table)

    result, etag = update_row_tagged(table, PK, RK, add(1), known=known)

    assert result == 2
    assert table.requests == ["update_entity"]
    assert table.get_entity(PK, RK)["n"] == 2
    assert etag == table.get_entity(PK, RK).metadata["etag"]


def test_a_stale_version_loses_no_update(table) -> None:
    table.create_entity({"PartitionKey": PK, "RowKey": RK, "n": 1})
    known = version(table)
    table.update_entity({"PartitionKey": PK, "RowKey": RK, "n": 10})  # another writer
    table.requests.clear()

    result, _ = update_row_tagged(table, PK, RK, add(1), known=known)

    assert result == 11
    assert table.requests == ["update_entity", "get_entity", "update_entity"]


def test_nothing_to_do_is_judged_on_the_row_as_it_is_now(table) -> None:
    """By the known version the row is already done; by the row itself it is not."""
    table.create_entity({"PartitionKey": PK, "RowKey": RK, "n": 5})
    known = version(table)
    table.update_entity({"PartitionKey": PK, "RowKey": RK, "n": 1})

    def at_least_five(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
        if entity is not None and entity["n"] >= 5:
            return None, False
        return {"n": 5}, True

    wrote, _ = update_row_tagged(table, PK, RK, at_least_five, known=known)

    assert wrote
    assert table.get_entity(PK, RK)["n"] == 5


def test_a_row_expected_absent_that_exists_is_updated(table) -> None:
    table.create_entity({"PartitionKey": PK, "RowKey": RK, "n": 1})
    table.requests.clear()

    result, _ = update_row_tagged(table, PK, RK, add(1), absent=True)

    assert result == 2
    assert table.requests == ["create_entity", "get_entity", "update_entity"]


def test_a_known_version_of_a_deleted_row_creates_it_again(table) -> None:
    table.create_entity({"PartitionKey": PK, "RowKey": RK, "n": 1})
    known = version(table)
    table.delete_entity(PK, RK)

    result, _ = update_row_tagged(table, PK, RK, add(1), known=known)

    assert result == 1
    assert table.get_entity(PK, RK)["n"] == 1
