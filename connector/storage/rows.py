"""Azure Table rows: keys, the service's limits, and the one optimistic read-modify-write.

Every read-modify-write is `get → compute → update(If-Match: etag)` or `create` (fails if the row
exists), retried from the read on a conflict, so concurrent instances cannot lose an update.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from connector.core.errors import ConnectorError

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

MAX_ATTEMPTS = 20

T = TypeVar("T")


class ConcurrencyError(ConnectorError):
    """Too many concurrent writers on one row; transient, the message will be redelivered."""

    retryable = True


def key(*parts: str) -> str:
    """A Table key from parts: `/ \\ # ?`, control characters and our separator are escaped."""
    return "|".join(quote(p, safe="-._~:@") for p in parts)


def unkey(text: str) -> list[str]:
    return [unquote(p) for p in text.split("|")]


# --- Azure Table limits -------------------------------------------------------------------------
# Source: Learn, "Understanding the Table service data model" (rest/api/storageservices): a
# PartitionKey or RowKey is a string of up to 1 KiB; strings are UTF-16, a string property holds
# up to 64 KiB (32K characters); all of an entity's data is at most 1 MiB; key fields must not
# contain / \ # ? or the control characters U+0000-U+001F and U+007F-U+009F. Azurite enforces the
# same (keys of at most 512 UTF-16 characters, TableHandler.validateKey).
KEY_LIMIT_BYTES = 1024
PROPERTY_LIMIT_BYTES = 64 * 1024
ENTITY_LIMIT_BYTES = 1024 * 1024
_FORBIDDEN_IN_KEY = re.compile(r"[\x00-\x1f\x7f-\x9f/\\#?]")


def utf16_size(text: str) -> int:
    """Bytes a string takes in the Table service (UTF-16; a surrogate pair counts twice)."""
    return len(text.encode("utf-16-le", "surrogatepass"))


def key_problem(value: str) -> str | None:
    """Why `value` cannot be a PartitionKey or RowKey, or None when it can."""
    if utf16_size(value) > KEY_LIMIT_BYTES:
        return f"a Table key of {utf16_size(value)} bytes (UTF-16) exceeds {KEY_LIMIT_BYTES}"
    if _FORBIDDEN_IN_KEY.search(value):
        return "a Table key must not contain / \\ # ? or control characters"
    return None


def property_problem(value: str) -> str | None:
    """Why `value` cannot be a string property, or None when it can."""
    if len(value) * 4 <= PROPERTY_LIMIT_BYTES:  # at most 4 bytes a character: fits, not encoded
        return None
    size = utf16_size(value)
    if size > PROPERTY_LIMIT_BYTES:
        return f"{size} bytes (UTF-16) exceed the Table property limit of {PROPERTY_LIMIT_BYTES}"
    return None


def entity_size(entity: Mapping[str, Any]) -> int:
    """The stored size of an entity, by the Azure Storage team's published formula ("Understanding
    Windows Azure Storage Billing", 2010): 4 + 2 x len(PartitionKey + RowKey) + for each property
    8 + 2 x len(name) + its value (a string 4 + 2 x len; a number or date 8; a bool 1)."""
    size = 4
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            size += utf16_size(str(value))
            continue
        size += 8 + utf16_size(name)
        if isinstance(value, str):
            size += 4 + utf16_size(value)
        elif isinstance(value, bool):
            size += 1
        else:
            size += 8
    return size


# A JSON text longer than one property holds is spread over several: `json.dumps` writes ASCII,
# one UTF-16 unit a character, so a part of this many characters always fits.
TEXT_PART_CHARS = PROPERTY_LIMIT_BYTES // 2 - 1024


def spread_text(name: str, text: str) -> dict[str, Any]:
    """`text` (ASCII) as properties `name`, `name_1`, ... and `name_parts`, their count. A merge
    may leave older parts behind: `gathered_text` reads only as many as `name_parts` says."""
    parts = [text[i : i + TEXT_PART_CHARS] for i in range(0, len(text), TEXT_PART_CHARS)]
    data: dict[str, Any] = {_part(name, i): part for i, part in enumerate(parts or [""])}
    data[f"{name}_parts"] = max(len(parts), 1)
    return data


def gathered_text(entity: Mapping[str, Any], name: str) -> str:
    """The text `spread_text` spread (a row written before it has `name` alone)."""
    count = int(entity.get(f"{name}_parts", 1))
    return "".join(entity[_part(name, i)] for i in range(count))


def _part(name: str, index: int) -> str:
    return name if index == 0 else f"{name}_{index}"


def entity_problems(entity: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(property, problem) for each part of `entity` the Table service would refuse."""
    problems = []
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            found = key_problem(str(value))
        else:
            found = property_problem(value) if isinstance(value, str) else None
        if found is not None:
            problems.append((name, found))
    size = entity_size(entity)
    if size > ENTITY_LIMIT_BYTES:
        problems.append(("entity", f"{size} bytes exceed the Table entity limit of 1 MiB"))
    return problems


