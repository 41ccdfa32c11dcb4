"""Entity group transactions of the memory twin (`tests.fakes.memory_tables`): deletes only.

Source: Learn, "Performing entity group transactions" (rest/api/storageservices): every entity in
one partition, each entity once, at most 100 entities, all or nothing. Where Learn is silent, as
Azurite answers (measured): the first failing operation rejects the transaction with a
`TableTransactionError` whose message starts with its index (`1:The specified resource does not
exist.`); a delete of a missing entity is `ResourceNotFound`, a stale ETag
`UpdateConditionNotSatisfied`, a repeated entity `InvalidDuplicateRow`; the SDK itself refuses
mixed partitions (`ValueError`) and answers an empty transaction with `[]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Protocol, TypeVar

from azure.core import MatchConditions
from azure.data.tables import TableEntity, TableTransactionError

TRANSACTION_LIMIT = 100

Delete = tuple[str, str, str | None]  # partition, row, ETag to match (None: unconditional)


class StoredRow(Protocol):
    etag: str


R = TypeVar("R", bound=StoredRow)


def transaction_deletes(operations: Iterable[tuple[Any, ...]]) -> list[Delete]:
    """The deletes of a transaction, checked as the SDK checks them before sending."""
    deletes = [_delete(operation) for operation in operations]
    if len({partition for partition, _, _ in deletes}) > 1:
        raise ValueError("Partition Keys in the batch must all be the same.")
    return deletes


def apply_deletes(
    rows: MutableMapping[tuple[str, str], R], deletes: list[Delete]
) -> list[dict[str, Any]]:
    """Check every delete, then apply them all (the caller holds the table's lock)."""
    if len(deletes) > TRANSACTION_LIMIT:
        raise _failed(0, "InvalidInput", f"more than {TRANSACTION_LIMIT} operations")
    seen: set[str] = set()
    for index, (partition, row_key, etag) in enumerate(deletes):
        if row_key in seen:
            raise _failed(index, "InvalidDuplicateRow", "an entity can appear only once")
        seen.add(row_key)
        current = rows.get((partition, row_key))
        if current is None:
            raise _failed(index, "ResourceNotFound", "The specified resource does not exist.")
        if etag is not None and etag != current.etag:
            raise _failed(index, "UpdateConditionNotSatisfied", "the etag differs")
    for partition, row_key, _ in deletes:
        del rows[partition, row_key]
    return [{} for _ in deletes]


def _delete(operation: tuple[Any, ...]) -> Delete:
    kind, entity = str(operation[0]).lower(), operation[1]
    options: Mapping[str, Any] = operation[2] if len(operation) > 2 else {}
    if kind != "delete":
        raise NotImplementedError(f"the memory twin's transactions only delete, not {kind!r}")
    etag, condition = options.get("etag"), options.get("match_condition")
    if condition == MatchConditions.IfNotModified and not etag and isinstance(entity, TableEntity):
        etag = entity.metadata.get("etag")
    if condition == MatchConditions.IfNotModified and not etag:
        raise ValueError("IfNotModified must be specified with etag.")  # `_get_match_condition`
    if condition in (None, MatchConditions.Unconditionally):
        if etag:
            raise ValueError("Etag is not supported for an Unconditional operation.")
        etag = None
    return entity["PartitionKey"], entity["RowKey"], etag


def _failed(index: int, code: str, message: str) -> TableTransactionError:
    error = TableTransactionError(message=f"{index}:{message}\nErrorCode:{code}")
    error.error_code = code  # type: ignore[attr-defined]
    return error
