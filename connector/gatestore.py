"""Gates and correlation facts in Azure Table Storage.

- `<p>gates`: PartitionKey = environment, RowKey = gate id. Every change is a conditional update,
  so two instances can never both move a gate from waiting to completing.
- `<p>facts`: answers from Azure DevOps that never change, asked once: whether commit A is an
  ancestor of B, and which pull requests a merge commit belongs to.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from connector.devops import PlanRef
from connector.gates import OPEN, Gate, GateState
from connector.store import TableStore, key, update_row


class GateStore:
    def __init__(self, tables: TableStore) -> None:
        self._tables = tables

    def add(self, gate: Gate) -> Gate:
        """Store a new gate; an open one with the same id is kept (and returned), except that a
        registration fills in what a PR-property gate did not know."""

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, Gate]:
            if entity is None:
                return _row(gate), gate
            existing = _gate(gate.environment, gate.id, entity)
            if existing.state not in OPEN and gate.source == "registered":
                # A re-run of a finished job waits again; completing a job that is not
                # running is prevented by the plan-state check before TaskCompleted.
                return _row(gate), gate
            if existing.source != "registered" and gate.source == "registered":
                merged = _merge(existing, gate)
                return _row(merged), merged
            return None, existing

        result: Gate = update_row(self._gates(), gate.environment, gate.id, change)
        return result

    def get(self, environment: str, gate_id: str) -> Gate | None:
        entity = _get(self._gates(), environment, gate_id)
        return None if entity is None else _gate(environment, gate_id, entity)

    def update(self, gate: Gate, change: Callable[[Gate], Gate | None]) -> Gate | None:
        """Conditionally apply `change` to the stored gate; None from `change` means no write.
        Returns the gate as written, or None when nothing was written."""

        def apply(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, Gate | None]:
            if entity is None:
                return None, None
            new = change(_gate(gate.environment, gate.id, entity))
            return (_row(new), new) if new is not None else (None, None)

        result: Gate | None = update_row(self._gates(), gate.environment, gate.id, apply)
        return result

    def open_gates(self, environment: str | None = None) -> list[Gate]:
        states = " or ".join(f"state eq '{s.value}'" for s in OPEN)
        if environment is None:
            query, params = states, {}
        else:
            query, params = f"PartitionKey eq @env and ({states})", {"env": environment}
        entities = self._gates().query_entities(query, parameters=params)
        return [_gate(e["PartitionKey"], e["RowKey"], e) for e in entities]

    def all_gates(self) -> list[Gate]:
        return [_gate(e["PartitionKey"], e["RowKey"], e) for e in self._gates().list_entities()]

    # --- facts ----------------------------------------------------------------------------------

    def fact(self, kind: str, *parts: str) -> Any:
        row = _get(self._facts(), kind, key(*parts))
        return None if row is None else json.loads(row["value"])

    def remember(self, kind: str, parts: tuple[str, ...], value: Any) -> None:
        body = {"PartitionKey": kind, "RowKey": key(*parts), "value": json.dumps(value)}
        self._facts().upsert_entity(body)

    def _gates(self) -> Any:
        return self._tables.table("gates")

    def _facts(self) -> Any:
        return self._tables.table("facts")


def _get(table: Any, partition: str, row: str) -> dict[str, Any] | None:
    try:
        return dict(table.get_entity(partition, row))
    except ResourceNotFoundError:
        return None


def _merge(existing: Gate, registered: Gate) -> Gate:
    return replace(
        registered,
        state=existing.state,
        result=existing.result,
        claimed_at=existing.claimed_at,
        result_reason=existing.result_reason,
        commit=registered.commit or existing.commit,
        pull_request_id=registered.pull_request_id or existing.pull_request_id,
    )


_PLAN_FIELDS = (
    "plan_url",
    "project_id",
    "hub_name",
    "plan_id",
    "job_id",
    "timeline_id",
    "task_instance_id",
)


def entity(gate: Gate) -> dict[str, Any]:
    """The gate's Table entity as `add` writes it (registration checks it against the limits)."""
    return {"PartitionKey": gate.environment, "RowKey": gate.id, **_row(gate)}


def _row(gate: Gate) -> dict[str, Any]:
    return {
        **{f: getattr(gate.plan, f) for f in _PLAN_FIELDS},
        "created_at": gate.created_at.isoformat(),
        "deadline": gate.deadline.isoformat(),
        "commit": gate.commit or "",
        "pull_request_id": gate.pull_request_id or 0,
        "repository": gate.repository,
        "clusters": json.dumps(list(gate.clusters)),
        "objects": json.dumps(list(gate.objects)),
        "state": gate.state.value,
        "result": gate.result,
        "result_reason": gate.result_reason,
        "claimed_at": gate.claimed_at.isoformat() if gate.claimed_at else "",
        "progress": gate.progress,
        "pr_status": gate.pr_status,
        "source": gate.source,
        "auth_token": gate.auth_token,
    }


def _gate(environment: str, gate_id: str, entity: dict[str, Any]) -> Gate:
    return Gate(
        id=gate_id,
        plan=PlanRef(**{f: entity[f] for f in _PLAN_FIELDS}),
        environment=environment,
        created_at=datetime.fromisoformat(entity["created_at"]),
        deadline=datetime.fromisoformat(entity["deadline"]),
        commit=entity["commit"] or None,
        pull_request_id=int(entity["pull_request_id"]) or None,
        repository=entity["repository"],
        clusters=tuple(json.loads(entity["clusters"])),
        objects=tuple(json.loads(entity["objects"])),
        state=GateState(entity["state"]),
        result=entity["result"],
        result_reason=entity["result_reason"],
        claimed_at=datetime.fromisoformat(entity["claimed_at"]) if entity["claimed_at"] else None,
        progress=entity["progress"],
        pr_status=entity["pr_status"],
        source=entity["source"],
        auth_token=entity.get("auth_token", ""),
    )
