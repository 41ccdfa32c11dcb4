"""Deployment state in Azure Table Storage, written with optimistic concurrency (ETags).

Tables (prefix from `STATE_TABLE_PREFIX`):
- `<p>deployments`: PartitionKey = commit; RowKey = `obj|<env>|<cluster>|<kind>|<ns>|<name>` for an
  object's state on that commit (and the status ledger's rows: `connector.storage.ledger`).
- `<p>objects`: PartitionKey = `<env>|<cluster>`; RowKey = `<kind>|<ns>|<name>`: the object's
  current and previous commit (learns which objects a cluster has, and which are behind).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from connector.core.state import ClusterResults, ClusterView, ObjectPointer, Recorded
from connector.core.tracking import (
    ClusterResult,
    ObjectRef,
    ObjectState,
    Observation,
    Phase,
    Verdict,
    believable,
    transition,
)
from connector.storage import tally_rows
from connector.storage.board import BoardTable
from connector.storage.clusters import DEFAULT_WINDOW_DAYS, ClusterRoster
from connector.storage.ledger import StatusLedgerTable, StatusRecord, status_records
from connector.storage.marks import released
from connector.storage.rows import (
    iso,
    key,
    merge_if_unchanged,
    query_range,
    unkey,
    update_row,
    update_row_tagged,
)
from connector.storage.tally_rows import Tallied

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

logger = logging.getLogger(__name__)

NO_COMMIT = "-"
# Status rows written before sinks had names count as this sink's: the Azure DevOps commit
# statuses' (`connector.outputs.sinks.COMMIT_STATUS_SINK`; tests/integration/test_plugins.py
# keeps the two equal). Each output names its own sink.
DEFAULT_SINK = "azdo"
MAX_SETTLE_ATTEMPTS = 5  # each retry follows a door mark landing between record and settle


class TableStore:
    """The deployment state (`DeploymentStore`) on one storage account; tables are created on
    first use and shared with the other stores of the account (gates, ledgers)."""

    def __init__(
        self,
        service: TableServiceClient,
        prefix: str = "gitops",
        cluster_window_days: float = DEFAULT_WINDOW_DAYS,
    ) -> None:
        self._service = service
        self._prefix = prefix
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()
        self.clusters = ClusterRoster(
            lambda: self.table("objects"),
            self._newest_pointers,
            timedelta(days=cluster_window_days),
        )

    # --- tables -------------------------------------------------------------------------------

    def table(self, name: str) -> TableClient:
        with self._lock:
            client = self._tables.get(name)
            if client is None:
                client = self._service.create_table_if_not_exists(self._prefix + name)
                self._tables[name] = client
            return client

    def board(self) -> BoardTable:
        """The on-call index's board (`connector.storage.board`), on this account's tables."""
        return BoardTable(lambda: self.table("board"))

    # --- object state -------------------------------------------------------------------------
    # One point read decides the steady state: a re-send of a state every output has handled
    # (`settled`) writes nothing. A change is written unsettled, its outputs run, and `settle`
    # marks it done only if the row is still that change (If-Match), so a redelivery after a
    # crash finishes what was not done and a newer change is never marked done by an older one.

    def record(self, obs: Observation) -> Recorded:
        table = self.table("deployments")
        partition, row = obs.commit or NO_COMMIT, _state_key(obs)
        result, version = update_row_tagged(table, partition, row, lambda e: _apply(e, obs))
        recorded = replace(result, version=version)
        live = recorded.verdict in (Verdict.CHANGED, Verdict.UNCHANGED)
        if obs.commit and not obs.is_source and live:
            self.clusters.note(obs.env, obs.cluster, obs.time)
            if recorded.new_on_commit:
                self._point(obs, obs.commit)
        return recorded

    def settle(self, obs: Observation, recorded: Recorded) -> None:
        if recorded.version is None or recorded.settled:
            return
        table = self.table("deployments")
        partition, row = obs.commit or NO_COMMIT, _state_key(obs)
        version = recorded.version
        for _ in range(MAX_SETTLE_ATTEMPTS):
            if merge_if_unchanged(table, partition, row, version, {"settled": True}):
                return
            # Changed since: a newer state owns what follows, but a door's mark (another event
            # let in meanwhile) changes only the marks, and this state is still the one to settle.
            entity = _get_tagged(table, partition, row)
            if entity is None or "phase" not in entity[0] or entity[0].get("settled"):
                return
            if _state(entity[0]) != recorded.state:
                return
            version = entity[1]

    def _point(self, obs: Observation, commit: str) -> None:
        """Move the object's pointer to this commit (if it is newer than the one recorded)."""

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, None]:
            recorded = datetime.fromisoformat(entity["time"]) if entity is not None else None
            if recorded is not None and recorded > obs.time and believable(recorded, obs):
                return None, None
            if entity is not None and entity["commit"] == commit:
                return None, None
            previous = entity["commit"] if entity is not None else ""
            return {"commit": commit, "previous": previous, "time": iso(obs.time)}, None

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
        for entity in query_range(self.table("deployments"), commit, low, high):
            if "phase" not in entity:
                continue  # only the door's marks: no state yet
            _, e, cluster, kind, ns, name = unkey(entity["RowKey"])
            result.setdefault((e, cluster), {})[ObjectRef(kind, ns, name)] = _state(entity)
        return result

    def commits_starting(self, prefix: str) -> set[str]:
        """The commits with rows in the deployments table whose id starts with the lower-case
        hex `prefix`: one partition-key range query (`[prefix, prefix + "g")`: hex sorts below
        `g`), reading only the keys."""
        rows = self.table("deployments").query_entities(
            "PartitionKey ge @low and PartitionKey lt @high",
            parameters={"low": prefix, "high": prefix + "g"},
            select=["PartitionKey"],
        )
        return {row["PartitionKey"] for row in rows}

    def cluster_view(self, commit: str, env: str, cluster: str) -> ClusterView:
        """One cluster's object states on a commit and its pointers: two queries bounded by the
        cluster's own objects."""
        prefix = key("obj", env, cluster) + "|"
        found_rows = query_range(self.table("deployments"), commit, prefix, prefix[:-1] + "}")
        rows = [e for e in found_rows if "phase" in e]  # a row of marks only has no state
        states = {ObjectRef(*unkey(e["RowKey"])[3:]): _state(e) for e in rows}
        basis = max((_written(e) for e in rows), default="")
        query = "PartitionKey eq @pk"
        found = self.table("objects").query_entities(query, parameters={"pk": key(env, cluster)})
        pointers = {ObjectRef(*unkey(e["RowKey"])): _pointer(e) for e in found}
        return ClusterView(states, pointers, basis)

    # --- tallies (connector.core.tally) --------------------------------------------------------

    def tally(
        self, commit: str, env: str, result: ClusterResult, basis: str
    ) -> tuple[bool, ClusterResults | None]:
        entry = tally_rows.entry_of(result)

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, Tallied]:
            clusters = tally_rows.read_entries(entity)
            if clusters is None:
                return None, (True, None)  # overflowed: the caller rolls up in full
            known = clusters.get(result.cluster)
            if known is not None and known["basis"] > basis:
                return None, (False, clusters)  # computed from newer rows than ours
            if known is not None and tally_rows.same_result(known, entry):
                return None, (False, clusters)
            clusters[result.cluster] = {**entry, "basis": basis}
            row = tally_rows.row_of(clusters)
            return row, (True, None if row["overflow"] else clusters)

        table = self.table("deployments")
        changed, found = update_row(table, commit, key("tally", env), change)
        return changed, None if found is None else tally_rows.results_of(found)

    def environment_clusters(self, env: str) -> list[str]:
        """The clusters an environment expects (`connector.storage.clusters`)."""
        return self.clusters.expected(env)

    def _newest_pointers(self, env: str) -> dict[str, datetime]:
        found = self.cluster_objects(env)
        return {c: max(p.time for p in ps.values()) for c, ps in found.items() if ps}

    def cluster_objects(self, env: str) -> dict[str, dict[ObjectRef, ObjectPointer]]:
        """Every object seen with a commit in each cluster of an environment."""
        low, high = key(env) + "|", key(env) + "}"
        table = self.table("objects")
        query = "PartitionKey ge @low and PartitionKey lt @high"
        result: dict[str, dict[ObjectRef, ObjectPointer]] = {}
        for entity in table.query_entities(query, parameters={"low": low, "high": high}):
            _, cluster = unkey(entity["PartitionKey"])
            obj = ObjectRef(*unkey(entity["RowKey"]))
            result.setdefault(cluster, {})[obj] = _pointer(entity)
        return result

    # --- status ledgers -----------------------------------------------------------------------

    def ledger(self, sink: str) -> StatusLedgerTable:
        return StatusLedgerTable(lambda: self.table("deployments"), sink)

    def status_records(self, commit: str, sink: str = DEFAULT_SINK) -> dict[str, StatusRecord]:
        """The statuses one sink recorded for a commit, by context name (rows written before
        sinks had names count as Azure DevOps')."""
        found = status_records(self.table("deployments"), commit)
        return {c: r for (s, c), r in found.items() if s in (sink, "")}


