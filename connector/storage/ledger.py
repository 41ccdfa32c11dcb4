"""The status ledger: what each status sink posted, so that nothing is read back from the
service and nothing is posted twice.

One row per (subject, sink, context) in the `<p>deployments` table: PartitionKey = the subject (a
commit, or `pr|<repository>|<id>` for a pull request), RowKey = `status|<sink>|<context>`. A claim
is a lock on posting that context: while one instance posts, another with a different state
marks the row dirty instead of posting, and the holder recomputes and posts again before it lets
go. So posts to one context never overlap, and the last one always follows the newest state (an
older roll-up never wins).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from azure.core.exceptions import ResourceNotFoundError

from connector.core.gate_transitions import CLAIM_TIMEOUT
from connector.storage.rows import (
    fields_of,
    key,
    merge_if_unchanged,
    now,
    query_range,
    unkey,
    update_row,
    update_row_tagged,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient

# A status claimed but never confirmed (the writer crashed) may be claimed again after
# CLAIM_TIMEOUT, the one claim timeout (a gate's completion claim has the same).
# The partition of the refused statuses' index (one small partition: the sweep reads it whole).
REFUSED = "refused-statuses"


@dataclass(frozen=True)
class StatusRecord:
    state: str
    description: str
    claimed_at: datetime
    confirmed: bool
    trial: bool = False  # what trial mode would have posted; nothing was sent


class StatusLedger(Protocol):
    def claim_status(
        self, subject: str, context: str, state: str, description: str, *, new: bool = False
    ) -> str | None: ...
    def finish_status(self, subject: str, context: str, version: str) -> str | None: ...
    def hold_status(
        self, subject: str, context: str, state: str, description: str
    ) -> str | None: ...
    def release_status(
        self, subject: str, context: str, *, trial: bool = False, refused: bool = False
    ) -> None: ...


def pull_request_subject(repository: str, pull_request_id: int) -> str:
    return key("pr", repository.lower(), str(pull_request_id))


class StatusLedgerTable:
    """The ledger of one sink (its name is part of every row key)."""

    def __init__(self, table: Callable[[], TableClient], sink: str) -> None:
        self._table = table
        self._sink = sink

    def _key(self, context: str) -> str:
        return key("status", self._sink, context)

    # One row per (commit, context). A claim is a lock on posting that context: while one
    # instance posts, another with a different roll-up marks the row dirty instead of posting,
    # and the holder recomputes and posts again before it lets go. So posts to one context never
    # overlap, and the last one always follows the newest state (an older roll-up never wins).

    def claim_status(
        self, subject: str, context: str, state: str, description: str, *, new: bool = False
    ) -> str | None:
        """Claim the right to post (state, description) on a context; the claim's version, or
        None when it is already posted, or while another instance posts (which then posts again
        for us if it differs). `new`: the context has likely never been posted (saves a read)."""

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
            if entity is not None and not entity.get("trial") and not entity.get("refused"):
                same = (entity["state"], entity["description"]) == (state, description)
                age = datetime.now(UTC) - datetime.fromisoformat(entity["claimed_at"])
                held = not entity["confirmed"] and age < CLAIM_TIMEOUT
                if held:
                    return (None if same else {**fields_of(entity), "dirty": True}), False
                if same and entity["confirmed"]:
                    return None, False
            claim = {"state": state, "description": description, "claimed_at": now()}
            flags = {"confirmed": False, "dirty": False, "trial": False, "refused": False}
            return {**claim, **flags}, True

        table, row = self._table(), self._key(context)
        claimed, version = update_row_tagged(table, subject, row, change, absent=new)
        return version if claimed else None

    def finish_status(self, subject: str, context: str, version: str) -> str | None:
        """Let go of a claim after posting: None when done; the claim's new version when another
        instance asked for a newer state meanwhile (the holder recomputes and posts again)."""
        row = self._key(context)
        if merge_if_unchanged(self._table(), subject, row, version, {"confirmed": True}):
            return None  # the common case: nobody touched the claim, one write

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
            if entity is None:
                return None, False
            if entity.get("dirty"):
                return {**fields_of(entity), "dirty": False, "claimed_at": now()}, True
            return {**fields_of(entity), "confirmed": True}, False

        again, new_version = update_row_tagged(self._table(), subject, row, change)
        return new_version if again else None

    def hold_status(self, subject: str, context: str, state: str, description: str) -> str | None:
        """While holding the claim: the state about to be posted next; the claim's version."""

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, None]:
            data = fields_of(entity) if entity is not None else {"confirmed": False, "dirty": False}
            return {**data, "state": state, "description": description, "claimed_at": now()}, None

        _, version = update_row_tagged(self._table(), subject, self._key(context), change)
        return version

    def release_status(
        self, subject: str, context: str, *, trial: bool = False, refused: bool = False
    ) -> None:
        """Give up a claim whose post failed, so that the redelivery posts again; in trial mode,
        keep what would have been posted (for the views) without counting it as posted. A
        refused post (no permission yet) is kept as refused and listed for the sweep, which
        posts it again (`refused_statuses`) without waiting for the object to change."""
        if not (trial or refused):
            with contextlib.suppress(ResourceNotFoundError):
                self._table().delete_entity(subject, self._key(context))
            return
        flags = {"confirmed": False, "dirty": False, "trial": trial, "refused": refused}
        kept: list[dict[str, Any]] = []

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, None]:
            if entity is None:
                return None, None
            kept.append(entity)
            return {**fields_of(entity), **flags}, None

        update_row(self._table(), subject, self._key(context), change)
        if refused and kept:
            row = {"sink": self._sink, "subject": subject, "context": context}
            entity = {"state": kept[0]["state"], "description": kept[0]["description"], **row}
            self._table().upsert_entity(
                {"PartitionKey": REFUSED, "RowKey": key(self._sink, subject, context), **entity}
            )


def status_records(table: TableClient, subject: str) -> dict[tuple[str, str], StatusRecord]:
    """Every status recorded for a subject, by (sink, context)."""
    records = {}
    for entity in query_range(table, subject, "status|", "status}"):
        parts = unkey(entity["RowKey"])
        sink, context = (parts[1], parts[2]) if len(parts) == 3 else ("", parts[1])
        records[sink, context] = StatusRecord(
            entity["state"],
            entity["description"],
            datetime.fromisoformat(entity["claimed_at"]),
            bool(entity["confirmed"]),
            bool(entity.get("trial", False)),
        )
    return records


@dataclass(frozen=True)
class RefusedStatus:
    sink: str
    subject: str
    context: str
    state: str
    description: str
    row_key: str


def refused_statuses(table: TableClient) -> list[RefusedStatus]:
    """The statuses Azure DevOps refused (listed by `release_status(refused=True)`)."""
    rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": REFUSED})
    return [
        RefusedStatus(
            r["sink"], r["subject"], r["context"], r["state"], r["description"], r["RowKey"]
        )
        for r in rows
    ]


def forget_refused(table: TableClient, refused: RefusedStatus) -> None:
    with contextlib.suppress(ResourceNotFoundError):
        table.delete_entity(REFUSED, refused.row_key)
