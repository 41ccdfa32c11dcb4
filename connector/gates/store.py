"""Gates and correlation facts in Azure Table Storage.

- `<p>gates`: PartitionKey = environment, RowKey = gate id. Every change is a conditional update,
  so two instances can never both move a gate from waiting to completing.
- `<p>facts`: answers from Azure DevOps that never change, asked once: whether commit A is an
  ancestor of B, and which pull requests a merge commit belongs to; and each job's binding,
  what its first registration asked for (partition `binding`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import fields
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, get_type_hints

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from connector.core import gate_transitions
from connector.core.gates import OPEN, Gate, GateState, PlanRef
from connector.storage.rows import Version, fields_of, key, update_row, update_row_tagged
from connector.storage.tables import TableStore

logger = logging.getLogger(__name__)


KNOWN_FACTS_LIMIT = 10_000
BINDING = "binding"  # the facts partition of job bindings
VERSIONS_LIMIT = 1_000
P = ParamSpec("P")


class GateStore:
    def __init__(self, tables: TableStore) -> None:
        self._tables = tables
        self._known: dict[tuple[str, str], Any] = {}
        # Gates as this process last read or wrote them, with their ETags: an update tries its
        # write on that version without reading the row again (a stale one is read as usual).
        self._versions: dict[tuple[str, str], Version] = {}
        self._lock = threading.Lock()

    def add(self, gate: Gate) -> Gate:
        """Store a new gate; an open one with the same id is kept (and returned), except that a
        registration fills in what a PR-property gate did not know."""

        def change(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, Gate]:
            stored = None if entity is None else _gate(gate.environment, gate.id, entity)
            new = gate_transitions.register(stored, gate)
            if new is not None:
                return _row(new), new
            return None, stored or gate  # `register` keeps only a stored gate

        result: Gate = update_row(self._gates(), gate.environment, gate.id, change)
        return result

    def get(self, environment: str, gate_id: str) -> Gate | None:
        try:
            entity = self._gates().get_entity(environment, gate_id)
        except ResourceNotFoundError:
            return None
        self._seen(entity)
        return _gate(environment, gate_id, dict(entity))

    def update(
        self,
        gate: Gate,
        transition: Callable[Concatenate[Gate, P], Gate | None],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Gate | None:
        """Conditionally apply a transition (`connector.core.gate_transitions`) with its
        arguments to the stored gate; None from the transition means no write. Returns the gate
        as written, or None when nothing was written."""

        def apply(entity: dict[str, Any] | None) -> tuple[dict[str, Any] | None, Gate | None]:
            if entity is None:
                return None, None
            new = transition(_gate(gate.environment, gate.id, entity), *args, **kwargs)
            return (_row(new), new) if new is not None else (None, None)

        where = (gate.environment, gate.id)
        with self._lock:
            known = self._versions.pop(where, None)
        result, etag = update_row_tagged(self._gates(), *where, apply, known=known)
        if result is not None and etag:
            self._remember_version(where, (_row(result), etag))
        return result

    def open_gates(self, environment: str | None = None) -> list[Gate]:
        states = " or ".join(f"state eq '{s.value}'" for s in OPEN)
        if environment is None:
            query, params = states, {}
        else:
            query, params = f"PartitionKey eq @env and ({states})", {"env": environment}
        entities = list(self._gates().query_entities(query, parameters=params))
        for entity in entities:
            self._seen(entity)
        return _readable(entities)

    def all_gates(self) -> list[Gate]:
        return _readable(self._gates().list_entities())

    # --- facts ----------------------------------------------------------------------------------

    # Facts never change once known (ancestry, the PRs a merge commit closed, a PR read for its
    # callback property), so each is kept in memory too: a process asks the table once.

    def fact(self, kind: str, *parts: str) -> Any:
        cache_key = (kind, key(*parts))
        if cache_key in self._known:
            return self._known[cache_key]
        row = _get(self._facts(), kind, cache_key[1])
        if row is None:
            return None
        return self._keep(cache_key, json.loads(row["value"]))

    def remember(self, kind: str, parts: tuple[str, ...], value: Any) -> None:
        body = {"PartitionKey": kind, "RowKey": key(*parts), "value": json.dumps(value)}
        self._facts().upsert_entity(body)
        self._keep((kind, body["RowKey"]), value)

    def bind(self, parts: tuple[str, ...], value: dict[str, Any]) -> dict[str, Any]:
        """The binding of a job (`parts`: plan, job and task ids): `value` when it is the first
        (a conditional create, so two racing registrations cannot both be first), else the one
        stored first. Not cached: it is read once per registration."""
        body = {"PartitionKey": BINDING, "RowKey": key(*parts), "value": json.dumps(value)}
        try:
            self._facts().create_entity(body)
        except ResourceExistsError:
            row = _get(self._facts(), BINDING, body["RowKey"])
            if row is not None:
                stored: dict[str, Any] = json.loads(row["value"])
                return stored
            self._facts().upsert_entity(body)  # deleted in between (retention): now the first
        return value

    def rebind(self, parts: tuple[str, ...], value: dict[str, Any]) -> None:
        """Replace a job's binding (a registration taking over from a PR-property callback)."""
        body = {"PartitionKey": BINDING, "RowKey": key(*parts), "value": json.dumps(value)}
        self._facts().upsert_entity(body)

    def _keep(self, cache_key: tuple[str, str], value: Any) -> Any:
        with self._lock:
            if len(self._known) >= KNOWN_FACTS_LIMIT:
                self._known.clear()  # a bounded cache; the table still has every fact
            self._known[cache_key] = value
        return value

    def _seen(self, entity: Any) -> None:
        where = (entity["PartitionKey"], entity["RowKey"])
        self._remember_version(where, (fields_of(dict(entity)), entity.metadata["etag"]))

    def _remember_version(self, where: tuple[str, str], version: Version) -> None:
        with self._lock:
            if len(self._versions) >= VERSIONS_LIMIT:
                self._versions.clear()  # a bounded cache: a gate not in it is read first
            self._versions[where] = version

    def _gates(self) -> Any:
        return self._tables.table("gates")

    def _facts(self) -> Any:
        return self._tables.table("facts")