# --- helpers ------------------------------------------------------------------------------------


def _state_key(obs: Observation) -> str:
    return key("obj", obs.env, obs.cluster, obs.obj.kind, obs.obj.namespace, obs.obj.name)


def _apply(
    entity: dict[str, Any] | None, obs: Observation
) -> tuple[dict[str, Any] | None, Recorded]:
    """Only a change is written: re-sends cost no write (a state's recorded time is the time of
    its last change, so an older event of another phase that arrives after a newer re-send is
    applied, and corrected by the next re-send; Flux delivers within its 15 s deadline)."""
    marked = entity
    if entity is not None and "phase" not in entity:
        entity = None  # only the door's marks (`storage.door_rows`): no state yet; merged, kept
    current = _state(entity) if entity is not None else None
    settled = entity is not None and bool(entity.get("settled", False))
    verdict, new = transition(current, obs)
    # Recorded: the door's mark for this message goes (the row is unsettled until the outputs
    # are done, or already settled with this message changing nothing).
    release = released(marked, obs.message_id, obs.noticed_at or obs.time)
    if verdict != Verdict.CHANGED or new is None:
        done = settled or entity is None
        result = Recorded(verdict, current, settled=done, new_on_commit=not settled)
        return release or None, result
    row = {**_row(new), "settled": False, **release}
    # Recorded as skewed: the time the event claimed (cleared by the next change; rows merge).
    row["claimed_time"] = iso(obs.claimed_time) if obs.claimed_time else ""
    return row, Recorded(verdict, new, new_on_commit=not settled)


