"""Deployment state in Azure Table Storage, written with optimistic concurrency (ETags).

Tables (prefix from `STATE_TABLE_PREFIX`):
- `<p>deployments`: PartitionKey = commit; RowKey = `obj|<env>|<cluster>|<kind>|<ns>|<name>` for an
  object's state on that commit (and the status ledger's rows: `connector.storage.ledger`).
- `<p>objects`: PartitionKey = `<env>|<cluster>`; RowKey = `<kind>|<ns>|<name>`: the object's
  current and previous commit (learns which objects a cluster has, and which are behind).
- `<p>processed`: one row per processed message id (duplicate deliveries end here).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from connector.core.state import ObjectPointer, Recorded
from connector.core.tracking import ObjectRef, ObjectState, Observation, Phase, Verdict, transition
from connector.storage.ledger import StatusLedgerTable, StatusRecord, status_records
from connector.storage.rows import iso, key, now, query_range, unkey, update_row

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

logger = logging.getLogger(__name__)

NO_COMMIT = "-"
COMMIT_STATUS_SINK = "azdo"  # the ledger name of Azure DevOps commit statuses


class TableStore:
    """The deployment state (`DeploymentStore`) on one storage account; tables are created on
    first use and shared with the other stores of the account (gates, ledgers)."""

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
        entity = {"PartitionKey": partition, "RowKey": row, "at": now()}
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

    # --- status ledgers -----------------------------------------------------------------------

    def ledger(self, sink: str) -> StatusLedgerTable:
        return StatusLedgerTable(lambda: self.table("deployments"), sink)

    def status_records(
        self, commit: str, sink: str = COMMIT_STATUS_SINK
    ) -> dict[str, StatusRecord]:
        """The statuses one sink recorded for a commit, by context name (rows written before
        sinks had names count as Azure DevOps')."""
        found = status_records(self.table("deployments"), commit)
        return {c: r for (s, c), r in found.items() if s in (sink, "")}


# --- helpers ------------------------------------------------------------------------------------


def _apply(
    entity: dict[str, Any] | None, obs: Observation
) -> tuple[dict[str, Any] | None, Recorded]:
    current = _state(entity) if entity is not None else None
    verdict, new = transition(current, obs)
    if new is None or new == current:
        return None, Recorded(verdict, new)
    return _row(new), Recorded(verdict, new)


def _processed_key(message_id: str) -> tuple[str, str]:
    row = key(message_id)
    return row[:2], row


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


def observation_keys(env: str, cluster: str, obj: ObjectRef) -> dict[str, str]:
    """Every Table key that processing an event of `obj` builds: its state row on a commit
    (`record`), its pointer (`_point`), and the status ledger rows of its object and environment
    statuses (contexts as in `connector.outputs.statuses`). Ingest checks them before accepting."""
    return {
        "object row": key("obj", env, cluster, obj.kind, obj.namespace, obj.name),
        "pointer partition": key(env, cluster),
        "pointer row": key(obj.kind, obj.namespace, obj.name),
        "object status row": key("status", COMMIT_STATUS_SINK, f"{cluster}/{obj}"),
        "environment status row": key("status", COMMIT_STATUS_SINK, f"env/{env}"),
    }
