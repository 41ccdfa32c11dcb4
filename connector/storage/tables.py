"""Deployment state in Azure Table Storage, written with optimistic concurrency (ETags).

Tables (prefix from `STATE_TABLE_PREFIX`):
- `<p>deployments`: PartitionKey = commit; RowKey = `obj|<env>|<cluster>|<kind>|<ns>|<name>` for an
  object's state on that commit, `status|<context name>` for the last commit status we wrote.
- `<p>objects`: PartitionKey = `<env>|<cluster>`; RowKey = `<kind>|<ns>|<name>`: the object's
  current and previous commit (learns which objects a cluster has, and which are behind).
- `<p>processed`: one row per processed message id (duplicate deliveries end here).

Every read-modify-write is `get → compute → update(If-Match: etag)` or `create` (fails if the row
exists), retried from the read on a conflict, so concurrent instances cannot lose an update.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from connector.core.tracking import (
    ObjectRef,
    ObjectState,
    Observation,
    Phase,
    Verdict,
    transition,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

logger = logging.getLogger(__name__)

NO_COMMIT = "-"
MAX_ATTEMPTS = 20
# A status claimed but never confirmed (the writer crashed) may be claimed again after this.
CLAIM_TIMEOUT = timedelta(minutes=2)

T = TypeVar("T")


class ConcurrencyError(Exception):
    """Too many concurrent writers on one row; transient, the message will be redelivered."""


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


def observation_keys(env: str, cluster: str, obj: ObjectRef) -> dict[str, str]:
    """Every Table key that processing an event of `obj` builds: its state row on a commit
    (`record`), its pointer (`_point`), and the status ledger rows of its object and environment
    statuses (contexts as in `connector.statuses`). Ingest checks them before accepting."""
    return {
        "object row": key("obj", env, cluster, obj.kind, obj.namespace, obj.name),
        "pointer partition": key(env, cluster),
        "pointer row": key(obj.kind, obj.namespace, obj.name),
        "object status row": key("status", f"{cluster}/{obj}"),
        "environment status row": key("status", f"env/{env}"),
    }


@dataclass(frozen=True)
class Recorded:
    verdict: Verdict
    state: ObjectState | None


@dataclass(frozen=True)
class ObjectPointer:
    """Where an object of a cluster was last seen: its current and previous commit."""

    obj: ObjectRef
    commit: str
    previous_commit: str | None
    time: datetime


@dataclass(frozen=True)
class StatusRecord:
    state: str
    description: str
    claimed_at: datetime
    confirmed: bool
    trial: bool = False  # what trial mode would have posted; nothing was sent


class DeploymentStore(Protocol):
    def is_processed(self, message_id: str) -> bool: ...
    def mark_processed(self, message_id: str) -> None: ...
    def record(self, obs: Observation) -> Recorded: ...
    def commit_states(
        self, commit: str, env: str | None = None
    ) -> dict[tuple[str, str], dict[ObjectRef, ObjectState]]: ...
    def cluster_objects(self, env: str) -> dict[str, dict[ObjectRef, ObjectPointer]]: ...


class StatusLedger(Protocol):
    def claim_status(self, commit: str, context: str, state: str, description: str) -> bool: ...
    def finish_status(self, commit: str, context: str) -> bool: ...
    def hold_status(self, commit: str, context: str, state: str, description: str) -> None: ...
    def release_status(self, commit: str, context: str, *, trial: bool = False) -> None: ...


class TableStore:
    """Both protocols on one storage account. Tables are created on first use."""

    def __init__(self, service: TableServiceClient, prefix: str = "gitops") -> None:
        self._service = service
        self._prefix = prefix
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    # --- tables -------------------------------------------------------------------------------

    def table(self, name: str) -> TableClient:
        with self._lock:
            client = self._tables.get(name)
            if client is None:
                client = self._service.create_table_if_not_exists(self._prefix + name)
                self._tables[name] = client
            return client

    # --- duplicates ---------------------------------------------------------------------------

    def is_processed(self, message_id: str) -> bool:
        try:
            self.table("processed").get_entity(*_processed_key(message_id), select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True

    def mark_processed(self, message_id: str) -> None:
        partition, row = _processed_key(message_id)
        entity = {"PartitionKey": partition, "RowKey": row, "at": _now()}
        # Exists already: another delivery finished first, with the same outcome.
        with contextlib.suppress(ResourceExistsError):
            self.table("processed").create_entity(entity)

    # --- object state -------------------------------------------------------------------------

    def record(self, obs: Observation) -> Recorded:
        row = key("obj", obs.env, obs.cluster, obs.obj.kind, obs.obj.namespace, obs.obj.name)
        result: Recorded = update_row(
            self.table("deployments"),
            obs.commit or NO_COMMIT,
            row,
            lambda entity: _apply(entity, obs),
        )
        if obs.commit and not obs.is_source and result.verdict != Verdict.STALE:
            self._point(obs, obs.commit)
        return result

    def _point(self, obs: Observation, commit: str) -> None:
        """Move the object's pointer to this commit (if it is newer than the one recorded)."""

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, None]:
            if entity is not None and datetime.fromisoformat(entity["time"]) > obs.time:
                return None, None
            if entity is not None and entity["commit"] == commit:
                return None, None
            previous = entity["commit"] if entity is not None else ""
            return {"commit": commit, "previous": previous, "time": _iso(obs.time)}, None

        update_row(
            self.table("objects"),
            key(obs.env, obs.cluster),
            key(obs.obj.kind, obs.obj.namespace, obs.obj.name),
            change,
        )

    def commit_states(
        self, commit: str, env: str | None = None
    ) -> dict[tuple[str, str], dict[ObjectRef, ObjectState]]:
        """Object states on a commit, grouped by (env, cluster)."""
        low, high = (key("obj", env) + "|", key("obj", env) + "}") if env else ("obj|", "obj}")
        result: dict[tuple[str, str], dict[ObjectRef, ObjectState]] = {}
        for entity in _query_range(self.table("deployments"), commit, low, high):
            _, e, cluster, kind, ns, name = unkey(entity["RowKey"])
            result.setdefault((e, cluster), {})[ObjectRef(kind, ns, name)] = _state(entity)
        return result

    def cluster_objects(self, env: str) -> dict[str, dict[ObjectRef, ObjectPointer]]:
        """Every object seen with a commit in each cluster of an environment."""
        low, high = key(env) + "|", key(env) + "}"
        table = self.table("objects")
        query = "PartitionKey ge @low and PartitionKey lt @high"
        result: dict[str, dict[ObjectRef, ObjectPointer]] = {}
        for entity in table.query_entities(query, parameters={"low": low, "high": high}):
            _, cluster = unkey(entity["PartitionKey"])
            obj = ObjectRef(*unkey(entity["RowKey"]))
            result.setdefault(cluster, {})[obj] = ObjectPointer(
                obj,
                entity["commit"],
                entity["previous"] or None,
                datetime.fromisoformat(entity["time"]),
            )
        return result

    # --- status ledger ------------------------------------------------------------------------

    # One row per (commit, context). A claim is a lock on posting that context: while one
    # instance posts, another with a different roll-up marks the row dirty instead of posting,
    # and the holder recomputes and posts again before it lets go. So posts to one context never
    # overlap, and the last one always follows the newest state (an older roll-up never wins).

    def claim_status(self, commit: str, context: str, state: str, description: str) -> bool:
        """Claim the right to post (state, description) on a context. False when it is already
        posted, or while another instance posts (which then posts again for us if it differs)."""

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
            if entity is not None and not entity.get("trial"):
                same = (entity["state"], entity["description"]) == (state, description)
                age = datetime.now(UTC) - datetime.fromisoformat(entity["claimed_at"])
                held = not entity["confirmed"] and age < CLAIM_TIMEOUT
                if held:
                    return (None if same else {**_data(entity), "dirty": True}), False
                if same and entity["confirmed"]:
                    return None, False
            claim = {"state": state, "description": description, "claimed_at": _now()}
            return {**claim, "confirmed": False, "dirty": False, "trial": False}, True

        claimed: bool = update_row(self._ledger(), commit, key("status", context), change)
        return claimed

    def finish_status(self, commit: str, context: str) -> bool:
        """Let go of a claim after posting. True (still held) when another instance asked for a
        newer state meanwhile: the holder recomputes and posts again."""

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
            if entity is None:
                return None, False
            if entity.get("dirty"):
                return {**_data(entity), "dirty": False, "claimed_at": _now()}, True
            return {**_data(entity), "confirmed": True}, False

        again: bool = update_row(self._ledger(), commit, key("status", context), change)
        return again

    def hold_status(self, commit: str, context: str, state: str, description: str) -> None:
        """While holding the claim: the state about to be posted next."""

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, None]:
            data = _data(entity) if entity is not None else {"confirmed": False, "dirty": False}
            return {**data, "state": state, "description": description, "claimed_at": _now()}, None

        update_row(self._ledger(), commit, key("status", context), change)

    def release_status(self, commit: str, context: str, *, trial: bool = False) -> None:
        """Give up a claim whose post failed, so that the redelivery posts again; in trial mode,
        keep what would have been posted (for the views) without counting it as posted."""
        if not trial:
            with contextlib.suppress(ResourceNotFoundError):
                self._ledger().delete_entity(commit, key("status", context))
            return

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, None]:
            if entity is None:
                return None, None
            return {**_data(entity), "confirmed": False, "dirty": False, "trial": True}, None

        update_row(self._ledger(), commit, key("status", context), change)

    def _ledger(self) -> TableClient:
        return self.table("deployments")

    def status_records(self, commit: str) -> dict[str, StatusRecord]:
        """The commit statuses we recorded for a commit, by context name."""
        records = {}
        for entity in _query_range(self.table("deployments"), commit, "status|", "status}"):
            records[unkey(entity["RowKey"])[1]] = StatusRecord(
                entity["state"],
                entity["description"],
                datetime.fromisoformat(entity["claimed_at"]),
                bool(entity["confirmed"]),
                bool(entity.get("trial", False)),
            )
        return records