def _state(entity: dict[str, Any]) -> ObjectState:
    return ObjectState(
        phase=Phase(entity["phase"]),
        reason=entity["reason"],
        summary=entity["summary"],
        time=datetime.fromisoformat(entity["time"]),
        first_seen=datetime.fromisoformat(entity["first_seen"]),
        failed_since=_moment(entity.get("failed_since")),
        failure_noticed=_moment(entity.get("failure_noticed")),
        is_source=bool(entity.get("is_source", False)),
    )


def _written(entity: Any) -> str:
    """When the service wrote the row (its own clock), as sortable text."""
    moment = entity.metadata.get("timestamp")
    if not isinstance(moment, datetime):
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")  # fixed width: sorts as text


def _pointer(entity: dict[str, Any]) -> ObjectPointer:
    return ObjectPointer(
        ObjectRef(*unkey(entity["RowKey"])),
        entity["commit"],
        entity["previous"] or None,
        datetime.fromisoformat(entity["time"]),
    )


def _get(table: TableClient, partition: str, row: str) -> dict[str, Any] | None:
    try:
        return dict(table.get_entity(partition, row))
    except ResourceNotFoundError:
        return None


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _row(state: ObjectState) -> dict[str, Any]:
    return {
        "phase": state.phase.value,
        "reason": state.reason,
        "summary": state.summary,
        "time": iso(state.time),
        "first_seen": iso(state.first_seen),
        "failed_since": iso(state.failed_since) if state.failed_since else "",
        "failure_noticed": iso(state.failure_noticed) if state.failure_noticed else "",
        "is_source": state.is_source,
    }


def _get_tagged(table: TableClient, partition: str, row: str) -> tuple[dict[str, Any], str] | None:
    try:
        found = table.get_entity(partition, row)
    except ResourceNotFoundError:
        return None
    return dict(found), str(found.metadata["etag"])
