"""The memory twin's transactions and `Timestamp` filters against Azurite: the same assertions on
both (as tests/integration/test_memory_tables.py does for single entities), deletes only."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.data.tables import TableTransactionError

from tests.fakes.memory_tables import MemoryTableService

PK = "p"


@pytest.fixture(params=["azurite", "memory"])
def table(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        service: Any = MemoryTableService()
    else:
        from connector.storage.rows import connect

        service = connect(connection_string=request.getfixturevalue("azurite_connection"))
    name = "x" + re.sub(r"[^a-z0-9]", "", request.node.name.lower())[:30] + uuid.uuid4().hex[:8]
    table = service.create_table_if_not_exists(name)
    for row in ("a", "b", "c"):
        table.create_entity({"PartitionKey": PK, "RowKey": row})
    return table


def rows(table: Any) -> list[str]:
    return [e["RowKey"] for e in table.list_entities()]


def delete(row: str, **options: Any) -> tuple[str, dict[str, str], dict[str, Any]]:
    return ("delete", {"PartitionKey": PK, "RowKey": row}, options)


def test_deletes_in_one_transaction(table: Any) -> None:
    assert table.submit_transaction([delete("a"), delete("b")]) == [{}, {}]
    assert rows(table) == ["c"]


def test_a_missing_entity_rejects_the_whole_transaction(table: Any) -> None:
    with pytest.raises(TableTransactionError) as caught:
        table.submit_transaction([delete("a"), delete("absent")])
    assert (caught.value.error_code, caught.value.index) == ("ResourceNotFound", 1)  # type: ignore[attr-defined]  # set at run time
    assert rows(table) == ["a", "b", "c"]


def test_a_stale_etag_rejects_the_whole_transaction(table: Any) -> None:
    read = {e["RowKey"]: e for e in table.list_entities()}
    table.upsert_entity({"PartitionKey": PK, "RowKey": "b", "v": 1})
    condition = {"match_condition": MatchConditions.IfNotModified}
    with pytest.raises(TableTransactionError) as caught:
        table.submit_transaction(
            [("delete", read["a"], condition), ("delete", read["b"], condition)]
        )
    assert caught.value.error_code == "UpdateConditionNotSatisfied"  # type: ignore[attr-defined]  # set at run time
    assert rows(table) == ["a", "b", "c"]
    table.submit_transaction([("delete", read["a"], condition)])
    assert rows(table) == ["b", "c"]


def test_an_entity_appears_once_in_one_partition(table: Any) -> None:
    with pytest.raises(TableTransactionError) as caught:
        table.submit_transaction([delete("a"), delete("a")])
    assert caught.value.error_code == "InvalidDuplicateRow"  # type: ignore[attr-defined]  # set at run time
    with pytest.raises(ValueError, match="Partition Keys"):
        table.submit_transaction([delete("a"), ("delete", {"PartitionKey": "q", "RowKey": "a"})])
    assert rows(table) == ["a", "b", "c"]


def test_a_hundred_deletes_fit_in_one_transaction(table: Any) -> None:
    for index in range(97):
        table.create_entity({"PartitionKey": PK, "RowKey": f"r{index:03}"})
    table.submit_transaction([delete(r) for r in rows(table)])
    assert rows(table) == []


def test_timestamp_filters_and_select(table: Any) -> None:
    entity = next(iter(table.list_entities()))
    written = entity.metadata["timestamp"]
    assert written.tzinfo is not None
    assert abs(written - datetime.now(UTC)) < timedelta(minutes=5)
    later = written + timedelta(days=1)
    older = table.query_entities("Timestamp lt @t", parameters={"t": later}, select=["RowKey"])
    assert [(e["RowKey"], e.metadata["timestamp"]) for e in older] == [
        ("a", None),  # no Timestamp back unless selected
        ("b", None),
        ("c", None),
    ]
    newer = table.query_entities(
        "PartitionKey eq @pk and Timestamp ge @t", parameters={"pk": PK, "t": later}
    )
    assert list(newer) == []
    chosen = ["PartitionKey", "RowKey", "Timestamp"]
    found = table.query_entities("Timestamp lt @t", parameters={"t": later}, select=chosen)
    assert all(e.metadata["timestamp"] is not None for e in found)