# --- helpers ------------------------------------------------------------------------------------


def _apply(
    entity: dict[str, Any] | None, obs: Observation
) -> tuple[dict[str, Any] | None, Recorded]:
    current = _state(entity) if entity is not None else None
    verdict, new = transition(current, obs)
    if new is None or new == current:
        return None, Recorded(verdict, new)
    return _row(new), Recorded(verdict, new)


def update_row(
    table: TableClient,
    partition: str,
    row: str,
    change: Callable[[dict[str, Any] | None], tuple[dict[str, Any] | None, T]],
) -> T:
    """Optimistic read-modify-write of one row. `change` returns (new data or None, result)."""
    for _ in range(MAX_ATTEMPTS):
        entity: dict[str, Any] | None
        try:
            found = table.get_entity(partition, row)
            entity, etag = dict(found), found.metadata["etag"]
        except ResourceNotFoundError:
            entity, etag = None, None
        data, result = change(_data(entity) if entity is not None else None)
        if data is None:
            return result
        body = {"PartitionKey": partition, "RowKey": row, **data}
        try:
            if entity is None:
                table.create_entity(body)
            else:
                table.update_entity(
                    body,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError):
            continue  # someone else wrote first: read again and recompute
        return result
    raise ConcurrencyError(f"row {partition}/{row} kept changing under us")


def _processed_key(message_id: str) -> tuple[str, str]:
    row = key(message_id)
    return row[:2], row


def _query_range(table: TableClient, partition: str, low: str, high: str) -> Iterator[Any]:
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
    return iter(table.query_entities(query, parameters={"pk": partition, "low": low, "high": high}))


def _data(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")}


def _state(entity: dict[str, Any]) -> ObjectState:
    return ObjectState(
        phase=Phase(entity["phase"]),
        reason=entity["reason"],
        summary=entity["summary"],
        time=datetime.fromisoformat(entity["time"]),
        first_seen=datetime.fromisoformat(entity["first_seen"]),
        failed_since=_moment(entity.get("failed_since")),
        failure_noticed=_moment(entity.get("failure_noticed")),
    )


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _row(state: ObjectState) -> dict[str, Any]:
    return {
        "phase": state.phase.value,
        "reason": state.reason,
        "summary": state.summary,
        "time": _iso(state.time),
        "first_seen": _iso(state.first_seen),
        "failed_since": _iso(state.failed_since) if state.failed_since else "",
        "failure_noticed": _iso(state.failure_noticed) if state.failure_noticed else "",
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _now() -> str:
    return _iso(datetime.now(UTC))


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
