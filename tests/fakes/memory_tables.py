"""An in-memory twin of the part of azure-data-tables (12.x) the connector uses, with the service's
semantics, so that the core and the stores can be tested in milliseconds without Azurite.

It is at least as strict as the real thing: `tests/integration/test_memory_tables.py` runs the same
assertions against Azurite and this twin. What it does not model it refuses (`NotImplementedError`)
instead of guessing: OData beyond `eq ne gt ge lt le`, `and`, `or` and parentheses over properties
(and the system property `Timestamp`) and string, integer, boolean and datetime literals;
Edm.DateTime, binary and GUID values; transactions other than deletes.

Sources for the semantics: the SDK (`azure/data/tables/_table_client.py`, `_serialize.py`) and
Learn, "Querying tables and entities", "Update Entity", "Merge Entity", "Insert Entity", "Delete
Entity", "Performing entity group transactions" (rest/api/storageservices); where they are silent,
Azurite as measured by the contract test.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableEntity, UpdateMode

from connector.storage.rows import (
    ENTITY_LIMIT_BYTES,
    entity_size,
    key_problem,
    property_problem,
)
from tests.fakes.memory_filters import Predicate, parse_filter, substitute
from tests.fakes.memory_transactions import apply_deletes, transaction_deletes

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient

# Learn, "Understanding the Table service data model": 3-63 alphanumeric characters, not starting
# with a digit.
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
_INT32 = range(-(2**31), 2**31)  # the SDK's `_to_entity_int32` refuses other ints


def _error(kind: type[HttpResponseError], code: str, message: str) -> HttpResponseError:
    """The SDK's exception type with the service's error code, as `_process_table_error` raises."""
    error = kind(message=f"{message}\nErrorCode:{code}")
    error.error_code = code  # type: ignore[attr-defined]
    return error


@dataclass
class _Row:
    properties: dict[str, Any]
    etag: str
    timestamp: datetime


class MemoryTableService:
    """`TableServiceClient`: the tables of one storage account, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tables: dict[str, dict[tuple[str, str], _Row]] = {}
        self._etags = itertools.count(1)

    def create_table_if_not_exists(self, table_name: str) -> MemoryTable:
        table = self.get_table_client(table_name)
        with contextlib.suppress(ResourceExistsError):
            table.create_table()
        return table

    def get_table_client(self, table_name: str) -> MemoryTable:
        return MemoryTable(self, table_name)

    def as_sdk(self) -> TableServiceClient:
        """This twin typed as the SDK client it stands in for (`TableStore(service.as_sdk())`): it
        models the calls the connector makes, on Azurite too in test_memory_tables, no others."""
        return cast("TableServiceClient", self)

    def list_table_names(self) -> list[str]:
        with self._lock:
            return sorted(self._tables)

    # --- used by MemoryTable, under the lock ----------------------------------------------------

    def _create(self, name: str) -> None:
        if not _TABLE_NAME.fullmatch(name):
            raise _error(HttpResponseError, "InvalidResourceName", f"bad table name {name!r}")
        # Table names are case-insensitive in the service.
        if any(existing.lower() == name.lower() for existing in self._tables):
            raise _error(ResourceExistsError, "TableAlreadyExists", f"table {name} exists")
        self._tables[name] = {}

    def _rows(self, name: str) -> dict[tuple[str, str], _Row]:
        for existing, rows in self._tables.items():
            if existing.lower() == name.lower():
                return rows
        raise _error(ResourceNotFoundError, "TableNotFound", f"table {name} does not exist")

    def _stamp(self) -> tuple[str, datetime]:
        moment = datetime.now(UTC)
        return f"W/\"datetime'{moment.isoformat()}'-{next(self._etags)}\"", moment