def _readable(entities: Iterable[Any]) -> list[Gate]:
    """Gates that can be read; an unreadable row (written by hand, or by a future version) is
    logged and skipped, so that it never stops the other gates."""
    gates = []
    for entity in entities:
        try:
            gates.append(_gate(entity["PartitionKey"], entity["RowKey"], entity))
        except (KeyError, TypeError, ValueError) as exc:
            logger.error(  # noqa: TRY400 - the row and the error say it all
                "gate.unreadable",
                extra={"gate": entity.get("RowKey"), "error": type(exc).__name__},
            )
    return gates


def _get(table: Any, partition: str, row: str) -> dict[str, Any] | None:
    try:
        return dict(table.get_entity(partition, row))
    except ResourceNotFoundError:
        return None


# One mapping between a Gate and its Table entity, derived from the dataclass: a new Gate field
# is stored without being listed here. PlanRef fields are flattened into columns of their own.
_PLAN_FIELDS = tuple(f.name for f in fields(PlanRef))
_KEY_FIELDS = ("id", "environment")  # RowKey and PartitionKey


def entity(gate: Gate) -> dict[str, Any]:
    """The gate's Table entity as `add` writes it (registration checks it against the limits)."""
    return {"PartitionKey": gate.environment, "RowKey": gate.id, **_row(gate)}


def _row(gate: Gate) -> dict[str, Any]:
    row: dict[str, Any] = {f: getattr(gate.plan, f) for f in _PLAN_FIELDS}
    for f in fields(Gate):
        if f.name not in (*_KEY_FIELDS, "plan"):
            row[f.name] = _encode(getattr(gate, f.name))
    return row


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return json.dumps(list(value))
    if isinstance(value, GateState):
        return value.value
    if value is None:
        return ""
    return value


def _gate(environment: str, gate_id: str, entity: dict[str, Any]) -> Gate:
    hints = get_type_hints(Gate)
    values: dict[str, Any] = {"id": gate_id, "environment": environment}
    values["plan"] = PlanRef(**{f: entity[f] for f in _PLAN_FIELDS})
    for f in fields(Gate):
        if f.name in values or f.name not in entity:
            continue  # a column added later is absent from older rows: the field's default
        values[f.name] = _decode(hints[f.name], entity[f.name])
    return Gate(**values)


_DECODERS: dict[Any, Callable[[Any], Any]] = {
    datetime: datetime.fromisoformat,
    datetime | None: lambda raw: datetime.fromisoformat(raw) if raw else None,
    tuple[str, ...]: lambda raw: tuple(json.loads(raw)),
    GateState: GateState,
    int: int,
    int | None: lambda raw: int(raw or 0) or None,  # 0 in rows written before this codec
    str | None: lambda raw: raw or None,
}


def _decode(hint: Any, raw: Any) -> Any:
    decoder = _DECODERS.get(hint)
    return raw if decoder is None else decoder(raw)