Version = tuple[dict[str, Any], str]  # a row's properties and its ETag, as last read


def update_row(
    table: TableClient,
    partition: str,
    row: str,
    change: Callable[[dict[str, Any] | None], tuple[dict[str, Any] | None, T]],
) -> T:
    """Optimistic read-modify-write of one row. `change` returns (new data or None, result)."""
    result, _ = update_row_tagged(table, partition, row, change)
    return result


def update_row_tagged(
    table: TableClient,
    partition: str,
    row: str,
    change: Callable[[dict[str, Any] | None], tuple[dict[str, Any] | None, T]],
    *,
    absent: bool = False,
    known: Version | None = None,
) -> tuple[T, str | None]:
    """`update_row`, also returning the row's ETag as it stands after the call (None: no row),
    for a later write that must not overwrite a newer change. Two hints save the first read;
    they never decide anything: `absent`, the caller expects no row (the create is tried
    first); `known`, the row as a recent read found it (the write is tried with its ETag). A
    row found otherwise, or a change that writes nothing, is read and decided as usual."""
    first = _first_write(table, partition, row, change, absent=absent, known=known)
    if first is not None:
        return first
    for _ in range(MAX_ATTEMPTS):
        entity: dict[str, Any] | None
        try:
            found = table.get_entity(partition, row)
            entity, etag = dict(found), found.metadata["etag"]
        except ResourceNotFoundError:
            entity, etag = None, None
        data, result = change(fields_of(entity) if entity is not None else None)
        if data is None:
            return result, etag
        body = {"PartitionKey": partition, "RowKey": row, **data}
        try:
            if entity is None:
                written = table.create_entity(body)
            else:
                written = table.update_entity(
                    body,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError):
            continue  # someone else wrote first: read again and recompute
        return result, str(written.get("etag") or "") or None
    raise ConcurrencyError(f"row {partition}/{row} kept changing under us")


def _first_write(
    table: TableClient,
    partition: str,
    row: str,
    change: Callable[[dict[str, Any] | None], tuple[dict[str, Any] | None, T]],
    *,
    absent: bool,
    known: Version | None,
) -> tuple[T, str | None] | None:
    """The write a hint allows without reading first, or None when it does not apply."""
    if not absent and known is None:
        return None
    data, result = change(dict(known[0]) if known is not None else None)
    if data is None:
        return None  # "nothing to do" must be judged on the row as it is now
    body = {"PartitionKey": partition, "RowKey": row, **data}
    try:
        if known is None:
            written = table.create_entity(body)
        else:
            condition = MatchConditions.IfNotModified
            written = table.update_entity(body, etag=known[1], match_condition=condition)
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        return None
    return result, str(written.get("etag") or "") or None


def merge_if_unchanged(
    table: TableClient, partition: str, row: str, etag: str, data: Mapping[str, Any]
) -> bool:
    """Merge properties into a row only while it is as we last saw it (If-Match). False when it
    changed or vanished since: the newer writer owns what follows."""
    from azure.data.tables import UpdateMode

    body = {"PartitionKey": partition, "RowKey": row, **data}
    try:
        table.update_entity(
            body, mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


def query_range(table: TableClient, partition: str, low: str, high: str) -> Iterator[Any]:
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
    return iter(table.query_entities(query, parameters={"pk": partition, "low": low, "high": high}))


def fields_of(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")}


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def now() -> str:
    return iso(datetime.now(UTC))


def connect(
    *,
    connection_string: str | None = None,
    account_url: str | None = None,
    credential: Any = None,
) -> TableServiceClient:
    from azure.data.tables import TableServiceClient

    if connection_string:
        return TableServiceClient.from_connection_string(connection_string)
    if account_url:
        return TableServiceClient(endpoint=account_url, credential=credential)
    raise ValueError("table storage needs a connection string or an account URL")