class MemoryTable:
    """`TableClient` for one table of a `MemoryTableService`."""

    def __init__(self, service: MemoryTableService, table_name: str) -> None:
        self._service = service
        self.table_name = table_name

    def create_table(self) -> dict[str, str]:
        with self._service._lock:
            self._service._create(self.table_name)
        return {"name": self.table_name}

    def get_entity(
        self, partition_key: str, row_key: str, *, select: list[str] | None = None
    ) -> TableEntity:
        with self._service._lock:
            row = self._service._rows(self.table_name).get((partition_key, row_key))
            if row is None:
                raise _error(ResourceNotFoundError, "ResourceNotFound", "entity not found")
            return _entity(row, select)

    def create_entity(self, entity: Mapping[str, Any]) -> dict[str, Any]:
        partition, row_key, properties = _split(entity)
        with self._service._lock:
            rows = self._service._rows(self.table_name)
            if (partition, row_key) in rows:
                raise _error(ResourceExistsError, "EntityAlreadyExists", "entity exists")
            return self._write(rows, partition, row_key, properties)

    def update_entity(
        self,
        entity: Mapping[str, Any],
        mode: UpdateMode = UpdateMode.MERGE,
        *,
        etag: str | None = None,
        match_condition: MatchConditions | None = None,
    ) -> dict[str, Any]:
        if match_condition and not etag and isinstance(entity, TableEntity):
            etag = entity.metadata.get("etag")
        _check_condition(etag, match_condition or MatchConditions.Unconditionally)
        partition, row_key, properties = _split(entity)
        with self._service._lock:
            rows = self._service._rows(self.table_name)
            current = rows.get((partition, row_key))
            if current is None:  # `If-Match` (`*` or an ETag) never creates
                raise _error(ResourceNotFoundError, "ResourceNotFound", "entity not found")
            if etag is not None and etag != current.etag:
                raise _error(ResourceModifiedError, "UpdateConditionNotSatisfied", "etag differs")
            if mode == UpdateMode.MERGE:
                properties = {**current.properties, **properties}
            return self._write(rows, partition, row_key, properties)

    def upsert_entity(
        self, entity: Mapping[str, Any], mode: UpdateMode = UpdateMode.MERGE
    ) -> dict[str, Any]:
        partition, row_key, properties = _split(entity)
        with self._service._lock:
            rows = self._service._rows(self.table_name)
            current = rows.get((partition, row_key))
            if current is not None and mode == UpdateMode.MERGE:
                properties = {**current.properties, **properties}
            return self._write(rows, partition, row_key, properties)

    def delete_entity(self, partition_key: str, row_key: str) -> None:
        """Unconditional; a missing entity is no error (the SDK swallows the 404)."""
        with self._service._lock:
            self._service._rows(self.table_name).pop((partition_key, row_key), None)

    def submit_transaction(self, operations: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """Deletes only, all or nothing (`tests.fakes.memory_transactions`)."""
        deletes = transaction_deletes(operations)
        with self._service._lock:
            return apply_deletes(self._service._rows(self.table_name), deletes)

    def query_entities(
        self,
        query_filter: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        select: list[str] | None = None,
    ) -> Iterator[TableEntity]:
        # Parsed before any row is read, as the service refuses a bad filter with no results.
        matches = parse_filter(substitute(query_filter, parameters))
        return self._scan(matches, select)

    def list_entities(self, *, select: list[str] | None = None) -> Iterator[TableEntity]:
        return self._scan(lambda _properties: True, select)

    def _scan(self, matches: Predicate, select: list[str] | None) -> Iterator[TableEntity]:
        """A snapshot in the service's order (PartitionKey, then RowKey)."""
        with self._service._lock:
            rows = self._service._rows(self.table_name)
            # A filter sees the properties and the server-set `Timestamp`.
            seen = {k: {**r.properties, "Timestamp": r.timestamp} for k, r in rows.items()}
            found = [_entity(rows[k], select) for k in sorted(rows) if matches(seen[k])]
        return iter(found)

    def _write(
        self,
        rows: dict[tuple[str, str], _Row],
        partition: str,
        row_key: str,
        properties: dict[str, Any],
    ) -> dict[str, Any]:
        stored = {"PartitionKey": partition, "RowKey": row_key, **properties}
        _check_size(stored)
        etag, moment = self._service._stamp()
        rows[partition, row_key] = _Row(stored, etag, moment)
        return {"etag": etag, "date": moment}


# --- entities -----------------------------------------------------------------------------------


def _check_condition(etag: str | None, condition: MatchConditions) -> None:
    """The SDK's own argument checks (`_serialize._get_match_condition`)."""
    if condition == MatchConditions.IfNotModified and not etag:
        raise ValueError("IfNotModified must be specified with etag.")
    if condition == MatchConditions.Unconditionally and etag:
        raise ValueError("Etag is not supported for an Unconditional operation.")
    if condition not in (MatchConditions.IfNotModified, MatchConditions.Unconditionally):
        raise ValueError(f"Unsupported match condition: {condition}")


def _split(entity: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    partition, row_key = entity["PartitionKey"], entity["RowKey"]
    for value in (partition, row_key):
        problem = key_problem(value)
        if problem is not None:
            raise _error(HttpResponseError, "InvalidInput", problem)
    properties = {}
    for name, value in entity.items():
        if name not in ("PartitionKey", "RowKey") and value is not None:  # the SDK drops None
            properties[name] = _stored_value(name, value)
    return partition, row_key, properties


_PROPERTY_LIMIT = 252


def _check_size(entity: Mapping[str, Any]) -> None:
    """Learn, "Table service error codes": PropertyValueTooLarge (a string over 64 KiB, which
    Azurite enforces too) and EntityTooLarge (over 1 MiB, which Azurite does not), both 400."""
    for name, value in entity.items():
        if isinstance(value, str) and name not in ("PartitionKey", "RowKey"):
            problem = property_problem(value)
            if problem is not None:
                raise _error(HttpResponseError, "PropertyValueTooLarge", f"{name}: {problem}")
    if entity_size(entity) > ENTITY_LIMIT_BYTES:
        raise _error(HttpResponseError, "EntityTooLarge", "the entity exceeds 1 MiB")
    # "Understanding the Table service data model": up to 255 properties, including the three
    # system properties (PartitionKey, RowKey, Timestamp); error code TooManyProperties.
    if len([n for n in entity if n not in ("PartitionKey", "RowKey")]) > _PROPERTY_LIMIT:
        raise _error(HttpResponseError, "TooManyProperties", "more than 252 properties")


def _stored_value(name: str, value: Any) -> Any:
    """A property as the service stores and returns it (SDK `_add_entity_properties`)."""
    if isinstance(value, Enum) and isinstance(value, str):
        return value.value
    if isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        if value not in _INT32:
            raise TypeError(f"{name}: {value} is too large to be cast to type Edm.Int32")
        return value
    raise NotImplementedError(f"{name}: the memory twin stores no {type(value).__name__} values")


def _entity(row: _Row, select: list[str] | None) -> TableEntity:
    properties = row.properties
    if select is not None:
        properties = {k: v for k, v in properties.items() if k in select}
    entity = TableEntity(copy.deepcopy(properties))
    # As the SDK's `_convert_to_entity` sets it; no Timestamp unless selected (as Azurite).
    timestamp = row.timestamp if select is None or "Timestamp" in select else None
    entity._metadata = {"etag": row.etag, "timestamp": timestamp}
    return entity
